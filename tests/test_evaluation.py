"""Offline evaluation through serving signatures, on a hand-built model with known answers."""

import json
import math
import os
import shutil

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv

from components.recommender_evaluator.spec import GateConfig
from contracts import names
from models import features as F
from models.config import TaskEvents
from models.evaluation import evaluate_saved_model, event_feature_spec

SCHEMA_FILE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), os.pardir, "schema", "schema.pbtxt"
)
SCHEMA = tfdv.load_schema_text(SCHEMA_FILE)
# Ranks (training items excluded): user a ranks i1, i2, i3; user b ranks i3, i1, i2.
# Without exclusion every rank is one worse (a training item comes first).
RANKED = {b"a": [b"i1", b"i2", b"i3"], b"b": [b"i3", b"i1", b"i2"]}
RATED = {b"a": 1.0, b"b": 2.0}


class FixedRecommender(tf.Module):
    """`evaluate` with known answers: rank = position in RANKED, rating by user."""

    def __init__(self):
        super().__init__()
        keys = [u + b"|" + i for u, items in RANKED.items() for i in items]
        ranks = [r + 1 for items in RANKED.values() for r in range(len(items))]
        self.ranks = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, tf.constant(ranks, tf.int64)), 99
        )
        self.ratings = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(list(RATED), list(RATED.values())), -1.0
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=names.EXAMPLES_INPUT)])
    def evaluate(self, examples):
        spec = {
            F.USER_ID: tf.io.VarLenFeature(tf.string),
            F.ITEM_ID: tf.io.VarLenFeature(tf.string),
        }
        parsed = tf.io.parse_example(examples, spec)
        users = tf.sparse.to_dense(parsed[F.USER_ID])[:, 0]
        items = tf.sparse.to_dense(parsed[F.ITEM_ID])[:, 0]
        rank = self.ranks.lookup(users + b"|" + items)
        return {
            names.RANK_OUTPUT: rank,
            names.RANK_WITH_SEEN_OUTPUT: rank + 1,
            names.RATING_OUTPUT: self.ratings.lookup(users),
        }


