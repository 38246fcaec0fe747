"""Model maths on tiny tensors with hand-worked expectations."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_recommenders as tfrs

from models import features as F
from models.baselines import BiasModel, fit_bias_model
from models.config import DCNConfig, ModelConfig, TaskEvents
from models.data import (
    event_statistics,
    item_index_features,
    with_item_probability,
    with_task_events,
)
from models.layers import DCNRatingTower, ItemTower, UserTower, masked_mean
from models.model import Catalogue, MultiTaskRecommender, build_model, mean_softmax_loss
from models.tasks import RatingTask
from models.training import FailOnNonFiniteLoss


class FixedTower(tf.keras.layers.Layer):
    """Looks up a fixed (trainable) embedding table by a feature index."""

    def __init__(self, key, table):
        super().__init__()
        self.key = key
        self.table = tf.Variable(np.asarray(table, np.float32))

    def call(self, features):
        return tf.gather(self.table, features[self.key])


class SumRating(tf.keras.layers.Layer):
    """rating = w * sum(u * i) with one trainable scalar w = 1."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(1.0)

    def call(self, inputs):
        user, item = inputs[:2]
        return self.w * tf.reduce_sum(user * item, axis=1, keepdims=True)


def tiny_model(retrieval_weight, rating_weight):
    return MultiTaskRecommender(
        user_tower=FixedTower(F.USER_IDX, [[1.0, 0.0], [0.0, 1.0]]),
        item_tower=FixedTower(F.ITEM_IDX, [[1.0, 0.0], [0.0, 2.0]]),
        rating_tower=SumRating(),
        retrieval_task=tfrs.tasks.Retrieval(loss=mean_softmax_loss()),
        rating_task=RatingTask(),
        retrieval_weight=retrieval_weight,
        rating_weight=rating_weight,
    )


BATCH = {
    F.USER_IDX: tf.constant([0, 1]),
    F.ITEM_IDX: tf.constant([0, 1]),
    F.RATING: tf.constant([3.0, 99.0]),  # 99 is masked out
    F.RATING_MASK: tf.constant([1.0, 0.0]),
}
# Scores u·i: [[1, 0], [0, 2]]. Retrieval (mean softmax CE over the diagonal):
#   row 0: -log(e^1 / (e^1 + e^0)), row 1: -log(e^2 / (e^0 + e^2))
RETRIEVAL_LOSS = (np.log(1 + np.exp(-1.0)) + np.log(1 + np.exp(-2.0))) / 2
# Rating: only row 0 is rated; prediction 1, label 3 -> squared error 4 over 1 rated event.
RATING_LOSS = 4.0


def test_event_weights_scale_each_events_retrieval_loss():
    model = tiny_model(1.0, 0.0)
    weighted = {**BATCH, F.RETRIEVAL_WEIGHT: tf.constant([1.0, 0.0])}
    # Only row 0 counts; the mean still divides by the batch size (2).
    expected = np.log(1 + np.exp(-1.0)) / 2
    assert float(model.compute_loss(weighted)) == pytest.approx(expected, rel=1e-5)
    doubled = {**BATCH, F.RETRIEVAL_WEIGHT: tf.constant([2.0, 2.0])}
    assert float(model.compute_loss(doubled)) == pytest.approx(2 * RETRIEVAL_LOSS, rel=1e-5)


def test_task_events_select_and_weight_events():
    batch = {
        F.EVENT_TYPE: tf.constant([b"view", b"click", b"purchase", b""]),
        F.RATING_MASK: tf.constant([0.0, 1.0, 1.0, 0.0]),
    }
    dataset = with_task_events(
        tf.data.Dataset.from_tensors(batch),
        TaskEvents(retrieval=(("view", 1.0), ("purchase", 3.0)), rating=("purchase",)),
    )
    out = next(iter(dataset))
    assert out[F.RETRIEVAL_WEIGHT].numpy().tolist() == [1.0, 0.0, 3.0, 0.0]
    assert out[F.RATING_MASK].numpy().tolist() == [0.0, 0.0, 1.0, 0.0]
    unchanged = next(iter(with_task_events(tf.data.Dataset.from_tensors(batch), TaskEvents())))
    assert F.RETRIEVAL_WEIGHT not in unchanged


