"""tf.data input pipelines over Transform's materialised examples."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models import features as F
from models.baselines import BiasModel, fit_bias_model
from models.config import TaskEvents

CATALOG_BATCH = 2048
"""Catalogue rows per batch when embedding the candidates."""
SCAN_BATCH = 4096
"""Events per batch of a full pass that does not train (statistics, validation, seen items)."""


def read_transformed(
    file_pattern: str | list[str],
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    shuffle_buffer: int = 0,
    seed: int | None = None,
    aligned: dict[str, np.ndarray] | None = None,
    keep: Callable[[dict[str, tf.Tensor]], tf.Tensor] | None = None,
) -> tf.data.Dataset:
    """Reads gzipped TFRecords of transformed examples into batches of feature dicts.

    Args:
        file_pattern: Glob(s) of the transformed split files (read in sorted order).
        tf_transform_output: Provides the transformed feature spec.
        batch_size: Examples per batch (the last batch may be smaller).
        shuffle_buffer: Examples in the shuffle buffer; 0 keeps file order.
        seed: Shuffle seed.
        aligned: More features, one row per record in file order (e.g. each
            event's history), added to the parsed features.
        keep: Selects records by their `aligned` row (before shuffling).

    Raises:
        ValueError: if the pattern matches no file.
    """
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise ValueError(f"no transformed examples match {patterns}")
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if aligned:
        dataset = tf.data.Dataset.zip((records, tf.data.Dataset.from_tensor_slices(aligned)))
    else:
        dataset = records.map(lambda record: (record, {}))
    if keep is not None:
        dataset = dataset.filter(lambda record, extra: keep(extra))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    spec = tf_transform_output.transformed_feature_spec()
    return (
        dataset.batch(batch_size)
        .map(
            lambda x, extra: {**tf.io.parse_example(x, spec), **extra},
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )


def read_columns(dataset: tf.data.Dataset, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The named features of every batch of `dataset`, concatenated; [E] arrays."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for batch in dataset:
        for name in names:
            parts[name].append(batch[name].numpy())
    return {
        name: np.concatenate(chunks) if chunks else np.zeros([0]) for name, chunks in parts.items()
    }


def item_index_features(
    catalog: tf.data.Dataset, num_items: int, token_features: Sequence[str]
) -> dict[str, np.ndarray]:
    """The item tower's features of every item index, [num_items + OOV, ...] each.

    Row r describes item index r: its catalogue row's tokens, or none when the
    catalogue has no row for it; the OOV row has none either.

    Args:
        catalog: Batches of transformed catalogue rows.
        num_items: Item vocabulary size.
        token_features: The item tower's id-list features.
    """
    columns = read_columns(catalog, (F.ITEM_IDX, *token_features))
    rows = columns[F.ITEM_IDX].astype(np.int64)
    known = rows < num_items
    table = {F.ITEM_IDX: np.arange(num_items + F.OOV_BUCKETS, dtype=np.int64)}
    for name in token_features:
        values = columns[name]
        tokens = np.zeros((num_items + F.OOV_BUCKETS, *values.shape[1:]), values.dtype)
        tokens[rows[known]] = values[known]
        table[name] = tokens
    return table


@dataclasses.dataclass(frozen=True)
class EventStatistics:
    """Training-set statistics the model is initialised with.

    Attributes:
        item_probabilities: Each item's share of events, [num_items + OOV]; the
            sampling probability of in-batch negatives (logQ correction).
        mean_rating: Mean of the ratings present; initial bias of the rating head.
        num_events: Training events counted.
        bias: The mean + damped user/item biases of the ratings, over user and item
            indices (OOV included), when the user vocabulary size was given.
    """

    item_probabilities: np.ndarray
    mean_rating: float
    num_events: float = 0.0
    bias: BiasModel | None = None


def event_statistics(
    dataset: tf.data.Dataset, num_items: int, num_users: int | None = None
) -> EventStatistics:
    """Counts item occurrences, averages ratings and fits the biases in one pass over `dataset`.

    Args:
        dataset: Batches of transformed training events (rating mask applied).
        num_items: Item vocabulary size.
        num_users: User vocabulary size; given, the damped bias model of the
            rated events is fitted too (`models.baselines.fit_bias_model`).

    Raises:
        ValueError: if the dataset holds no event or no rating.
    """
    columns = read_columns(dataset, (F.USER_IDX, F.ITEM_IDX, F.RATING, F.RATING_MASK))
    return statistics_of(columns, num_items, num_users)


def statistics_of(
    columns: dict[str, np.ndarray], num_items: int, num_users: int | None = None
) -> EventStatistics:
    """`event_statistics` of columns already read (`read_columns`).

    Raises:
        ValueError: if there is no event or no rating.
    """
    counts = np.bincount(
        columns[F.ITEM_IDX].astype(np.int64), minlength=num_items + F.OOV_BUCKETS
    ).astype(np.float64)
    rated = columns[F.RATING_MASK] > 0
    users, items = columns[F.USER_IDX][rated], columns[F.ITEM_IDX][rated]
    ratings = columns[F.RATING][rated]
    if not counts.sum() or not len(ratings):
        raise ValueError(f"training data has {counts.sum():.0f} events and {len(ratings)} ratings")
    bias = None
    if num_users is not None:
        bias = fit_bias_model(
            users, items, ratings, num_users + F.OOV_BUCKETS, num_items + F.OOV_BUCKETS
        )
    return EventStatistics(
        (counts / counts.sum()).astype(np.float32),
        float(ratings.astype(np.float64).mean()),
        float(counts.sum()),
        bias,
    )


def with_item_probability(dataset: tf.data.Dataset, probabilities: np.ndarray) -> tf.data.Dataset:
    """Adds `features[ITEM_PROB]` [batch] looked up from `probabilities` by item index.

    Items never seen get the smallest non-zero probability, so log(p) stays finite.
    """
    floor = probabilities[probabilities > 0].min()
    table = tf.constant(np.maximum(probabilities, floor))
    return dataset.map(lambda f: {**f, F.ITEM_PROB: tf.gather(table, f[F.ITEM_IDX])})


def with_task_events(dataset: tf.data.Dataset, events: TaskEvents) -> tf.data.Dataset:
    """Applies each task's event selection (see `TaskEvents`).

    Adds `features[RETRIEVAL_WEIGHT]` [batch] (0 for unlisted event types) when
    `events.retrieval` is set, and zeroes the rating mask of events whose type
    is not in `events.rating` when that is set. Empty selections change nothing.
    """
    if not events.retrieval and not events.rating:
        return dataset
    weights = None
    if events.retrieval:
        weights = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([e for e, _ in events.retrieval]),
                tf.constant([float(w) for _, w in events.retrieval], tf.float32),
            ),
            default_value=0.0,
        )
    rated = tf.constant(list(events.rating), tf.string)

    def apply(features):
        out = dict(features)
        types = features[F.EVENT_TYPE]
        if weights is not None:
            out[F.RETRIEVAL_WEIGHT] = weights.lookup(types)
        if events.rating:
            keep = tf.reduce_any(tf.equal(types[:, None], rated[None, :]), axis=1)
            out[F.RATING_MASK] = features[F.RATING_MASK] * tf.cast(keep, tf.float32)
        return out

    return dataset.map(apply)
