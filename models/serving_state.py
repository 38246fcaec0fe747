"""What a served model carries besides its towers: the catalogue and its training facts.

Kept apart from `models.serving_module` so the export code and the tests can
build them without the module's signatures.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from models import features as F
from models.baselines import BiasModel

ACTIVITY_LABELS = ("new", "1-4", "5-19", "20-99", "100+")


@dataclasses.dataclass(frozen=True)
class Catalogue:
    """The retrieval candidates; row r of every tensor is catalogue item r.

    Attributes:
        item_ids: [N] string ids.
        titles: [N] strings.
        embeddings: [N + 1, d] item embeddings; the last row is the OOV item.
        item_idx: [N] each row's item vocabulary index (what a model's
            `RatingPrior` is keyed by); None for a model without one.
    """

    item_ids: tf.Tensor
    titles: tf.Tensor
    embeddings: tf.Tensor
    item_idx: tf.Tensor | None = None


@dataclasses.dataclass(frozen=True)
class TrainingFacts:
    """What a served model knows of its training events.

    Attributes:
        popularity: [N] each catalogue item's share of the training events.
        user_activity: [num_users + 1] training events of each user index.
        bias: The mean + damped biases baseline, over user indices
            [num_users + 1] and catalogue rows [N + 1] (0 for the OOV ones).
        rating_range: (low, high) that ratings are clipped to; None keeps them.
    """

    popularity: np.ndarray
    user_activity: np.ndarray
    bias: BiasModel
    rating_range: tuple[float, float] | None = None


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


def rating_range(schema: schema_pb2.Schema) -> tuple[float, float] | None:
    """The rating feature's [min, max] in the curated schema, if it declares one."""
    for feature in schema.feature:
        if feature.name == F.RATING and feature.HasField("float_domain"):
            domain = feature.float_domain
            if domain.HasField("min") and domain.HasField("max"):
                return float(domain.min), float(domain.max)
    return None