def test_task_events_are_validated():
    with pytest.raises(ValueError, match="weights >= 0"):
        TaskEvents(retrieval=(("view", -1.0),))
    with pytest.raises(ValueError, match="weight > 0"):
        TaskEvents(retrieval=(("view", 0.0),))
    with pytest.raises(ValueError, match=r"retrieval_eval event type\(s\) \['cart'\] do not train"):
        TaskEvents(retrieval=(("view", 1.0), ("cart", 0.0)), retrieval_eval=("cart",))
    events = TaskEvents(retrieval=(("view", 1.0), ("click", 2.0)), rating=("cart",))
    config = ModelConfig(events=events)
    assert ModelConfig.from_json_dict(config.to_json_dict()) == config
    assert events.evaluated_retrieval_events() == ("view", "click")
    assert TaskEvents(retrieval_eval=("watch",)).evaluated_retrieval_events() == ("watch",)
    assert TaskEvents().evaluated_retrieval_events() == ()


def test_rating_task_masks_unrated_events():
    task = RatingTask()
    loss = task(
        labels=tf.constant([3.0, 99.0, 5.0]),
        predictions=tf.constant([[1.0], [0.0], [4.0]]),
        sample_weight=tf.constant([1.0, 0.0, 1.0]),
    )
    assert float(loss) == pytest.approx((4.0 + 1.0) / 2)
    assert float(task.rmse.result()) == pytest.approx(np.sqrt(2.5))


def test_rating_task_without_ratings_is_zero():
    loss = RatingTask()(tf.constant([1.0]), tf.constant([5.0]), tf.constant([0.0]))
    assert float(loss) == 0.0


@pytest.mark.parametrize("w_retrieval,w_rating", [(1.0, 1.0), (0.5, 2.0), (1.0, 0.0), (0.0, 1.0)])
def test_compute_loss_is_weighted_sum(w_retrieval, w_rating):
    loss = tiny_model(w_retrieval, w_rating).compute_loss(BATCH, training=True)
    assert float(loss) == pytest.approx(
        w_retrieval * RETRIEVAL_LOSS + w_rating * RATING_LOSS, rel=1e-5
    )


def test_zero_rating_weight_removes_rating_gradient():
    model = tiny_model(1.0, 0.0)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(BATCH, training=True)
    grad = tape.gradient(loss, model.rating_tower.w, unconnected_gradients="zero")
    assert float(grad) == 0.0


def test_zero_retrieval_weight_leaves_only_rating_gradient():
    model = tiny_model(0.0, 1.0)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(BATCH, training=True)
    grads = tape.gradient(loss, [model.user_tower.table, model.rating_tower.w])
    # d/dw (w*1 - 3)^2 at w=1 = 2 * (1 - 3) * 1 = -4; user 1 (unrated) gets no gradient.
    assert float(grads[1]) == pytest.approx(-4.0)
    np.testing.assert_allclose(tf.convert_to_tensor(grads[0]).numpy()[1], [0.0, 0.0])


def test_negative_weight_is_rejected():
    with pytest.raises(ValueError, match="-1"):
        tiny_model(-1.0, 1.0)


@pytest.mark.parametrize("structure", ["stacked", "parallel"])
@pytest.mark.parametrize("projection_dim", [None, 4])
def test_dcn_tower_shapes_and_parameters(structure, projection_dim):
    dim, cross, deep = 8, 2, (16, 8)
    tower = DCNRatingTower(DCNConfig(structure, cross, projection_dim, deep), rating_prior=3.5)
    out = tower((tf.ones([5, dim]), tf.ones([5, dim])))
    assert out.shape == (5, 1)
    x = 3 * dim
    cross_params = (x * x + x) if projection_dim is None else (2 * x * projection_dim + x)
    deep_in = x
    deep_params = 0
    for width in deep:
        deep_params += deep_in * width + width
        deep_in = width
    head_in = deep[-1] + (x if structure == "parallel" else 0)
    expected = cross * cross_params + deep_params + head_in + 1
    assert tower.count_params() == expected


def test_the_dot_product_term_adds_a_learned_multiple_of_the_affinity():
    config = DCNConfig(num_cross_layers=0, deep_layers=(2,), dot_product=True)
    tower = DCNRatingTower(config, residual=True)
    user, item = tf.constant([[1.0, 2.0], [0.0, 1.0]]), tf.constant([[3.0, 1.0], [2.0, -1.0]])
    assert tower((user, item)).numpy().ravel().tolist() == [0.0, 0.0]  # residual: starts at 0
    tower.dot_weight.assign(0.5)
    np.testing.assert_allclose(tower((user, item)).numpy().ravel(), [2.5, -0.5])  # 0.5 * <u, i>
    plain = DCNRatingTower(DCNConfig())  # off by default
    plain((user, item))
    assert plain.dot_weight is None


