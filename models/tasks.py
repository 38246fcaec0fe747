"""The model's own tasks: rating regression and a retrieval softmax over the whole catalogue."""

from __future__ import annotations

import tensorflow as tf


class RatingTask(tf.keras.layers.Layer):
    """Regression loss over the events that carry a rating.

    The loss is `sum(w * (p - y)^2) / sum(w)`: a mean over rated events only, so
    its scale does not shrink when ratings are sparse, and an event with weight 0
    contributes nothing (0 when a batch holds no rating at all).
    """

    def __init__(self, name: str = "rating_task", **kwargs):
        super().__init__(name=name, **kwargs)
        self.rmse = tf.keras.metrics.RootMeanSquaredError(name="rmse")

    def call(
        self,
        labels: tf.Tensor,
        predictions: tf.Tensor,
        sample_weight: tf.Tensor,
        compute_metrics: bool = True,
    ) -> tf.Tensor:
        """Returns the scalar masked MSE and updates RMSE.

        Args:
            labels: [batch] ratings (any value where the weight is 0).
            predictions: [batch] or [batch, 1] predicted ratings.
            sample_weight: [batch] non-negative weights, 0 for events without a rating.
            compute_metrics: Whether to update the RMSE metric.
        """
        predictions = tf.reshape(predictions, [-1])
        labels = tf.cast(tf.reshape(labels, [-1]), predictions.dtype)
        weights = tf.cast(tf.reshape(sample_weight, [-1]), predictions.dtype)
        loss = tf.math.divide_no_nan(
            tf.reduce_sum(weights * tf.square(predictions - labels)), tf.reduce_sum(weights)
        )
        if compute_metrics:
            self.rmse.update_state(labels, predictions, sample_weight=weights)
        return loss


class CatalogueRetrievalTask(tf.keras.layers.Layer):
    """Retrieval loss: a softmax of each query over every item of the catalogue.

    Where the catalogue is small enough to score at every step, every item is a
    negative of every event, as it is a competitor of every served list; the
    in-batch softmax (`tfrs.tasks.Retrieval`) instead samples negatives by
    popularity and needs the logQ correction. The loss is
    `sum(w * cross_entropy) / batch`, the scale of `models.model.mean_softmax_loss`.
    """

    def __init__(self, name: str = "catalogue_retrieval_task", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(
        self,
        queries: tf.Tensor,
        candidates: tf.Tensor,
        labels: tf.Tensor,
        sample_weight: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """Returns the scalar weighted mean cross-entropy.

        Args:
            queries: [batch, d] query embeddings.
            candidates: [items, d] embeddings of every item index.
            labels: [batch] the index (row of `candidates`) of each event's item.
            sample_weight: [batch] non-negative weights; None counts each event once.
        """
        logits = tf.matmul(queries, candidates, transpose_b=True)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.cast(tf.reshape(labels, [-1]), tf.int32), logits
        )
        if sample_weight is not None:
            losses *= tf.cast(tf.reshape(sample_weight, [-1]), losses.dtype)
        return tf.reduce_mean(losses)
