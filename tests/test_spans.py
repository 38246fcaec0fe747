"""Time-partitioned logs: the spec, span patterns, the window, drift and the warm start."""

import dataclasses
import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
import testlib
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.anomalies_gate import describe_anomalies, is_drift, load_anomalies
from components.multilog_example_gen import executor
from components.multilog_example_gen.spans import available_spans, span_pattern, spans_of
from components.multilog_example_gen.spec import IngestSpec, SpanConfig, partition_kind
from components.span_validator import executor as validator
from components.span_validator.executor import previous_span
from models import features as F
from models import training, warmstart
from models.config import ModelConfig
from models.model import build_model
from pipeline.presets import MOVIELENS_INGEST, partitioned

SPANNED = partitioned(MOVIELENS_INGEST)


def test_partition_placeholders_follow_tfx():
    assert partition_kind("ratings/span-{SPAN}/*.csv") == "span"
    assert partition_kind("ratings/span-{SPAN:3}/*.csv") == "span"
    assert partition_kind("ratings/{YYYY}-{MM}-{DD}/part.csv") == "date"
    assert partition_kind("ratings.csv") is None
    with pytest.raises(ValueError, match="mixes"):
        partition_kind("{SPAN}/{YYYY}{MM}{DD}")
    with pytest.raises(ValueError, match="needs all of"):
        partition_kind("{YYYY}-{MM}/x.csv")
    assert span_pattern("r/span-{SPAN:3}/*.csv", 7) == "r/span-007/*.csv"
    assert span_pattern("r/{YYYY}-{MM}-{DD}/a.csv", 1) == "r/1970-01-02/a.csv"
    assert span_pattern("movies.csv", 7) == "movies.csv"


def test_the_ingest_spec_checks_every_log_is_partitioned():
    assert SPANNED.logs[0].file == "ratings/span-{SPAN}/ratings.csv"
    assert SPANNED.partitioned_patterns() == {
        "ratings": "ratings/span-{SPAN}/ratings.csv",
        "tags": "tags/span-{SPAN}/tags.csv",
        "catalog": "movies/span-{SPAN}/movies.csv",
    }
    with pytest.raises(ValueError, match=r"\['ratings'\] have none"):
        IngestSpec(
            logs=(MOVIELENS_INGEST.logs[0], SPANNED.logs[1]),
            catalog=SPANNED.catalog,
            spans=SpanConfig(),
        )
    with pytest.raises(ValueError, match="IngestSpec.spans is not set"):
        IngestSpec(logs=SPANNED.logs, catalog=SPANNED.catalog)
    with pytest.raises(ValueError, match="window and holdout must be positive"):
        SpanConfig(window=0)
    assert [s.name for s in executor.input_splits(SPANNED)] == ["ratings", "tags", "catalog"]
    assert executor.output_splits(SPANNED) == ("events", "catalog")
    assert executor.output_splits(MOVIELENS_INGEST) == ("train", "eval", "catalog")


def test_available_spans_are_those_every_input_holds(tmp_path):
    for name, spans in (("ratings", (1, 2, 3, 10)), ("tags", (2, 3, 10)), ("movies", (1, 2, 10))):
        for span in spans:
            os.makedirs(tmp_path / name / f"span-{span}")
            (tmp_path / name / f"span-{span}" / f"{name}.csv").write_text("x\n")
    os.makedirs(tmp_path / "ratings" / "span-x")
    (tmp_path / "ratings" / "span-x" / "ratings.csv").write_text("x\n")
    assert spans_of(str(tmp_path), "ratings/span-{SPAN}/ratings.csv") == {1, 2, 3, 10}
    assert available_spans(str(tmp_path), SPANNED) == [2, 10]
    os.makedirs(tmp_path / "ratings" / "span-11")
    (tmp_path / "ratings" / "span-11" / "ratings.csv").write_text("x\n")
    with pytest.raises(
        ValueError, match=r"'ratings': 11, 'tags': 10.*span 11 is delivered in part"
    ):
        available_spans(str(tmp_path), SPANNED)
    dated = tmp_path / "dated" / "2026-11-30"
    os.makedirs(dated)
    (dated / "a.csv").write_text("x\n")
    assert spans_of(str(tmp_path), "dated/{YYYY}-{MM}-{DD}/*.csv") == {
        20787
    }  # days since 1970-01-01