def test_rating_prior_is_initial_bias():
    tower = DCNRatingTower(DCNConfig(num_cross_layers=0, deep_layers=(4,)), rating_prior=3.5)
    tower((tf.zeros([1, 2]), tf.zeros([1, 2])))
    assert float(tower.output_layer.bias[0]) == 3.5


def test_item_tower_pools_tokens_and_ignores_padding():
    tower = ItemTower(num_items=3, token_vocab_sizes={F.GENRE_IDS: 2, F.YEAR_BUCKET: 5}, dim=4)
    feats = {
        F.ITEM_IDX: tf.constant([0, 0, 0]),
        F.GENRE_IDS: tf.constant([[1, 0, 0], [1, 1, 0], [2, 0, 0]]),
        F.YEAR_BUCKET: tf.constant([[3], [3], [3]]),
    }
    out = tower(feats).numpy()
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6)  # mean of {g1} == mean of {g1, g1}
    assert not np.allclose(out[0], out[2])  # another genre, another representation
    assert tower(tower.oov_features()).shape == (1, 4)


def test_towers_reject_empty_vocabularies():
    with pytest.raises(ValueError, match="num_users"):
        UserTower(0, 4)
    with pytest.raises(ValueError, match="title_tokens"):
        ItemTower(3, {F.TITLE_TOKENS: 0}, 4)


def test_build_model_trains_one_step():
    model = build_model(
        ModelConfig(embedding_dim=4), num_users=2, num_items=2, token_vocab_sizes={F.GENRE_IDS: 2}
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(0.1))
    batch = {**BATCH, F.GENRE_IDS: tf.zeros([2, 10], tf.int64)}
    history = model.fit(tf.data.Dataset.from_tensors(batch), epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]


def test_model_config_round_trips_and_validates():
    config = ModelConfig(dcn=DCNConfig("parallel", 3, 8, (32,)), rating_weight=0.5)
    assert ModelConfig.from_json_dict(config.to_json_dict()) == config
    with pytest.raises(ValueError, match="structure"):
        DCNConfig(structure="diagonal")
    with pytest.raises(ValueError, match="at least one"):
        ModelConfig(retrieval_weight=0.0, rating_weight=0.0)
    with pytest.raises(ValueError, match="bogus"):
        ModelConfig.from_json_dict({"bogus": 1})


def test_event_statistics_and_sampling_probabilities_are_hand_worked():
    batch = {
        F.USER_IDX: tf.constant([0, 0, 1, 1], tf.int64),
        F.ITEM_IDX: tf.constant([0, 1, 1, 2], tf.int64),
        F.RATING: tf.constant([4.0, 0.0, 2.0, 0.0]),
        F.RATING_MASK: tf.constant([1.0, 0.0, 1.0, 0.0]),
    }
    dataset = tf.data.Dataset.from_tensors(batch)
    # 3 items + 1 OOV bucket: counts [1, 2, 1, 0]; ratings 4 and 2 are rated.
    stats = event_statistics(dataset.repeat(2), num_items=3)
    np.testing.assert_allclose(stats.item_probabilities, [0.25, 0.5, 0.25, 0.0])
    assert stats.mean_rating == pytest.approx(3.0)
    assert stats.num_events == 8
    # The never-seen OOV item gets the smallest non-zero probability (log stays finite).
    probe = {F.ITEM_IDX: tf.constant([3, 1, 0], tf.int64)}
    out = next(
        iter(with_item_probability(tf.data.Dataset.from_tensors(probe), stats.item_probabilities))
    )
    np.testing.assert_allclose(out[F.ITEM_PROB].numpy(), [0.25, 0.5, 0.25])
    unrated = {**batch, F.RATING_MASK: tf.zeros([4])}
    with pytest.raises(ValueError, match="8 events and 0 ratings"):
        event_statistics(tf.data.Dataset.from_tensors(unrated).repeat(2), num_items=3)