def event(user, item, event_type, rating=None):
    feature = {
        F.USER_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[user])),
        F.ITEM_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[item])),
        F.EVENT_TYPE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[event_type])),
        F.TITLE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"t"])),
    }
    if rating is not None:
        feature[F.RATING] = tf.train.Feature(float_list=tf.train.FloatList(value=[rating]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


EVENTS = [
    event(b"a", b"i2", b"watch", 3.0),  # rate 1 (err 4); rank 2
    event(b"b", b"i3", b"watch", 2.0),  # rate 2 (err 0); rank 1
    event(b"a", b"i1", b"tag"),  # no rating; rank 1
    event(b"b", b"i2", b"purchase", 5.0),  # rate 2 (err 9); rank 3
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluation")
    model_dir = str(tmp / "model")
    module = FixedRecommender()
    tf.saved_model.save(module, model_dir, signatures={names.EVALUATE: module.evaluate})
    path = str(tmp / "eval.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in EVENTS:
            writer.write(record)
    return model_dir, path, event_feature_spec(SCHEMA)


@pytest.mark.parametrize(
    "events, k, rmse, accuracy, counts",
    [
        # Rating on watch events (4, 0), top-1 on watch events (miss, hit).
        (TaskEvents(rating=("watch",), retrieval_eval=("watch",)), 1, math.sqrt(2.0), 0.5, (2, 2)),
        # Every rated event (4, 0, 9); top-1 on every event: miss, hit, hit, miss.
        (TaskEvents(), 1, math.sqrt(13 / 3), 0.5, (3, 4)),
        # Top-2: hit, hit, hit, miss.
        (TaskEvents(), 2, math.sqrt(13 / 3), 0.75, (3, 4)),
        # Top-3 on tag events only: the tag's item is user a's first.
        (TaskEvents(rating=("purchase",), retrieval_eval=("tag",)), 3, 3.0, 1.0, (1, 1)),
    ],
)
def test_metrics_match_hand_worked_values(setup, events, k, rmse, accuracy, counts):
    model_dir, path, spec = setup
    metrics = evaluate_saved_model(model_dir, path, k, events, spec, batch_size=3)
    assert metrics.rmse == pytest.approx(rmse)
    assert metrics.top_k_accuracy == pytest.approx(accuracy)
    assert (metrics.num_rated, metrics.num_retrieval, metrics.k) == (*counts, k)
    # Without exclusion every rank is one worse: the hits at K are the hits at K - 1.
    fewer = evaluate_saved_model(model_dir, path, k - 1, events, spec) if k > 1 else None
    expected = fewer.top_k_accuracy if fewer else 0.0
    assert metrics.top_k_accuracy_with_seen == pytest.approx(expected)


def test_a_model_without_the_evaluate_signature_is_refused(setup, tmp_path):
    _, path, spec = setup
    module = tf.Module()
    module.f = tf.function(lambda: tf.constant(1.0), input_signature=[])
    tf.saved_model.save(module, str(tmp_path), signatures={"other": module.f})
    with pytest.raises(ValueError, match="has no 'evaluate' signature"):
        evaluate_saved_model(str(tmp_path), path, 1, TaskEvents(), spec)


def test_no_scored_event_is_an_error(setup):
    model_dir, path, spec = setup
    with pytest.raises(ValueError, match="0 rated"):
        evaluate_saved_model(model_dir, path, 1, TaskEvents(rating=("click",)), spec)
    with pytest.raises(ValueError, match="no eval examples match"):
        evaluate_saved_model(model_dir, path + ".missing", 1, TaskEvents(), spec)


def test_feature_spec_comes_from_the_schema():
    spec = event_feature_spec(SCHEMA)
    assert set(spec) == {F.USER_ID, F.ITEM_ID, F.EVENT_TYPE, F.RATING}
    trimmed = tfdv.load_schema_text(
        os.path.join(
            os.path.dirname(os.path.abspath(__file__)), os.pardir, "schema", "schema.pbtxt"
        )
    )
    trimmed.feature.remove(next(f for f in trimmed.feature if f.name == F.RATING))
    with pytest.raises(ValueError, match=r"no feature\(s\) \['rating'\]"):
        event_feature_spec(trimmed)


def run_evaluator(tmp_path, model_dir, baseline_uri, served_dir, gate):
    from tfx.types import standard_artifacts

    from components.recommender_evaluator.executor import Executor

    def artifact(kind, uri, **props):
        a = kind()
        a.uri = str(uri)
        a.id = props.pop("id", 0)
        for key, value in props.items():
            setattr(a, key, value)
        return a

    examples = artifact(standard_artifacts.Examples, tmp_path / "examples", split_names='["eval"]')
    os.makedirs(tmp_path / "examples" / "Split-eval", exist_ok=True)
    with tf.io.TFRecordWriter(
        str(tmp_path / "examples" / "Split-eval" / "data.gz"), options="GZIP"
    ) as writer:
        for record in EVENTS:
            writer.write(record)
    os.makedirs(tmp_path / "schema", exist_ok=True)
    tf.io.gfile.copy(SCHEMA_FILE, str(tmp_path / "schema" / "schema.pbtxt"), overwrite=True)
    model = artifact(standard_artifacts.Model, tmp_path / "candidate", id=7)
    inputs = {
        "examples": [examples],
        "schema": [artifact(standard_artifacts.Schema, tmp_path / "schema")],
        "model": [model],
        "baseline_model": [artifact(standard_artifacts.Model, baseline_uri, id=3)],
    }
    outputs = {
        "evaluation": [artifact(standard_artifacts.ModelEvaluation, tmp_path / "evaluation")],
        "blessing": [artifact(standard_artifacts.ModelBlessing, tmp_path / "blessing")],
    }
    Executor().Do(
        inputs,
        outputs,
        {
            "gate_config": json.dumps(gate.to_json_dict()),
            "events": json.dumps(
                TaskEvents(rating=("watch",), retrieval_eval=("watch",)).to_json_dict()
            ),
            "k": 1,
            "served_model_dir": str(served_dir),
        },
    )
    blessing = outputs["blessing"][0]
    with open(tmp_path / "evaluation" / "metrics.json") as f:
        return blessing.get_int_custom_property("blessed"), json.load(f)


@pytest.mark.parametrize(
    "served, require, blessed, says",
    [
        (True, True, 1, "compared with the served model"),
        (False, True, 0, "Restore the artifact, or set GateConfig.require_baseline=False"),
        (False, False, 1, "no served model was found"),
    ],
)
def test_a_vanished_baseline_is_replaced_by_the_served_model_or_fails_closed(
    setup, tmp_path, served, require, blessed, says
):
    model_dir, _, _ = setup
    candidate = tmp_path / "candidate" / "Format-Serving"
    shutil.copytree(model_dir, candidate)
    served_dir = tmp_path / "serving" / "rec"
    if served:
        shutil.copytree(model_dir, served_dir / "1700000000")
    gate = GateConfig(max_rmse=2.0, min_top_k_accuracy=0.1, require_baseline=require)
    got, report = run_evaluator(
        tmp_path, model_dir, tmp_path / "deleted-baseline", served_dir, gate
    )
    assert got == blessed
    text = " ".join(report["baseline_notes"] + report["reasons"])
    assert "the last blessed model (artifact 3" in text and says in text
    assert (report["baseline"] is not None) == served