def test_the_window_trains_on_the_past_and_holds_out_the_newest():
    assert SpanConfig(window=2, holdout=1).split([5, 1, 2, 3, 4]) == ([3, 4], [5])
    assert SpanConfig(window=14, holdout=2).split([1, 2, 3, 4, 5]) == ([1, 2, 3], [4, 5])
    with pytest.raises(ValueError, match=r"needs 2 accepted spans .* found \[7\]"):
        SpanConfig(window=3, holdout=1).split([7])


class _Stats:
    def __init__(self, id_, span):
        self.id, self.span = id_, span


def test_drift_is_checked_against_the_newest_earlier_span():
    candidates = [_Stats(1, 1), _Stats(4, 2), _Stats(5, 3), _Stats(6, 2)]
    assert previous_span(candidates, 3).id == 6  # span 2, its re-ingested version
    assert previous_span(candidates, 1) is None


def test_drift_anomalies_are_told_apart_from_schema_anomalies():
    anomalies = anomalies_pb2.Anomalies()
    drift = anomalies.anomaly_info["event_type"]
    drift.short_description = "High Linfty distance between current and previous"
    drift.reason.add(type=anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH)
    schema = anomalies.anomaly_info["genres"]
    schema.short_description = "Unexpected string values"
    schema.reason.add(type=anomalies_pb2.AnomalyInfo.ENUM_TYPE_UNEXPECTED_STRING_VALUES)
    assert is_drift(drift) and not is_drift(schema)
    assert describe_anomalies({"events": anomalies}, drift=True) == [
        "events/event_type: High Linfty distance between current and previous: "
    ]
    assert describe_anomalies({"events": anomalies}, drift=False)[0].startswith("events/genres")
    assert len(describe_anomalies({"events": anomalies})) == 2


def _model(num_users, num_items, dim=2):
    """A built model with one genre and one title token."""
    model = build_model(
        ModelConfig(embedding_dim=dim),
        num_users,
        num_items,
        {F.GENRE_IDS: 1, F.TITLE_TOKENS: 1, F.YEAR_BUCKET: F.YEAR_BUCKETS},
    )
    model(
        {
            F.USER_IDX: tf.constant([0], tf.int64),
            F.ITEM_IDX: tf.constant([0], tf.int64),
            F.GENRE_IDS: tf.zeros([1, F.MAX_GENRES], tf.int64),
            F.TITLE_TOKENS: tf.zeros([1, F.MAX_TITLE_TOKENS], tf.int64),
            F.YEAR_BUCKET: tf.zeros([1, 1], tf.int64),
        }
    )
    return model


def _vocabs(users, items=("i1",)):
    return {
        F.USER_VOCAB: users,
        F.ITEM_VOCAB: list(items),
        F.GENRE_VOCAB: ["Drama"],
        F.TITLE_VOCAB: ["x"],
    }


def test_warm_start_carries_surviving_rows_to_their_new_places(tmp_path):
    base = _model(2, 1)
    base.user_tower.embedding.embeddings.assign([[1.0, 1.0], [2.0, 2.0], [9.0, 9.0]])  # a, b, OOV
    base.rating_tower.output_layer.bias.assign([3.5])
    warmstart.save(base, _vocabs(["a", "b"]), str(tmp_path))

    new = _model(2, 1)
    fresh_c = new.user_tower.embedding.embeddings.numpy()[0].copy()
    summary = warmstart.warm_start(new, _vocabs(["c", "a"]), str(tmp_path))
    rows = new.user_tower.embedding.embeddings.numpy()
    np.testing.assert_array_equal(rows[0], fresh_c)  # c is new: its fresh row stays
    np.testing.assert_array_equal(rows[1], [1.0, 1.0])  # a moved from row 0 to row 1
    np.testing.assert_array_equal(rows[2], [9.0, 9.0])  # the OOV row is the OOV row
    assert summary["user_tower/embedding/embeddings"] == "remapped: 2 of 3 rows carried"
    assert new.rating_tower.output_layer.bias.numpy().tolist() == [3.5]
    assert summary["rating_tower/output_layer/bias"] == "carried"
    genres = summary["item_tower/token_embeddings/genre_ids/embeddings"]
    assert genres == "remapped: 3 of 3 rows carried"  # padding, Drama, OOV


