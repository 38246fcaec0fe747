"""Offline evaluation of an exported model through its serving signatures.

Metrics are computed exactly as a client would see them: raw eval events go
through `retrieve` (top-K over the full embedded catalogue) and `rate`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

from models import features as F

_EVAL_SPEC = {
    F.USER_ID: tf.io.VarLenFeature(tf.string),
    F.ITEM_ID: tf.io.VarLenFeature(tf.string),
    F.EVENT_TYPE: tf.io.VarLenFeature(tf.string),
    F.RATING: tf.io.VarLenFeature(tf.float32),
}


@dataclasses.dataclass(frozen=True)
class EvalMetrics:
    """Metrics of one model on one split.

    Attributes:
        rmse: Root mean squared error over events that carry a rating.
        top_k_accuracy: Share of retrieval events whose item is in the user's top-K.
        k: The K of `top_k_accuracy`.
        num_rated: Events behind `rmse`.
        num_retrieval: Events behind `top_k_accuracy`.
    """

    rmse: float
    top_k_accuracy: float
    k: int
    num_rated: int
    num_retrieval: int


def _first(sparse: tf.SparseTensor, default) -> np.ndarray:
    dense = tf.sparse.to_dense(tf.sparse.reset_shape(sparse, [sparse.dense_shape[0], 1]), default)
    return dense.numpy()[:, 0]


def evaluate_saved_model(
    model_dir: str,
    file_pattern: str,
    k: int,
    retrieval_event_types: tuple[str, ...],
    batch_size: int = 1024,
) -> EvalMetrics:
    """Evaluates the SavedModel at `model_dir` on raw (ExampleGen) examples.

    Args:
        model_dir: Directory of a SavedModel with `retrieve` and `rate` signatures.
        file_pattern: Glob of gzipped TFRecords of raw events.
        k: Depth of the retrieval accuracy.
        retrieval_event_types: Event types counted by the top-K accuracy.
        batch_size: Events per signature call.

    Raises:
        ValueError: if no file matches, or no event is rated or of a retrieval type.
    """
    files = tf.io.gfile.glob(file_pattern)
    if not files:
        raise ValueError(f"no eval examples match {file_pattern!r}")
    loaded = tf.saved_model.load(model_dir)
    retrieve, rate = loaded.signatures["retrieve"], loaded.signatures["rate"]
    wanted = tf.constant([t.encode() for t in retrieval_event_types])
    sq_err, rated, hits, retrieval = 0.0, 0, 0, 0
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)
    for records in dataset:
        ex = tf.io.parse_example(records, _EVAL_SPEC)
        users = _first(ex[F.USER_ID], b"")
        items = _first(ex[F.ITEM_ID], b"")
        has_rating = (
            tf.sparse.reduce_sum(
                tf.sparse.map_values(tf.ones_like, ex[F.RATING]), axis=1, output_is_sparse=False
            ).numpy()
            > 0
        )
        if has_rating.any():
            preds = rate(
                user_id=tf.constant(users[has_rating]), item_id=tf.constant(items[has_rating])
            )
            labels = _first(ex[F.RATING], 0.0)[has_rating]
            sq_err += float(np.sum((preds["rating"].numpy() - labels) ** 2))
            rated += int(has_rating.sum())
        is_retrieval = np.isin(_first(ex[F.EVENT_TYPE], b""), wanted.numpy())
        if is_retrieval.any():
            top = retrieve(user_id=tf.constant(users[is_retrieval]), k=tf.constant(k, tf.int32))[
                "item_ids"
            ]
            hits += int(np.sum(np.any(top.numpy() == items[is_retrieval][:, None], axis=1)))
            retrieval += int(is_retrieval.sum())
    if not rated or not retrieval:
        raise ValueError(
            f"{file_pattern!r} has {rated} rated and {retrieval} retrieval events "
            f"(types {retrieval_event_types}); both metrics need at least one"
        )
    return EvalMetrics(
        rmse=math.sqrt(sq_err / rated),
        top_k_accuracy=hits / retrieval,
        k=k,
        num_rated=rated,
        num_retrieval=retrieval,
    )