def test_event_statistics_fit_the_bias_prior_on_the_rated_events_only():
    batch = {
        F.USER_IDX: tf.constant([0, 0, 1, 1], tf.int64),
        F.ITEM_IDX: tf.constant([0, 1, 1, 2], tf.int64),
        F.RATING: tf.constant([4.0, 5.0, 2.0, 1.0]),
        F.RATING_MASK: tf.constant([1.0, 0.0, 1.0, 0.0]),  # 5.0 and 1.0 are not ratings
    }
    stats = event_statistics(tf.data.Dataset.from_tensors(batch), num_items=3, num_users=2)
    expected = fit_bias_model(
        np.array([0, 1]), np.array([0, 1]), np.array([4.0, 2.0]), num_users=3, num_items=4
    )
    assert stats.bias.mean == pytest.approx(3.0)
    np.testing.assert_allclose(stats.bias.user_bias, expected.user_bias)
    np.testing.assert_allclose(stats.bias.item_bias, expected.item_bias)
    # One sweep by hand: b_i0 = (4 - 3) / (1 + 10); b_u0 = (4 - 3 - b_i0) / (1 + 10).
    one = fit_bias_model(np.array([0, 1]), np.array([0, 1]), np.array([4.0, 2.0]), 3, 4, sweeps=1)
    assert one.item_bias[0] == pytest.approx(1 / 11)
    assert one.user_bias[0] == pytest.approx((1 - 1 / 11) / 11)


def test_the_rating_tower_adds_to_the_bias_prior_and_starts_at_it():
    bias = BiasModel(3.0, np.array([0.5, -0.5, 0.0]), np.array([0.25, 0.0, 0.0]))
    model = build_model(ModelConfig(embedding_dim=4), 2, 2, {F.GENRE_IDS: 2}, rating_prior=bias)
    features = {
        F.USER_IDX: tf.constant([0, 1, 2]),
        F.ITEM_IDX: tf.constant([0, 1, 2]),
        F.GENRE_IDS: tf.zeros([3, 10], tf.int64),
    }
    np.testing.assert_allclose(
        model(features)["rating"].numpy()[:, 0], [3.75, 2.5, 3.0], rtol=1e-6
    )  # the residual tower starts at 0
    assert not model.rating_prior.trainable_variables  # fixed: not fitted by gradient
    outside = model.rating_prior(tf.constant([7], tf.int64), tf.constant([9], tf.int64))
    assert float(outside[0, 0]) == 3.0  # indices past the tables: no bias
    mean_start = build_model(ModelConfig(embedding_dim=4), 2, 2, {F.GENRE_IDS: 2}, rating_prior=3.5)
    assert mean_start.rating_prior is None
    mean_start(features)
    assert float(mean_start.rating_tower.output_layer.bias[0]) == 3.5


def test_logq_correction_changes_the_retrieval_loss_by_the_hand_worked_amount():
    model = tiny_model(1.0, 0.0)
    # logits - log(p): row scores [[1, 0], [0, 2]] minus log([0.5, 0.25]) per candidate column.
    probs = {**BATCH, F.ITEM_PROB: tf.constant([0.5, 0.25])}
    logits = np.array([[1.0, 0.0], [0.0, 2.0]]) - np.log([0.5, 0.25])[None, :]
    expected = np.mean([-(logits[r, r] - np.log(np.exp(logits[r]).sum())) for r in range(2)])
    assert float(model.compute_loss(probs)) == pytest.approx(expected, rel=1e-5)


def test_training_stops_with_a_clear_error_when_the_loss_diverges():
    model = tiny_model(0.0, 1.0)
    model.compile(optimizer=tf.keras.optimizers.SGD(1.0))
    batch = {**BATCH, F.RATING: tf.constant([1e30, 0.0])}  # a finite but absurd rating
    with pytest.raises(ValueError, match=r"training diverged: loss is (inf|nan) at epoch 1"):
        model.fit(
            tf.data.Dataset.from_tensors(batch).repeat(3),
            epochs=2,
            verbose=0,
            callbacks=[FailOnNonFiniteLoss()],
        )


def test_history_pooling_can_lean_towards_recent_items():
    embeddings = tf.constant([[[1.0], [2.0], [4.0]]])  # [1, 3, 1]; position 0 pads
    ids = tf.constant([[0, 5, 6]])
    assert float(masked_mean(embeddings, ids)[0, 0]) == pytest.approx(3.0)
    tower = UserTower(num_users=3, dim=2, num_items=7, history_decay=0.5)
    weights = tower._recency(ids)
    np.testing.assert_allclose(weights.numpy(), [[0.25, 0.5, 1.0]])
    # (2 * 0.5 + 4 * 1) / (0.5 + 1): the newest item counts twice the one before it.
    assert float(masked_mean(embeddings, ids, weights)[0, 0]) == pytest.approx(10 / 3)
    assert UserTower(num_users=3, dim=2, num_items=7)._recency(ids) is None
    with pytest.raises(ValueError, match="history_decay"):
        UserTower(num_users=3, dim=2, num_items=7, history_decay=0.0)


