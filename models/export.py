"""Serving export: raw features in, top-K items or ratings out, Transform graph inside.

Signatures of the exported SavedModel:
    retrieve(user_id: string[B], k: int32[]) -> item_ids string[B, k'], titles
        string[B, k'], scores float[B, k'] with k' = min(k, catalogue size).
    rate(user_id: string[B], item_id: string[B]) -> rating float[B].
    serving_default = retrieve.
Unknown users map to the OOV bucket (a defined, popularity-like answer); unknown
items in `rate` use the item tower's OOV representation.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tensorflow_transform as tft

from models import features as F
from models.model import MultiTaskRecommender

SIGNATURES = ("serving_default", "retrieve", "rate")


def as_raw_feature(values: tf.Tensor, spec) -> tf.Tensor | tf.SparseTensor:
    """Shapes a [batch] tensor the way the raw feature spec expects it.

    A `FixedLenFeature([1])` becomes [batch, 1]; a `VarLenFeature` becomes a
    [batch, 1] SparseTensor holding every value (empty strings included).
    """
    if isinstance(spec, tf.io.VarLenFeature):
        batch = tf.shape(values, out_type=tf.int64)[0]
        indices = tf.stack([tf.range(batch), tf.zeros([batch], tf.int64)], axis=1)
        return tf.SparseTensor(indices, values, dense_shape=tf.stack([batch, 1]))
    return tf.reshape(values, [-1, *spec.shape])


class ServingModule(tf.Module):
    """Wraps a trained model, the Transform layer and the embedded catalogue.

    Args:
        model: The trained recommender.
        tf_transform_output: Transform output whose graph is embedded.
        catalog: Batches of transformed catalogue features (with item_id, title).
        default_k: Default depth of the brute-force index (requests pass k).
    """

    def __init__(
        self,
        model: MultiTaskRecommender,
        tf_transform_output: tft.TFTransformOutput,
        catalog: tf.data.Dataset,
        default_k: int = 100,
    ):
        super().__init__()
        # Only what serving needs: the retrieval task (and its metric's candidate
        # dataset) stays out of the SavedModel.
        self.user_tower = model.user_tower
        self.rating_tower = model.rating_tower
        self.tft_layer = tf_transform_output.transform_features_layer()
        self._raw_spec = tf_transform_output.raw_feature_spec()
        ids, titles, embeddings = [], [], []
        for batch in catalog:
            ids.append(batch[F.ITEM_ID])
            titles.append(batch[F.TITLE])
            embeddings.append(model.item_tower(batch))
        self.item_ids = tf.Variable(tf.concat(ids, 0), trainable=False, name="item_ids")
        self.titles = tf.Variable(tf.concat(titles, 0), trainable=False, name="titles")
        self.num_items = int(self.item_ids.shape[0])
        oov = model.item_tower(model.item_tower.oov_features())
        self.item_embeddings = tf.Variable(
            tf.concat([*embeddings, oov], 0), trainable=False, name="item_embeddings"
        )
        self.index = tfrs.layers.factorized_top_k.BruteForce(k=min(default_k, self.num_items))
        self.index.index(
            self.item_embeddings[: self.num_items], tf.range(self.num_items, dtype=tf.int32)
        )
        self.item_rows = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                self.item_ids, tf.range(self.num_items, dtype=tf.int64)
            ),
            default_value=self.num_items,
        )

    def _users(self, user_id: tf.Tensor) -> tf.Tensor:
        raw = {F.USER_ID: as_raw_feature(user_id, self._raw_spec[F.USER_ID])}
        return self.user_tower(self.tft_layer(raw))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="user_id"),
            tf.TensorSpec([], tf.int32, name="k"),
        ]
    )
    def retrieve(self, user_id: tf.Tensor, k: tf.Tensor) -> dict[str, tf.Tensor]:
        """Top-k catalogue items per user, best first."""
        tf.debugging.assert_positive(k, message="k must be a positive integer")
        k = tf.minimum(k, self.num_items)
        scores, rows = self.index(self._users(user_id), k=k)
        return {
            "item_ids": tf.gather(self.item_ids, rows),
            "titles": tf.gather(self.titles, rows),
            "scores": scores,
        }

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="user_id"),
            tf.TensorSpec([None], tf.string, name="item_id"),
        ]
    )
    def rate(self, user_id: tf.Tensor, item_id: tf.Tensor) -> dict[str, tf.Tensor]:
        """Predicted rating per (user, item) pair."""
        tf.debugging.assert_equal(
            tf.shape(user_id), tf.shape(item_id), message="user_id and item_id must align"
        )
        items = tf.gather(self.item_embeddings, self.item_rows.lookup(item_id))
        rating = self.rating_tower((self._users(user_id), items))
        return {"rating": tf.reshape(rating, [-1])}


def export_serving_model(module: ServingModule, export_dir: str) -> None:
    """Saves `module` with the retrieve/rate/serving_default signatures."""
    retrieve = module.retrieve.get_concrete_function()
    tf.saved_model.save(
        module,
        export_dir,
        signatures={
            "serving_default": retrieve,
            "retrieve": retrieve,
            "rate": module.rate.get_concrete_function(),
        },
    )
