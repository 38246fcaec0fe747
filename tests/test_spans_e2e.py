"""End to end over time-partitioned logs: three daily spans of a MovieLens slice.

Run 1 finds spans 1 and 2 (span 1 is caught up, span 2 is the holdout), run 2
adds span 3 (a new user, a new item, and a shifted event mix), run 3 changes
nothing.
"""

import csv
import json
import os
import shutil

import pytest
import scann  # noqa: F401  (registers the ScaNN ops)
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from components.multilog_example_gen.spec import SpanConfig
from components.recommender_evaluator.spec import GateConfig
from contracts.layout import WARMSTART_DIR_NAME
from contracts.names import EVAL_SPANS_PROPERTY, TRAIN_SPANS_PROPERTY
from datagen.partition import MOVIELENS_CATALOG, MOVIELENS_LOGS, partition, span_dir
from models.config import ModelConfig
from models.warmstart import REPORT_FILE
from pipeline.config import PipelineConfig
from pipeline.local import METADATA_FILE, run_locally
from pipeline.presets import MOVIELENS_INGEST, PRESETS, partitioned

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, os.pardir, "data", "movielens")
SCHEMA = os.path.join(HERE, os.pardir, "schema", "schema.pbtxt")
MAX_USER = 20
NEW_USER, NEW_ITEM = "new-user", "new-item"
COMPLETE = metadata_store_pb2.Execution.COMPLETE
CACHED = metadata_store_pb2.Execution.CACHED


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def write(path, header, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def stage_spans(tmp):
    """Three spans of users 1..20; span 3 gets a new user, a new item and many tags."""
    src = os.path.join(tmp, "snapshot")
    os.makedirs(src)
    for name in ("ratings.csv", "tags.csv", "movies.csv"):
        header, rows = read(os.path.join(DATA, name))
        if name != "movies.csv":
            rows = [r for r in rows if int(r[0]) <= MAX_USER]
        write(os.path.join(src, name), header, rows)
    staged = os.path.join(tmp, "staged")
    partition(src, staged, MOVIELENS_LOGS, MOVIELENS_CATALOG, 3)
    ratings = os.path.join(staged, span_dir("ratings", 3), "ratings.csv")
    header, rows = read(ratings)
    stamp = rows[-1][3]
    extra = [[NEW_USER, r[1], "4.0", stamp] for r in rows[:30]]
    extra += [[str(u), NEW_ITEM, "5.0", stamp] for u in range(1, 6)]
    write(ratings, header, rows + extra)
    tags = os.path.join(staged, span_dir("tags", 3), "tags.csv")
    tag_header, tag_rows = read(tags)
    shifted = [[r[0], r[1], "shifted", r[3]] for r in rows]  # tags jump to ~half the events
    write(tags, tag_header, tag_rows + shifted)
    movies = os.path.join(staged, span_dir("movies", 3), "movies.csv")
    movie_header, movie_rows = read(movies)
    write(movies, movie_header, [*movie_rows, [NEW_ITEM, "Brand New (2018)", "Drama"]])
    return staged


def deliver(staged, data_root, span):
    for name in ("ratings", "tags", "movies"):
        shutil.copytree(
            os.path.join(staged, span_dir(name, span)),
            os.path.join(data_root, span_dir(name, span)),
        )


def executions(out):
    connection = metadata.sqlite_metadata_connection_config(os.path.join(out, METADATA_FILE))
    with metadata.Metadata(connection) as m:
        types = {t.id: t.name.split(".")[-1] for t in m.store.get_execution_types()}
        return [(types[e.type_id], e) for e in m.store.get_executions()]


def artifacts(out, type_name):
    connection = metadata.sqlite_metadata_connection_config(os.path.join(out, METADATA_FILE))
    with metadata.Metadata(connection) as m:
        return sorted(m.store.get_artifacts_by_type(type_name), key=lambda a: a.id)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("spans"))
    staged = stage_spans(tmp)
    data_root, out = os.path.join(tmp, "data"), os.path.join(tmp, "out")
    config = PipelineConfig(
        pipeline_name="recommender-spans-e2e",
        pipeline_root=os.path.join(out, "root"),
        data_root=data_root,
        schema_path=SCHEMA,
        serving_root=os.path.join(out, "serving"),
        ingest=partitioned(MOVIELENS_INGEST, SpanConfig(window=14, holdout=1)),
        model=ModelConfig(
            epochs=3,
            warm_start_epochs=2,
            batch_size=128,
            embedding_dim=16,
            events=PRESETS["movielens"].model.events,
        ),
        gate=GateConfig(
            rmse_margin=-0.5, top_k_margin=-0.9, max_rmse_increase=0.1, max_accuracy_decrease=0.1
        ),
    )
    reports = []
    for spans in ((1, 2), (3,), ()):
        for span in spans:
            deliver(staged, data_root, span)
        reports.append(run_locally(config, out))
    return config, out, reports


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
