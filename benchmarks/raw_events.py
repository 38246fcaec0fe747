"""Raw evaluation events read back from the gzipped tf.Examples a pipeline run wrote."""

from __future__ import annotations

import dataclasses
import glob

import numpy as np
import tensorflow as tf

from models import features as F


@dataclasses.dataclass
class Events:
    """The raw evaluation events, each user's in time order."""

    users: np.ndarray
    items: np.ndarray
    types: np.ndarray
    ratings: np.ndarray
    rated: np.ndarray


def read_events(pattern: str) -> Events:
    """Raw events under `pattern` (gzipped tf.Examples), sorted by user, then time."""
    kinds = {
        F.USER_ID: tf.string,
        F.ITEM_ID: tf.string,
        F.EVENT_TYPE: tf.string,
        F.RATING: tf.float32,
        F.TIMESTAMP: tf.int64,
    }
    spec = {k: tf.io.VarLenFeature(d) for k, d in kinds.items()}
    columns: dict[str, list] = {k: [] for k in [*kinds, "rated"]}
    for batch in tf.data.TFRecordDataset(glob.glob(pattern), "GZIP").batch(8192):
        parsed = tf.io.parse_example(batch, spec)
        size = int(tf.shape(batch)[0])
        for key, value in parsed.items():
            first = np.full(size, b"" if kinds[key] == tf.string else 0, dtype=object)
            rows = value.indices.numpy()
            keep = rows[:, 1] == 0
            first[rows[keep, 0]] = value.values.numpy()[keep]
            columns[key].append(first)
            if key == F.RATING:
                rated = np.zeros(size, bool)
                rated[rows[keep, 0]] = True
                columns["rated"].append(rated)
    data = {k: np.concatenate(v) for k, v in columns.items()}
    data[F.RATING] = data[F.RATING].astype(np.float64)
    data[F.TIMESTAMP] = data[F.TIMESTAMP].astype(np.int64)
    order = np.lexsort((data[F.TIMESTAMP], data[F.USER_ID].astype(bytes)))
    return Events(
        *(data[k][order] for k in (F.USER_ID, F.ITEM_ID, F.EVENT_TYPE, F.RATING)),
        data["rated"][order],
    )


def by_user(events: Events) -> dict[bytes, np.ndarray]:
    """Each user's event rows (in time order, as `read_events` sorts them)."""
    users, starts = np.unique(events.users, return_index=True)
    ends = [*starts[1:], len(events.users)]
    return {u: np.arange(s, e) for u, s, e in zip(users, starts, ends, strict=True)}
