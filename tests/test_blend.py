"""`recommend`'s blend weight, chosen on held-out events as served (hand-worked)."""

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
from testlib import TableTower

from models import features as F
from models.blend import choose_retrieval_weight
from models.model import MultiTaskRecommender, mean_softmax_loss
from models.tasks import RatingTask

WEIGHTS = (0.0, 1.0, 10.0, 1000.0)


class AgainstAffinity(tf.keras.layers.Layer):
    """rating = -10 <u, i>: the rating tower prefers what retrieval ranks last."""

    def call(self, inputs):
        user, item = inputs[:2]
        return -10.0 * tf.reduce_sum(user * item, axis=1, keepdims=True)


def model():
    # One user [1, 0]; items score 1, .5, .2 (retrieval order i0 i1 i2); OOV row last.
    return MultiTaskRecommender(
        user_tower=TableTower(F.USER_IDX, [[1.0, 0.0], [0.0, 0.0]]),
        item_tower=TableTower(F.ITEM_IDX, [[1.0, 0.0], [0.5, 0.0], [0.2, 0.0], [0.0, 0.0]]),
        rating_tower=AgainstAffinity(),
        retrieval_task=tfrs.tasks.Retrieval(loss=mean_softmax_loss()),
        rating_task=RatingTask(),
    )


def choose(target, known=((), ())):
    holdout = tf.data.Dataset.from_tensors(
        {
            F.USER_IDX: tf.constant([0], tf.int64),
            F.ITEM_IDX: tf.constant([target], tf.int64),
            F.EVENT_TYPE: tf.constant([b"watch"]),
        }
    )
    return choose_retrieval_weight(
        model(),
        holdout,
        {F.ITEM_IDX: np.arange(4)},
        np.array([0, 1, 2]),
        (np.array(known[0], np.int64), np.array(known[1], np.int64)),
        candidates=3,
        k=1,
        weights=WEIGHTS,
    )


def test_the_weight_follows_what_the_held_out_user_chose():
    # Final score (w - 10) * <u, i>: below w = 10 the list starts with i2, above with i0.
    rating_wins = choose(target=2)
    assert rating_wins["hit_rate"] == {"0.0": 1.0, "1.0": 1.0, "10.0": 0.0, "1000.0": 0.0}
    assert rating_wins["retrieval_weight"] == 1.0  # ties go to the larger weight
    assert rating_wins["retrieval_order"] == 0.0
    retrieval_wins = choose(target=0)
    assert retrieval_wins["retrieval_weight"] == 1000.0
    assert retrieval_wins["retrieval_order"] == 1.0 and retrieval_wins["events"] == 1


def test_known_items_are_not_candidates():
    # With i0 known, the candidates are i1 and i2; retrieval order starts with i1.
    chosen = choose(target=1, known=([0], [0]))
    assert chosen["retrieval_order"] == 1.0
    assert chosen["hit_rate"]["0.0"] == 0.0 and chosen["retrieval_weight"] == 1000.0


def test_no_counted_event_chooses_nothing():
    holdout = tf.data.Dataset.from_tensors(
        {
            F.USER_IDX: tf.constant([0], tf.int64),
            F.ITEM_IDX: tf.constant([0], tf.int64),
            F.EVENT_TYPE: tf.constant([b"tag"]),
        }
    )
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    chosen = choose_retrieval_weight(
        model(), holdout, {F.ITEM_IDX: np.arange(4)}, np.arange(3), empty, 3, 1, ("watch",)
    )
    assert chosen["retrieval_weight"] is None and chosen["events"] == 0
