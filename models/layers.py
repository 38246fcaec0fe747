"""Keras layers of the recommender: shared user/item towers and the DCN rating tower."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

from models import features as F
from models.config import DCNConfig


class UserTower(tf.keras.layers.Layer):
    """Maps transformed user features to a [batch, dim] representation.

    Args:
        num_users: Size of the user vocabulary (the OOV bucket is added here).
        dim: Output size.
    """

    def __init__(self, num_users: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        if num_users <= 0:
            raise ValueError(f"num_users must be positive, got {num_users}")
        self.embedding = tf.keras.layers.Embedding(num_users + F.OOV_BUCKETS, dim, name="user_id")

    def call(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """Returns user embeddings [batch, dim] for `features[USER_IDX]` [batch]."""
        return self.embedding(features[F.USER_IDX])


class ItemTower(tf.keras.layers.Layer):
    """Maps transformed item features (id, genres) to a [batch, dim] representation.

    Genres are mean-pooled over the non-padding slots, so items with few or no
    genres get comparable scales.

    Args:
        num_items: Size of the item vocabulary (the OOV bucket is added here).
        num_genres: Size of the genre vocabulary (padding and OOV are added here).
        dim: Output size.
    """

    def __init__(self, num_items: int, num_genres: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        if num_items <= 0 or num_genres <= 0:
            raise ValueError(f"vocabulary sizes must be positive, got {num_items}, {num_genres}")
        self.num_items = num_items
        self.item_embedding = tf.keras.layers.Embedding(
            num_items + F.OOV_BUCKETS, dim, name="item_id"
        )
        self.genre_embedding = tf.keras.layers.Embedding(
            num_genres + F.OOV_BUCKETS + 1, dim, name="genres"
        )
        self.projection = tf.keras.layers.Dense(dim, name="item_projection")

    def oov_features(self) -> dict[str, tf.Tensor]:
        """Features of one unknown item: the OOV id bucket and no genres."""
        return {
            F.ITEM_IDX: tf.constant([self.num_items], tf.int64),
            F.GENRE_IDS: tf.zeros([1, F.MAX_GENRES], tf.int64),
        }

    def call(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """Returns item embeddings [batch, dim]."""
        genres = features[F.GENRE_IDS]
        mask = tf.cast(tf.expand_dims(genres > 0, -1), tf.float32)
        pooled = tf.math.divide_no_nan(
            tf.reduce_sum(self.genre_embedding(genres) * mask, axis=1),
            tf.reduce_sum(mask, axis=1),
        )
        ids = self.item_embedding(features[F.ITEM_IDX])
        return self.projection(tf.concat([ids, pooled], axis=-1))


class DCNRatingTower(tf.keras.layers.Layer):
    """Predicts a rating [batch, 1] from user and item representations via DCN-v2.

    The input is [u, i, u * i] (shape [batch, 3 * dim]). Cross layers
    (`tfrs.layers.dcn.Cross`, full or low-rank) model explicit feature crosses;
    the deep part is a ReLU MLP. "stacked" feeds the cross output to the deep
    part; "parallel" runs both on the input and concatenates their outputs.

    Args:
        config: Structure, depth and widths of the tower.
        seed: Seed of the kernel initialisers.
        rating_prior: Initial output bias, typically the mean training rating.
    """

    def __init__(self, config: DCNConfig, seed: int = 0, rating_prior: float = 0.0, **kwargs):
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
            1, bias_initializer=tf.keras.initializers.Constant(rating_prior), name="rating"
        )

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        """Returns predicted ratings [batch, 1] for (user [batch, d], item [batch, d])."""
        user, item = inputs
        x0 = tf.concat([user, item, user * item], axis=-1)
        crossed = x0
        for layer in self.cross_layers:
            crossed = layer(x0, crossed)
        deep = crossed if self.config.structure == "stacked" else x0
        for layer in self.deep_layers:
            deep = layer(deep)
        if self.config.structure == "parallel":
            deep = tf.concat([crossed, deep], axis=-1)
        return self.output_layer(deep)
