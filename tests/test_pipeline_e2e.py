"""End-to-end LocalDagRunner runs on a slice of the embedded MovieLens logs."""

import csv
import os

import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.orchestration import metadata

from components.recommender_evaluator.spec import GateConfig
from models.config import ModelConfig
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, os.pardir, "data", "movielens")
SCHEMA = os.path.join(HERE, os.pardir, "schema", "schema.pbtxt")
MAX_USER = 20  # users 1..20: about 3.2K ratings and their tags
COMPONENTS = {
    "MultiLogExampleGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "AnomaliesGate",
    "Transform",
    "Trainer",
    "RecommenderEvaluator",
    "Pusher",
}


COMPLETE = metadata_store_pb2.Execution.COMPLETE
CACHED = metadata_store_pb2.Execution.CACHED


def write_slice(target, mutate=None):
    """Copies users 1..MAX_USER of each log plus the full catalogue into `target`."""
    os.makedirs(target, exist_ok=True)
    for name in ("ratings.csv", "tags.csv", "movies.csv"):
        with open(os.path.join(DATA, name), newline="") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], rows[1:]
        if name != "movies.csv":
            body = [r for r in body if int(r[0]) <= MAX_USER]
        if mutate:
            header, body = mutate(name, header, body)
        with open(os.path.join(target, name), "w", newline="") as f:
            csv.writer(f).writerows([header, *body])
    return str(target)


def make_config(tmp, data_root, **overrides):
    return PipelineConfig(
        pipeline_name="recommender-e2e",
        pipeline_root=os.path.join(tmp, "root"),
        data_root=data_root,
        schema_path=SCHEMA,
        serving_root=os.path.join(tmp, "serving"),
        model=ModelConfig(epochs=3, batch_size=128, embedding_dim=16),
        gate=GateConfig(
            max_rmse=1.3,
            min_top_k_accuracy=0.02,
            max_rmse_increase=0.05,
            max_accuracy_decrease=0.05,
        ),
        **overrides,
    )


def run(config, tmp):
    connection = metadata.sqlite_metadata_connection_config(os.path.join(tmp, "mlmd.sqlite"))
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config, connection))
    return connection


def executions_by_component(connection):
    with metadata.Metadata(connection) as m:
        types = {t.id: t.name for t in m.store.get_execution_types()}
        result = {}
        for e in m.store.get_executions():
            name = types[e.type_id].split(".")[-1]
            result.setdefault(name, []).append(e.last_known_state)
        return result


def pushed_versions(config):
    model_dir = os.path.join(config.serving_root, config.model_name)
    return sorted(os.listdir(model_dir)) if os.path.isdir(model_dir) else []


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("e2e"))
    config = make_config(tmp, write_slice(os.path.join(tmp, "data")))
    connection = run(config, tmp)
    return tmp, config, connection


def test_every_component_completes(first_run):
    _, _, connection = first_run
    states = executions_by_component(connection)
    assert COMPONENTS <= set(states), f"missing executions: {COMPONENTS - set(states)}"
    for name in COMPONENTS:
        assert states[name] == [COMPLETE], (name, states[name])


def test_model_is_blessed_and_pushed_in_serving_layout(first_run):
    _, config, connection = first_run
    with metadata.Metadata(connection) as m:
        blessings = m.store.get_artifacts_by_type("ModelBlessing")
    assert [b.custom_properties["blessed"].int_value for b in blessings] == [1]
    versions = pushed_versions(config)
    assert len(versions) == 1 and versions[0].isdigit()
    version_dir = os.path.join(config.serving_root, config.model_name, versions[0])
    assert tf.saved_model.contains_saved_model(version_dir)


def test_pushed_model_answers_raw_requests(first_run):
    _, config, _ = first_run
    version_dir = os.path.join(config.serving_root, config.model_name, pushed_versions(config)[0])
    loaded = tf.saved_model.load(version_dir)
    assert {"serving_default", "retrieve", "rate"} <= set(loaded.signatures)
    with open(os.path.join(DATA, "movies.csv"), newline="") as f:
        catalogue = {r["movieId"] for r in csv.DictReader(f)}
    out = loaded.signatures["serving_default"](
        user_id=tf.constant([b"1", b"unknown-user"]), k=tf.constant(10)
    )
    ids = out["item_ids"].numpy()
    assert ids.shape == (2, 10)
    assert {i.decode() for i in ids.ravel()} <= catalogue
    scores = out["scores"].numpy()
    assert (scores[:, :-1] >= scores[:, 1:]).all()  # best first
    rating = loaded.signatures["rate"](user_id=tf.constant([b"1"]), item_id=tf.constant([b"1"]))
    assert 0.0 < float(rating["rating"][0]) < 6.0


def test_second_run_reuses_cached_executions(first_run):
    """Run 2: everything up to Trainer is cached; the Evaluator re-runs because the
    resolver now supplies run 1's blessed model as baseline, and the stock Pusher
    re-pushes that same (cached) model under a new version, as in TFX's penguin
    e2e test."""
    tmp, config, connection = first_run
    run(config, tmp)
    states = executions_by_component(connection)
    for name in COMPONENTS - {"RecommenderEvaluator", "Pusher"}:
        assert states[name] == [COMPLETE, CACHED], (name, states[name])
    assert states["RecommenderEvaluator"] == [COMPLETE, COMPLETE]
    with metadata.Metadata(connection) as m:
        blessings = m.store.get_artifacts_by_type("ModelBlessing")
        models = m.store.get_artifacts_by_type("Model")
    assert len(models) == 1
    latest = max(blessings, key=lambda b: b.id)
    assert latest.custom_properties["baseline_model_id"].int_value == models[0].id
    assert latest.custom_properties["blessed"].int_value == 1
    versions = pushed_versions(config)
    assert len(versions) == 2
    first, second = (
        open(os.path.join(config.serving_root, config.model_name, v, "saved_model.pb"), "rb").read()
        for v in versions
    )
    assert first == second


def drop_rating_column(name, header, body):
    if name != "ratings.csv":
        return header, body
    keep = [i for i, col in enumerate(header) if col != "rating"]
    return [header[i] for i in keep], [[r[i] for i in keep] for r in body]


def rating_out_of_range(name, header, body):
    if name == "ratings.csv":
        body = [list(body[0][:2]) + ["7.5"] + list(body[0][3:]), *body[1:]]
    return header, body


@pytest.mark.parametrize(
    "mutate,message",
    [
        (drop_rating_column, r"log 'ratings' .* missing column\(s\) \['rating'\]"),
        (rating_out_of_range, r"(?s)data does not match schema.*train/rating: Out-of-range values"),
    ],
)
def test_bad_log_fails_clearly_and_pushes_nothing(tmp_path, mutate, message):
    tmp = str(tmp_path)
    config = make_config(tmp, write_slice(os.path.join(tmp, "data"), mutate))
    with pytest.raises(Exception, match=message) as info:
        run(config, tmp)
    assert isinstance(info.value, ValueError) or "ValueError" in repr(info.value)
    assert pushed_versions(config) == []