def test_warm_start_keeps_fresh_weights_whose_shape_changed(tmp_path):
    warmstart.save(_model(1, 1), _vocabs(["a"]), str(tmp_path))
    wider = _model(1, 1, dim=3)
    summary = warmstart.warm_start(wider, _vocabs(["a"]), str(tmp_path))
    assert summary["user_tower/embedding/embeddings"].startswith("fresh: width")
    # Projection of [id, genres, title, year] (4 x dim) to dim.
    assert summary["item_tower/projection/kernel"] == "fresh: shape (8, 2) != (12, 3)"
    with pytest.raises(ValueError, match="no warm-start weights"):
        warmstart.warm_start(wider, _vocabs(["a"]), str(tmp_path / "missing"))


def write_spans(root, spans):
    """ratings/tags/movies per span; span s rates item s by users u1 and u2."""
    for s in spans:
        for name, text in (
            (
                "ratings",
                f"userId,movieId,rating,timestamp\nu1,{s},4,{100 + s}\nu2,{s},3,{100 + s}\n",
            ),
            ("tags", "userId,movieId,tag,timestamp\n"),  # a span may hold no tag
            (
                "movies",
                "movieId,title,genres\n" + "".join(f"{i},T{i},Drama\n" for i in range(1, s + 1)),
            ),
        ):
            path = root / name / f"span-{s}" / f"{name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def run_example_gen(root, spec, span, read_window=False):
    examples = standard_artifacts.Examples()
    examples.uri = str(root / "out" / f"{span}-{read_window}")
    input_config = example_gen_pb2.Input(splits=executor.input_splits(spec))
    executor.Executor().Do(
        {},
        {standard_component_specs.EXAMPLES_KEY: [examples]},
        {
            standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config),
            standard_component_specs.OUTPUT_CONFIG_KEY: "{}",
            standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps(
                {
                    executor.INGEST_SPEC_KEY: spec.to_json_dict(),
                    executor.READ_WINDOW_KEY: read_window,
                }
            ),
            standard_component_specs.INPUT_BASE_KEY: str(root),
            "span": span,
            "version": None,
        },
    )
    items = {}
    for split in artifact_utils.decode_split_names(examples.split_names):
        files = tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{split}", "*"))
        records = tf.data.TFRecordDataset(files, compression_type="GZIP")
        items[split] = sorted(
            tf.train.Example.FromString(r.numpy()).features.feature[F.ITEM_ID].bytes_list.value[0]
            for r in records
        )
    return examples, items


def test_example_gen_ingests_one_span_or_reads_the_window(tmp_path):
    write_spans(tmp_path, (1, 2, 3))
    artifact, items = run_example_gen(tmp_path, SPANNED, 2)
    assert (artifact.span, artifact.version) == (2, 0)
    assert items == {"events": [b"2", b"2"], "catalog": [b"1", b"2"]}
    spec = partitioned(MOVIELENS_INGEST, SpanConfig(window=1, holdout=1))
    artifact, items = run_example_gen(tmp_path, spec, 3, read_window=True)
    assert items == {"train": [b"2", b"2"], "eval": [b"3", b"3"], "catalog": [b"1", b"2", b"3"]}
    assert artifact.get_string_custom_property("train_spans") == "[2]"
    assert artifact.get_string_custom_property("eval_spans") == "[3]"


def test_a_span_without_any_event_fails_naming_it(tmp_path):
    write_spans(tmp_path, (1,))
    (tmp_path / "ratings" / "span-1" / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
    )
    with pytest.raises(Exception, match="span 1 holds no event"):
        run_example_gen(tmp_path, SPANNED, 1)


