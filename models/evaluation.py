"""Offline evaluation of an exported model through its `evaluate` signature.

Raw eval events go through the model's own `evaluate` signature, which ranks
each event's item among the whole embedded catalogue with the user's training
items excluded, as `retrieve` serves them (a hit at K is rank <= K), and
predicts its rating as `rate` does. Event types and rating labels are parsed
with the feature spec of the curated schema.
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
        top_k_accuracy: Share of retrieval events whose item is in the user's
            top-K, the user's training items excluded (as served).
        k: The K of `top_k_accuracy`.
        num_rated: Events behind `rmse`.
        num_retrieval: Events behind `top_k_accuracy`.
        top_k_accuracy_with_seen: The same without excluding training items
            (the figure the TFRS tutorials publish); reported, not gated.
    """

    rmse: float
    top_k_accuracy: float
    k: int
    num_rated: int
    num_retrieval: int
    top_k_accuracy_with_seen: float = float("nan")


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
        model_dir: Directory of a SavedModel with the `evaluate` signature.
        file_pattern: Glob of gzipped TFRecords of raw events.
        k: Depth of the retrieval accuracy.
        events: Which event types the rating (`events.rating`) and top-K
            (`events.evaluated_retrieval_events()`) metrics count; empty = all.
        feature_spec: Parse spec of the raw event features (`event_feature_spec`).
        batch_size: Events per signature call.

    Raises:
        ValueError: if no file matches, the model has no `evaluate` signature, or
            no event is rated or of a retrieval type.
    """
    files = tf.io.gfile.glob(file_pattern)
    if not files:
        raise ValueError(f"no eval examples match {file_pattern!r}")
    loaded = tf.saved_model.load(model_dir)
    if names.EVALUATE not in loaded.signatures:
        raise ValueError(
            f"{model_dir!r} has no {names.EVALUATE!r} signature (it has "
            f"{sorted(loaded.signatures)}): export it with models.export"
        )
    evaluate = loaded.signatures[names.EVALUATE]
    rated_types = np.array([t.encode() for t in events.rating], dtype=object)
    retrieval_types = np.array(
        [t.encode() for t in events.evaluated_retrieval_events()], dtype=object
    )
    sq_err, rated, hits, hits_with_seen, retrieval = 0.0, 0, 0, 0, 0
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)
    for records in dataset:
        ex = tf.io.parse_example(records, feature_spec)
        types = first_value(ex[F.EVENT_TYPE], b"")[0].numpy()
        labels, has_rating = (t.numpy() for t in first_value(ex[F.RATING], 0.0))
        is_rated = (has_rating > 0) & (np.isin(types, rated_types) if len(rated_types) else True)
        is_retrieval = np.isin(types, retrieval_types) if len(retrieval_types) else types != b""
        if not (is_rated.any() or is_retrieval.any()):
            continue
        out = {k_: v.numpy() for k_, v in evaluate(**{names.EXAMPLES_INPUT: records}).items()}
        error = out[names.RATING_OUTPUT][is_rated] - labels[is_rated]
        sq_err += float(np.sum(error.astype(np.float64) ** 2))
        rated += int(is_rated.sum())
        hits += int(np.sum(out[names.RANK_OUTPUT][is_retrieval] <= k))
        hits_with_seen += int(np.sum(out[names.RANK_WITH_SEEN_OUTPUT][is_retrieval] <= k))
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
        top_k_accuracy_with_seen=hits_with_seen / retrieval,
    )