def test_the_rating_tower_can_read_the_user_id_alone():
    """With history, the query is [id, pooled history] projected; `rate_from_history`
    False hands the rating tower the id embedding instead (what `rate` then serves)."""
    user_tower = UserTower(num_users=2, dim=2, num_items=2)
    features = {**BATCH, F.HISTORY: tf.constant([[1, 2], [0, 1]], tf.int64)}
    user_tower(features)
    user_tower.embedding.embeddings.assign([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    for from_history in (True, False):
        model = MultiTaskRecommender(
            user_tower=user_tower,
            item_tower=FixedTower(F.ITEM_IDX, [[1.0, 0.0], [0.0, 2.0]]),
            rating_tower=SumRating(),
            retrieval_task=tfrs.tasks.Retrieval(loss=mean_softmax_loss()),
            rating_task=RatingTask(),
            rate_from_history=from_history,
        )
        rating = model(features)["rating"].numpy()[:, 0]
        query = user_tower(features).numpy()
        users = query if from_history else np.array([[1.0, 0.0], [0.0, 1.0]])
        np.testing.assert_allclose(rating, (users * [[1.0, 0.0], [0.0, 2.0]]).sum(1), rtol=1e-6)
    assert not np.allclose(query, [[1.0, 0.0], [0.0, 1.0]])  # the query is not the id row


def test_the_dot_product_term_reads_the_retrieval_query():
    """With the id as the tower's user input, `dot_product` still adds <query, item>."""
    tower = DCNRatingTower(DCNConfig(num_cross_layers=0, deep_layers=(2,), dot_product=True))
    ids, items = tf.constant([[1.0, 0.0]]), tf.constant([[2.0, 3.0]])
    query = tf.constant([[0.0, 1.0]])
    without = tower((ids, items)).numpy()
    tower.dot_weight.assign(0.5)
    np.testing.assert_allclose(tower((ids, items)).numpy(), without + 0.5 * 2.0, rtol=1e-6)
    np.testing.assert_allclose(tower((ids, items, query)).numpy(), without + 0.5 * 3.0, rtol=1e-6)


def test_catalogue_softmax_scores_every_item_of_the_catalogue():
    # Catalogue item 2 = [1, 1] is in no batch; the in-batch softmax never sees it.
    model = MultiTaskRecommender(
        user_tower=FixedTower(F.USER_IDX, [[1.0, 0.0], [0.0, 1.0]]),
        item_tower=FixedTower(F.ITEM_IDX, [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]),
        rating_tower=SumRating(),
        retrieval_task=tfrs.tasks.Retrieval(loss=mean_softmax_loss()),
        rating_task=RatingTask(),
        rating_weight=0.0,
        catalogue=Catalogue({F.ITEM_IDX: np.arange(3)}),
    )
    # Scores over the catalogue: user 0 [1, 0, 1], user 1 [0, 2, 1].
    row0 = -1.0 + np.log(np.exp(1.0) + np.exp(0.0) + np.exp(1.0))
    row1 = -2.0 + np.log(np.exp(0.0) + np.exp(2.0) + np.exp(1.0))
    weighted = {**BATCH, F.RETRIEVAL_WEIGHT: tf.constant([1.0, 3.0])}
    for training in (True, False):
        loss = model.compute_loss(weighted, training=training)
        assert float(loss) == pytest.approx((row0 + 3 * row1) / 2, rel=1e-5)


def test_item_index_features_put_each_catalogue_row_at_its_item_index():
    catalog = tf.data.Dataset.from_tensors(
        {
            F.ITEM_IDX: tf.constant([1, 3, 0], tf.int64),  # 3 = OOV of a 3-item vocabulary
            F.GENRE_IDS: tf.constant([[2, 0], [5, 5], [1, 3]], tf.int64),
        }
    )
    table = item_index_features(catalog, num_items=3, token_features=[F.GENRE_IDS])
    assert table[F.ITEM_IDX].tolist() == [0, 1, 2, 3]
    # Item 2 has no catalogue row and the OOV row keeps no tokens.
    assert table[F.GENRE_IDS].tolist() == [[1, 3], [2, 0], [0, 0], [0, 0]]


def test_retrieval_negatives_are_validated():
    assert ModelConfig().retrieval_negatives == "in_batch"
    with pytest.raises(ValueError, match="retrieval_negatives must be one of"):
        ModelConfig(retrieval_negatives="sampled")
