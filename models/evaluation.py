"""Offline evaluation of an exported model through its serving signatures.

Metrics are computed exactly as a client would see them: raw eval events go
through `retrieve` (top-K over the full embedded catalogue) and `rate`. Events
are parsed with the feature spec of the curated schema.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import schema_utils

from contracts import names
from models import features as F
from models.config import TaskEvents
from models.preprocessing import first_value

EVENT_FEATURES = (F.USER_ID, F.ITEM_ID, F.EVENT_TYPE, F.RATING)
"""Raw event features the evaluation reads."""


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


def event_feature_spec(schema: schema_pb2.Schema) -> dict[str, tf.io.VarLenFeature]:
    """The parse spec of the raw event features the evaluation reads, from the schema.

    Raises:
        ValueError: if the schema lacks one of `EVENT_FEATURES`.
    """
    spec = schema_utils.schema_as_feature_spec(schema).feature_spec
    missing = [name for name in EVENT_FEATURES if name not in spec]
    if missing:
        raise ValueError(f"the schema has no feature(s) {missing}; evaluation needs them")
    return {name: spec[name] for name in EVENT_FEATURES}


def evaluate_saved_model(
    model_dir: str,
    file_pattern: str,
    k: int,
    events: TaskEvents,
    feature_spec: dict,
    batch_size: int = 1024,
) -> EvalMetrics:
    """Evaluates the SavedModel at `model_dir` on raw (ExampleGen) examples.

    Args:
        model_dir: Directory of a SavedModel with `retrieve` and `rate` signatures.
        file_pattern: Glob of gzipped TFRecords of raw events.
        k: Depth of the retrieval accuracy.
        events: Which event types the rating (`events.rating`) and top-K
            (`events.evaluated_retrieval_events()`) metrics count; empty = all.
        feature_spec: Parse spec of the raw event features (`event_feature_spec`).
        batch_size: Events per signature call.

    Raises:
        ValueError: if no file matches, or no event is rated or of a retrieval type.
    """
    files = tf.io.gfile.glob(file_pattern)
    if not files:
        raise ValueError(f"no eval examples match {file_pattern!r}")
    loaded = tf.saved_model.load(model_dir)
    retrieve, rate = loaded.signatures[names.RETRIEVE], loaded.signatures[names.RATE]
    rated_types = np.array([t.encode() for t in events.rating], dtype=object)
    retrieval_types = np.array(
        [t.encode() for t in events.evaluated_retrieval_events()], dtype=object
    )
    sq_err, rated, hits, retrieval = 0.0, 0, 0, 0
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)
    for records in dataset:
        ex = tf.io.parse_example(records, feature_spec)
        users = first_value(ex[F.USER_ID], b"")[0].numpy()
        items = first_value(ex[F.ITEM_ID], b"")[0].numpy()
        types = first_value(ex[F.EVENT_TYPE], b"")[0].numpy()
        labels, has_rating = (t.numpy() for t in first_value(ex[F.RATING], 0.0))
        is_rated = (has_rating > 0) & (np.isin(types, rated_types) if len(rated_types) else True)
        if is_rated.any():
            preds = rate(
                **{
                    names.USER_ID_INPUT: tf.constant(users[is_rated]),
                    names.ITEM_ID_INPUT: tf.constant(items[is_rated]),
                }
            )
            sq_err += float(np.sum((preds[names.RATING_OUTPUT].numpy() - labels[is_rated]) ** 2))
            rated += int(is_rated.sum())
        is_retrieval = np.isin(types, retrieval_types) if len(retrieval_types) else types != b""
        if is_retrieval.any():
            top = retrieve(
                **{
                    names.USER_ID_INPUT: tf.constant(users[is_retrieval]),
                    names.K_INPUT: tf.constant(k, tf.int32),
                }
            )
            found = top[names.ITEM_IDS_OUTPUT].numpy() == items[is_retrieval][:, None]
            hits += int(np.sum(np.any(found, axis=1)))
            retrieval += int(is_retrieval.sum())
    if not rated or not retrieval:
        raise ValueError(
            f"{file_pattern!r} has {rated} rated and {retrieval} retrieval events "
            f"({events}); both metrics need at least one"
        )
    return EvalMetrics(
        rmse=math.sqrt(sq_err / rated),
        top_k_accuracy=hits / retrieval,
        k=k,
        num_rated=rated,
        num_retrieval=retrieval,
    )
