"""A user's recent items: what the query tower reads besides the user id.

An event's history is the user's last `length` items with a strictly earlier
timestamp (no event sees itself, a tie or the future), most recent last,
encoded as item index + 1 with 0 padding on the left (`F.HISTORY`). Training
builds it for every training event from the training events alone
(`event_histories`); a served model keeps every user's training events sorted
by time (`UserHistories`) to give every request, and every evaluated event, the
user's latest items, to which a request may add items the user consumed since
training.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

PAD = 0


def event_histories(
    users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, length: int
) -> np.ndarray:
    """Each event's history among the given events; int64 [E, length].

    Args:
        users: [E] user indices.
        items: [E] item indices.
        timestamps: [E] event times.
        length: History length H.

    Returns:
        Row e holds, right-aligned, item index + 1 of the last H events of user
        `users[e]` whose time is strictly before `timestamps[e]` (0 pads).
    """
    n = len(users)
    out = np.zeros((n, length), np.int64)
    if not n or not length:
        return out
    order = np.lexsort((np.arange(n), timestamps, users))
    u, t, i = users[order], timestamps[order], items[order]
    new_user = np.r_[True, u[1:] != u[:-1]]
    new_time = new_user | np.r_[True, t[1:] != t[:-1]]
    user_start = np.maximum.accumulate(np.where(new_user, np.arange(n), 0))
    time_start = np.maximum.accumulate(np.where(new_time, np.arange(n), 0))
    positions = time_start[:, None] - length + np.arange(length)[None, :]
    valid = positions >= user_start[:, None]
    out[order] = np.where(valid, i[np.clip(positions, 0, None)] + 1, PAD)
    return out


TIME_BITS = 33
"""Times (Unix seconds, clipped to [0, 2^33)) and user indices share one sorted int64 key."""


def _key(users, times):
    return users * (1 << TIME_BITS) + np.clip(times, 0, (1 << TIME_BITS) - 1)


class UserHistories(tf.Module):
    """Every user's training events sorted by time, for history lookups in a served model.

    Args:
        users: [E] user index of each training event.
        items: [E] item index of each (`F.HISTORY` stores item index + 1).
        timestamps: [E] times (Unix seconds).
        length: History length H.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, length: int):
        super().__init__()
        keys = _key(users.astype(np.int64), timestamps.astype(np.int64))
        order = np.argsort(keys, kind="stable")
        self.length = int(length)
        self.keys = tf.Variable(keys[order], trainable=False)
        self.items = tf.Variable(items[order].astype(np.int64) + 1, trainable=False)

    def before(self, users: tf.Tensor, times: tf.Tensor) -> tf.RaggedTensor:
        """Item index + 1 of each user's last H training events before `times` [B].

        Returns:
            Ragged [B, (<= H)], oldest first.
        """
        users, times = tf.cast(users, tf.int64), tf.cast(times, tf.int64)
        limit = (1 << TIME_BITS) - 1
        start = tf.searchsorted(self.keys, users * (1 << TIME_BITS))
        end = tf.searchsorted(
            self.keys, users * (1 << TIME_BITS) + tf.clip_by_value(times, 0, limit)
        )
        return tf.gather(self.items, tf.ragged.range(tf.maximum(start, end - self.length), end))

    def latest(self, users: tf.Tensor) -> tf.RaggedTensor:
        """Item index + 1 of each user's last H training events; ragged [B, (<= H)]."""
        return self.before(users, tf.fill(tf.shape(users), tf.constant(1 << TIME_BITS, tf.int64)))


def right_aligned(items: tf.RaggedTensor, length: int) -> tf.Tensor:
    """The last `length` items of each row, right-aligned with 0 padding on the left; [B, H]."""
    rows = tf.cast(items.row_lengths(), tf.int64)
    take = tf.minimum(rows, length)
    starts = tf.cast(items.row_starts(), tf.int64) + rows - take
    flat = tf.gather(items.flat_values, tf.ragged.range(starts, starts + take).flat_values)
    tail = tf.RaggedTensor.from_row_lengths(flat, take)
    left = tail.to_tensor(default_value=PAD, shape=[None, length])
    column = tf.range(length, dtype=tf.int64)[None, :] - (length - take)[:, None]
    return tf.where(column >= 0, tf.gather(left, tf.maximum(column, 0), batch_dims=1), PAD)


def combine(stored: tf.RaggedTensor, recent: tf.RaggedTensor, length: int) -> tf.Tensor:
    """The last `length` of each user's stored then recent items, right-aligned; int64 [B, H].

    Args:
        stored: Item index + 1 of the user's known history, oldest first.
        recent: Item index + 1 of items given with the request, oldest first.
        length: H.
    """
    return right_aligned(tf.concat([stored, recent], axis=1), length)


def histories_before(
    users: np.ndarray,
    items: np.ndarray,
    timestamps: np.ndarray,
    query_users: np.ndarray,
    query_times: np.ndarray,
    length: int,
) -> np.ndarray:
    """For each query (user, time), that user's last H events (of those given) before it.

    The numpy twin of `UserHistories.before`, for evaluation events whose history
    comes from the training events; int64 [Q, length], right-aligned, 0 pads.
    """
    keys = _key(users.astype(np.int64), timestamps.astype(np.int64))
    order = np.argsort(keys, kind="stable")
    sorted_keys, sorted_items = keys[order], items[order].astype(np.int64) + 1
    query_users = query_users.astype(np.int64)
    start = np.searchsorted(sorted_keys, query_users * (1 << TIME_BITS))
    end = np.searchsorted(sorted_keys, _key(query_users, query_times.astype(np.int64)))
    positions = end[:, None] - length + np.arange(length)[None, :]
    valid = positions >= start[:, None]
    if not len(sorted_items):
        return np.zeros((len(query_users), length), np.int64)
    return np.where(valid, sorted_items[np.clip(positions, 0, None)], PAD)


def latest_histories(
    users: np.ndarray,
    items: np.ndarray,
    times: np.ndarray,
    query_users: np.ndarray,
    length: int,
) -> np.ndarray:
    """Each query user's last `length` items among the given events; int64 [Q, length].

    What a served model reads for a known user without request history
    (`UserHistories.latest` over the same events).
    """
    latest = np.full(len(query_users), np.iinfo(np.int64).max)
    return histories_before(users, items, times, query_users, latest, length)
