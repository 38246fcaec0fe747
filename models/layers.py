"""Keras layers of the recommender: shared user/item towers and the DCN rating tower."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

from models import features as F
from models.config import DCNConfig


def masked_mean(
    embeddings: tf.Tensor, ids: tf.Tensor, weights: tf.Tensor | None = None
) -> tf.Tensor:
    """Mean of `embeddings` [B, n, d] over the positions where `ids` [B, n] > 0; 0 if none.

    `weights` ([B or 1, n]), if given, weigh the positions (a weighted mean).
    """
    mask = tf.cast(ids > 0, embeddings.dtype)
    if weights is not None:
        mask *= tf.cast(weights, embeddings.dtype)
    mask = tf.expand_dims(mask, -1)
    return tf.math.divide_no_nan(
        tf.reduce_sum(embeddings * mask, axis=1), tf.reduce_sum(mask, axis=1)
    )


class UserTower(tf.keras.layers.Layer):
    """Maps transformed user features to a [batch, dim] representation: the query.

    Without history it is the user id's embedding. With `num_items`, it also
    reads the user's recent items (`F.HISTORY`, item index + 1, 0 pads):
    [id embedding, mean of their embeddings, whether there is any] is
    projected to `dim`. A user the model never saw (the OOV id) is then
    described by their recent items, which is how a new user gets personal
    results without retraining.

    Args:
        num_users: Size of the user vocabulary (the OOV bucket is added here).
        dim: Output size.
        num_items: Size of the item vocabulary, for the history's embeddings;
            None: no history.
        history_decay: Weight of an item relative to the one after it in the
            pooled history (right-aligned, newest last): 1 is a plain mean, less
            than 1 leans the query towards the most recent items.
    """

    def __init__(
        self,
        num_users: int,
        dim: int,
        num_items: int | None = None,
        history_decay: float = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_users <= 0:
            raise ValueError(f"num_users must be positive, got {num_users}")
        if not 0 < history_decay <= 1:
            raise ValueError(f"history_decay must be in (0, 1], got {history_decay}")
        self.history_decay = float(history_decay)
        self.embedding = tf.keras.layers.Embedding(num_users + F.OOV_BUCKETS, dim, name="user_id")
        self.history_embedding = None
        if num_items is not None:
            self.history_embedding = tf.keras.layers.Embedding(
                num_items + F.OOV_BUCKETS + 1, dim, name="history"
            )
            self.projection = tf.keras.layers.Dense(dim, name="user_projection")

    def _recency(self, history: tf.Tensor) -> tf.Tensor | None:
        """[1, H] weights decay^(H - 1 - j) of the right-aligned positions; None for a mean."""
        if self.history_decay == 1.0:
            return None
        length = tf.shape(history)[1]
        age = tf.cast(length - 1 - tf.range(length), tf.float32)
        return (self.history_decay**age)[None, :]

    def identity(self, users: tf.Tensor) -> tf.Tensor:
        """The id embeddings [batch, dim] of user indices [batch] (no history)."""
        return self.embedding(users)

    def call(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """Returns user representations [batch, dim]; a missing history counts as empty."""
        user = self.embedding(features[F.USER_IDX])
        if self.history_embedding is None:
            return user
        history = features.get(F.HISTORY)
        if history is None:
            history = tf.zeros([tf.shape(user)[0], 1], tf.int64)
        pooled = masked_mean(self.history_embedding(history), history, self._recency(history))
        has = tf.cast(tf.reduce_any(history > 0, axis=1, keepdims=True), user.dtype)
        return self.projection(tf.concat([user, pooled, has], axis=-1))


class ItemTower(tf.keras.layers.Layer):
    """Maps transformed item features to a [batch, dim] representation.

    The id embedding is concatenated with one mean-pooled embedding per padded
    id-list feature (genres, title tokens, release-year bucket; id 0 pads), so
    items with few or no tokens get comparable scales, then projected to `dim`.
    Cold or rare items still get a representation from their content.

    Args:
        num_items: Size of the item vocabulary (the OOV bucket is added here).
        token_vocab_sizes: Vocabulary size of each id-list feature, keyed by
            feature name (padding and OOV ids are added here).
        dim: Output size.

    Raises:
        ValueError: on a non-positive vocabulary size.
    """

    def __init__(self, num_items: int, token_vocab_sizes: dict[str, int], dim: int, **kwargs):
        super().__init__(**kwargs)
        sizes = {"items": num_items, **token_vocab_sizes}
        bad = {k: v for k, v in sizes.items() if v <= 0}
        if bad:
            raise ValueError(f"vocabulary sizes must be positive, got {bad}")
        self.num_items = num_items
        self.item_embedding = tf.keras.layers.Embedding(
            num_items + F.OOV_BUCKETS, dim, name="item_id"
        )
        self.token_embeddings = {
            name: tf.keras.layers.Embedding(size + F.OOV_BUCKETS + 1, dim, name=name)
            for name, size in sorted(token_vocab_sizes.items())
        }
        self.projection = tf.keras.layers.Dense(dim, name="item_projection")

    def oov_features(self) -> dict[str, tf.Tensor]:
        """Features of one unknown item: the OOV id bucket and no tokens."""
        return {
            F.ITEM_IDX: tf.constant([self.num_items], tf.int64),
            **{name: tf.zeros([1, 1], tf.int64) for name in self.token_embeddings},
        }

    def call(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """Returns item embeddings [batch, dim]."""
        parts = [self.item_embedding(features[F.ITEM_IDX])]
        for name, embedding in self.token_embeddings.items():
            ids = features[name]
            parts.append(masked_mean(embedding(ids), ids))
        return self.projection(tf.concat(parts, axis=-1))


class DCNRatingTower(tf.keras.layers.Layer):
    """Predicts a rating [batch, 1] from user and item representations via DCN-v2.

    The input is [u, i, u * i] (shape [batch, 3 * dim]). Cross layers
    (`tfrs.layers.dcn.Cross`, full or low-rank) model explicit feature crosses;
    the deep part is a ReLU MLP. "stacked" feeds the cross output to the deep
    part; "parallel" runs both on the input and concatenates their outputs.
    With `config.dot_product`, a learned multiple of <u, i> (starting at 0) is
    added: one weight that carries the retrieval task's affinity into the
    rating, which a few hundred ratings can fit where the whole tower cannot.

    Args:
        config: Structure, depth and widths of the tower.
        seed: Seed of the kernel initialisers.
        rating_prior: Initial output bias, typically the mean training rating.
        residual: The tower predicts what is added to a `RatingPrior`: its output
            layer starts at zero, so the model starts at the prior.
    """

    def __init__(
        self,
        config: DCNConfig,
        seed: int = 0,
        rating_prior: float = 0.0,
        residual: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.config = config
        self.cross_layers = [
            tfrs.layers.dcn.Cross(
                projection_dim=config.projection_dim,
                kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed + i),
                name=f"cross_{i}",
            )
            for i in range(config.num_cross_layers)
        ]
        self.deep_layers = [
            tf.keras.layers.Dense(
                width,
                activation="relu",
                kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed + 100 + i),
                name=f"deep_{i}",
            )
            for i, width in enumerate(config.deep_layers)
        ]
        self.output_layer = tf.keras.layers.Dense(
            1,
            kernel_initializer="zeros" if residual else "glorot_uniform",
            bias_initializer=tf.keras.initializers.Constant(0.0 if residual else rating_prior),
            name="rating",
        )
        self.dot_weight = (
            self.add_weight(name="dot_weight", shape=(), initializer="zeros")
            if config.dot_product
            else None
        )

    def call(self, inputs: tuple[tf.Tensor, ...]) -> tf.Tensor:
        """Returns predicted ratings [batch, 1] for (user [batch, d], item [batch, d]).

        A third input, the retrieval query [batch, d], is what the dot product
        term reads when the tower's user input is not the query.
        """
        user, item = inputs[:2]
        query = inputs[2] if len(inputs) > 2 else user
        x0 = tf.concat([user, item, user * item], axis=-1)
        crossed = x0
        for layer in self.cross_layers:
            crossed = layer(x0, crossed)
        deep = crossed if self.config.structure == "stacked" else x0
        for layer in self.deep_layers:
            deep = layer(deep)
        if self.config.structure == "parallel":
            deep = tf.concat([crossed, deep], axis=-1)
        rating = self.output_layer(deep)
        if self.dot_weight is not None:
            rating += self.dot_weight * tf.reduce_sum(query * item, axis=1, keepdims=True)
        return rating


def rate(
    user_tower: UserTower,
    rating_tower: tf.keras.layers.Layer,
    queries: tf.Tensor,
    users: tf.Tensor,
    items: tf.Tensor,
    from_history: bool,
) -> tf.Tensor:
    """The rating tower's output [batch, 1] for queries, user indices and items [batch, d].

    The tower reads the queries (`from_history`), or the users' id embeddings
    (`UserTower.identity`) with the queries for its dot product term. The one
    rule for training (`MultiTaskRecommender`) and serving (`ServingModule`).
    """
    if from_history:
        return rating_tower((queries, items))
    return rating_tower((user_tower.identity(users), items, queries))


class RatingPrior(tf.keras.layers.Layer):
    """mu + b_u + b_i: the damped bias model of the training ratings, fixed.

    The rating tower learns what the user and item representations add to it,
    so the model starts at the trivial baseline the gate compares it with and,
    where ratings are sparse, does not fall below it for lack of data.

    Args:
        mean: Global mean rating mu.
        user_bias: [num_users + OOV] bias per user index.
        item_bias: [num_items + OOV] bias per item index.
    """

    def __init__(self, mean: float, user_bias, item_bias, **kwargs):
        super().__init__(**kwargs)
        self.mean = float(mean)
        self.user_bias = tf.Variable(tf.constant(user_bias, tf.float32), trainable=False)
        self.item_bias = tf.Variable(tf.constant(item_bias, tf.float32), trainable=False)

    def call(self, user_idx: tf.Tensor, item_idx: tf.Tensor) -> tf.Tensor:
        """Prior ratings [batch, 1] of user and item indices [batch] (out of range: bias 0)."""

        def lookup(table, idx):
            inside = idx < tf.size(table, out_type=idx.dtype)
            values = tf.gather(table, tf.where(inside, idx, tf.zeros_like(idx)))
            return tf.where(inside, values, 0.0)

        prior = self.mean + lookup(self.user_bias, user_idx) + lookup(self.item_bias, item_idx)
        return prior[:, None]
