"""Offline evaluation through serving signatures, on a hand-built model with known answers."""

import math
import os

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv

from contracts import names
from models import features as F
from models.config import TaskEvents
from models.evaluation import evaluate_saved_model, event_feature_spec

SCHEMA = tfdv.load_schema_text(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "schema", "schema.pbtxt")
)
# retrieve: user a -> [i1, i2, i3], user b -> [i3, i1, i2]; rate: a -> 1.0, b -> 2.0.
RANKED = {b"a": [b"i1", b"i2", b"i3"], b"b": [b"i3", b"i1", b"i2"]}
RATED = {b"a": 1.0, b"b": 2.0}


class FixedRecommender(tf.Module):
    def __init__(self):
        super().__init__()
        users = list(RANKED)
        self.rows = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(users, tf.range(len(users), dtype=tf.int64)), -1
        )
        self.ranked = tf.constant([RANKED[u] for u in users])
        self.ratings = tf.constant([RATED[u] for u in users])

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name=names.USER_ID_INPUT),
            tf.TensorSpec([], tf.int32, name=names.K_INPUT),
        ]
    )
    def retrieve(self, user_id, k):
        top = tf.gather(self.ranked, self.rows.lookup(user_id))[:, :k]
        return {names.ITEM_IDS_OUTPUT: top}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name=names.USER_ID_INPUT),
            tf.TensorSpec([None], tf.string, name=names.ITEM_ID_INPUT),
        ]
    )
    def rate(self, user_id, item_id):
        del item_id
        return {names.RATING_OUTPUT: tf.gather(self.ratings, self.rows.lookup(user_id))}


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
    tf.saved_model.save(
        module,
        model_dir,
        signatures={names.RETRIEVE: module.retrieve, names.RATE: module.rate},
    )
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