def test_the_same_examples_train_the_same_model(tmp_path):
    """Seeded initialisation and shuffling: two trainings give bit-identical weights."""
    rows = [
        testlib.event_row(f"u{u}", f"i{(u * 3 + k) % 7}", rating=float(1 + (u + k) % 5))
        for u in range(12)
        for k in range(4)
    ]
    transformed, output = testlib.run_transform(rows)
    path = testlib.write_transformed(transformed, output, str(tmp_path / "events.gz"))
    config = ModelConfig(epochs=2, batch_size=8, embedding_dim=4, shuffle_buffer=64)
    weights = []
    for _ in range(2):
        model, _ = training.train(config, output, path, path, path)
        weights.append([v.numpy() for v in model.trainable_variables])
    assert all(np.array_equal(a, b) for a, b in zip(*weights, strict=True))


def test_a_warm_start_fits_only_the_events_its_base_model_never_saw(tmp_path):
    from models.inputs import training_inputs

    # 20 users x times 1..5 = 100 events; a base model trained through time 3.
    rows = [
        testlib.event_row(f"u{u}", f"i{u % 4}", timestamp=t) for u in range(20) for t in range(1, 6)
    ]
    transformed, output = testlib.run_transform(rows)
    path = testlib.write_transformed(transformed, output, str(tmp_path / "events.gz"))
    config = ModelConfig(batch_size=16, early_stopping=False, history_length=2)
    probabilities = np.full(output.vocabulary_size_by_name(F.ITEM_VOCAB) + 1, 0.1, np.float32)

    def fitted(fit_after):
        inputs = training_inputs(config, output, path, path, probabilities, fit_after=fit_after)
        times = [t for b in inputs.fit for t in b[F.TIMESTAMP].numpy().tolist()]
        return inputs, sorted(times)

    inputs, times = fitted(3)
    assert (inputs.fit_events, inputs.fit_after, inputs.trained_through) == (40, 3, 5)
    assert times == [4] * 20 + [5] * 20
    # The history of a fitted event still holds the events before it that were not fitted.
    histories = [h for b in inputs.fit for h in b[F.HISTORY].numpy().tolist()]
    assert all(0 not in h for h in histories)  # times 4 and 5 have two earlier events each
    inputs, times = fitted(4)  # 20 new events: more than a batch
    assert (inputs.fit_events, inputs.fit_after) == (20, 4)
    inputs, times = fitted(5)  # nothing new: the whole window, and the report says so
    assert (inputs.fit_events, inputs.fit_after, len(times)) == (100, None, 100)


def test_a_warm_start_rehearses_a_seeded_sample_of_what_its_base_model_saw(tmp_path):
    from models.inputs import training_inputs

    rows = [
        testlib.event_row(f"u{u}", f"i{u % 4}", timestamp=t) for u in range(20) for t in range(1, 6)
    ]
    transformed, output = testlib.run_transform(rows)
    path = testlib.write_transformed(transformed, output, str(tmp_path / "events.gz"))
    probabilities = np.full(output.vocabulary_size_by_name(F.ITEM_VOCAB) + 1, 0.1, np.float32)

    def fitted(rehearsal, seed=42):
        config = ModelConfig(
            batch_size=16, early_stopping=False, warm_start_rehearsal=rehearsal, seed=seed
        )
        inputs = training_inputs(config, output, path, path, probabilities, fit_after=3)
        return sorted(
            (t, u)
            for b in inputs.fit
            for t, u in zip(*(b[k].numpy() for k in (F.TIMESTAMP, F.USER_IDX)), strict=True)
        )

    # 40 new events (times 4, 5); half as many old ones (times 1-3): 20 of those 60.
    events = fitted(0.5)
    assert len(events) == 60
    assert [t for t, _ in events[20:]] == [4] * 20 + [5] * 20
    assert all(t <= 3 for t, _ in events[:20])
    assert events == fitted(0.5)  # seeded
    assert events[:20] != fitted(0.5, seed=7)[:20]
    assert len(fitted(5.0)) == 100  # more than there are: every old event
    assert len(fitted(0.0)) == 40


