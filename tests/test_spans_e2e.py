"""End to end over time-partitioned logs: three daily spans of a MovieLens slice.

Run 1 finds spans 1 and 2 (span 1 is caught up, span 2 is the holdout), run 2
adds span 3 (a new user, a new item, and a shifted event mix), run 3 changes
nothing.
"""

import json
import os

import pytest
import scann  # noqa: F401  (registers the ScaNN ops)
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2
from spanlib import (
    NEW_ITEM,
    artifacts,
    deliver,
    executions,
    read,
    run_deliveries,
    spans_config,
    stage_spans,
    write,
)

from contracts.layout import WARMSTART_DIR_NAME
from contracts.names import EVAL_SPANS_PROPERTY, TRAIN_SPANS_PROPERTY
from datagen.partition import span_dir
from models.warmstart import REPORT_FILE
from pipeline.local import run_locally

COMPLETE = metadata_store_pb2.Execution.COMPLETE
CACHED = metadata_store_pb2.Execution.CACHED


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("spans"))
    return run_deliveries(tmp, ((1, 2), (3,), ()))


def test_each_span_is_ingested_once_and_old_spans_are_cached(runs):
    _, out, reports = runs
    assert [r.caught_up for r in reports] == [(1,), (), ()]
    gens = [e for name, e in executions(out) if name == "MultiLogExampleGen"]
    done = [e.custom_properties["span"].int_value for e in gens if e.last_known_state == COMPLETE]
    assert done == [1, 2, 3]
    assert [e.last_known_state for e in gens][-1] == CACHED  # run 3: span 3 unchanged
    stats = [e.last_known_state for name, e in executions(out) if name == "StatisticsGen"]
    assert stats == [COMPLETE, COMPLETE, COMPLETE, CACHED]


def test_the_window_trains_on_the_past_and_evaluates_the_newest_span(runs):
    _, out, _ = runs
    windows = [
        (
            json.loads(a.custom_properties[TRAIN_SPANS_PROPERTY].string_value),
            json.loads(a.custom_properties[EVAL_SPANS_PROPERTY].string_value),
        )
        for a in artifacts(out, "Examples")
        if TRAIN_SPANS_PROPERTY in a.custom_properties
    ]
    assert windows == [([1], [2]), ([1, 2], [3])]


def test_the_second_model_warm_starts_from_the_first(runs):
    _, out, _ = runs
    models = artifacts(out, "Model")
    assert len(models) == 2  # run 3 reuses run 2's Trainer execution
    reports = []
    for model in models:
        with open(os.path.join(model.uri, WARMSTART_DIR_NAME, REPORT_FILE)) as f:
            reports.append(json.load(f))
    assert reports[0]["warm_start_from"] is None and reports[0]["max_epochs"] == 3
    assert reports[1]["warm_start_from"] == os.path.join(models[0].uri, WARMSTART_DIR_NAME)
    assert reports[1]["max_epochs"] == 2  # ModelConfig.warm_start_epochs
    # At its share of the learning rate (ModelConfig.warm_start_learning_share, 0.3).
    assert reports[1]["learning_rate"] == pytest.approx(0.3 * reports[0]["learning_rate"])
    # It fits only span 2, the events after the base model's latest (warm_start_new_events).
    assert reports[0]["fit_after"] is None
    assert reports[1]["fit_after"] == reports[0]["trained_through"] < reports[1]["trained_through"]
    users = reports[1]["warm_start"]["user_tower/embedding/embeddings"]
    assert users.startswith("remapped: ") and not users.startswith("remapped: 0 ")
    assert reports[1]["warm_start"]["rating_tower/output_layer/kernel"] == "carried"
    trainers = [e.last_known_state for name, e in executions(out) if name == "Trainer"]
    assert trainers == [COMPLETE, COMPLETE, CACHED]


def test_a_new_version_is_pushed_and_the_new_item_is_retrievable(runs):
    config, _, reports = runs
    pushed = [r.pushed for r in reports]
    assert pushed[0] and pushed[1] and pushed[2] is None  # run 3: identical, not pushed
    found = []
    for version in pushed[:2]:
        model = tf.saved_model.load(version)
        items = model.signatures["retrieve"](user_id=tf.constant([b"1"]), k=tf.constant(20000))
        found.append(NEW_ITEM.encode() in set(items["item_ids"].numpy()[0].tolist()))
    assert found == [False, True]  # in the catalogue of span 3 only


def test_a_shifted_span_is_flagged_as_drift(runs):
    _, _, reports = runs
    assert reports[0].drift == ()
    assert any(line.startswith("events/event_type:") for line in reports[1].drift), reports[1].drift


def test_a_span_whose_files_change_is_ingested_again(tmp_path):
    """Ingestion only: spans 1-3 are ingested once; re-delivering span 1 with half of
    its ratings ingests it again (its new version is the one the window reads);
    unchanged spans are left alone."""
    staged = stage_spans(str(tmp_path))
    data_root, out = str(tmp_path / "data"), str(tmp_path / "out")
    config = spans_config(out, data_root, ingest_only=True)
    for span in (1, 2, 3):
        deliver(staged, data_root, span)
    reports = [run_locally(config, out), run_locally(config, out)]
    ratings = os.path.join(data_root, span_dir("ratings", 1), "ratings.csv")
    header, rows = read(ratings)
    write(ratings, header, rows[: len(rows) // 2])
    reports.append(run_locally(config, out))
    assert [r.caught_up for r in reports] == [(1, 2), (), (1,)]
    gens = [e for name, e in executions(out) if name == "MultiLogExampleGen"]
    done = [e.custom_properties["span"].int_value for e in gens if e.last_known_state == COMPLETE]
    assert done == [1, 2, 3, 1]
    span_one = [a for a in artifacts(out, "Examples") if a.custom_properties["span"].int_value == 1]
    fingerprints = [a.custom_properties["input_fingerprint"].string_value for a in span_one[-2:]]
    assert fingerprints[0] != fingerprints[1]
    counts = [
        sum(1 for _ in tf.data.TFRecordDataset(tf.io.gfile.glob(f"{a.uri}/Split-*/*"), "GZIP"))
        for a in span_one[-2:]
    ]
    assert counts[1] < counts[0]