def test_a_warm_start_learns_at_its_share_of_the_learning_rate():
    config = ModelConfig(learning_rate=0.01, final_learning_share=0.1)
    warm = training.warm_settings(dataclasses.replace(config, warm_start_learning_share=0.3))
    assert warm.epochs == config.warm_start_epochs
    schedule = training.learning_rate(warm, steps=10)
    assert float(schedule(0)) == pytest.approx(0.003)
    assert float(schedule(10)) == pytest.approx(0.0003)
    assert float(training.learning_rate(config, steps=10)(0)) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="warm_start_learning_share"):
        ModelConfig(warm_start_learning_share=0.0)
    with pytest.raises(ValueError, match="warm_start_rehearsal must be >= 0, got -1"):
        ModelConfig(warm_start_rehearsal=-1)


def _split_statistics(root, event_types_by_split: dict[str, list[str]]):
    """A StatisticsGen-like artifact: one `FeatureStats.pb` per split of event types."""
    stats = standard_artifacts.ExampleStatistics()
    stats.uri = str(root / "statistics")
    stats.split_names = artifact_utils.encode_split_names(list(event_types_by_split))
    for split, values in event_types_by_split.items():
        path = os.path.join(stats.uri, f"Split-{split}")
        os.makedirs(path)
        proto = tfdv.generate_statistics_from_dataframe(pd.DataFrame({"event_type": values}))
        with open(os.path.join(path, "FeatureStats.pb"), "wb") as f:
            f.write(proto.SerializeToString())
    return stats


def _validate_splits(tmp_path, event_types_by_split, split_baselines):
    schema = text_format.Parse(
        'feature { name: "event_type" type: BYTES '
        "drift_comparator { infinity_norm { threshold: 0.1 } } }",
        schema_pb2.Schema(),
    )
    schema_artifact = standard_artifacts.Schema()
    schema_artifact.uri = str(tmp_path / "schema")
    os.makedirs(schema_artifact.uri)
    tfdv.write_schema_text(schema, os.path.join(schema_artifact.uri, "schema.pbtxt"))
    anomalies = standard_artifacts.ExampleAnomalies()
    anomalies.uri = str(tmp_path / "anomalies")
    validator.Executor().Do(
        {
            standard_component_specs.STATISTICS_KEY: [
                _split_statistics(tmp_path, event_types_by_split)
            ],
            standard_component_specs.SCHEMA_KEY: [schema_artifact],
        },
        {standard_component_specs.ANOMALIES_KEY: [anomalies]},
        {
            standard_component_specs.EXCLUDE_SPLITS_KEY: "[]",
            validator.SPLIT_BASELINES_KEY: json.dumps(split_baselines),
        },
    )
    return load_anomalies(anomalies)


def test_without_earlier_spans_the_newest_split_is_checked_against_the_window(tmp_path):
    # L-infinity between eval (60% watch) and train (90% watch) is 0.3 > 0.1: drift in eval.
    found = _validate_splits(
        tmp_path,
        {"train": ["watch"] * 9 + ["tag"], "eval": ["watch"] * 6 + ["tag"] * 4},
        {"eval": "train"},
    )
    assert describe_anomalies(found, drift=True) and all(
        line.startswith("eval/event_type:") for line in describe_anomalies(found)
    )
    # The same shares (L-infinity 0) are no drift.
    same = _validate_splits(
        tmp_path / "same",
        {"train": ["watch"] * 9 + ["tag"], "eval": ["watch"] * 18 + ["tag"] * 2},
        {"eval": "train"},
    )
    assert describe_anomalies(same) == []


def test_a_split_baseline_the_statistics_lack_is_named(tmp_path):
    with pytest.raises(ValueError, match="'window'"):
        _validate_splits(tmp_path, {"train": ["watch"], "eval": ["watch"]}, {"eval": "window"})


def test_an_empty_span_is_told_apart_without_reading_it_all(tmp_path):
    """The local catch-up skips an earlier span with no event (`span_holds_events`), so
    one empty delivery does not block every later run."""
    from components.multilog_example_gen.read import span_holds_events

    write_spans(tmp_path, (1, 2))
    (tmp_path / "ratings" / "span-1" / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
    )  # and its tags file is header-only too
    assert not span_holds_events(SPANNED, str(tmp_path), 1)
    assert span_holds_events(SPANNED, str(tmp_path), 2)
