"""Exact ranks of items among the catalogue, for the `evaluate` signature (graph code).

A rank is 1 + the number of other catalogue items scoring strictly above the
item, optionally leaving out the user's training items; ties count in the
item's favour. Memory stays at batch x `RANK_CHUNK` scores whatever the
catalogue size.
"""

from __future__ import annotations

import tensorflow as tf

from models.index import SeenItems

RANK_CHUNK = 16_384
"""Catalogue items scored at once (memory: batch x chunk floats)."""

USER_ACTIVITY_EDGES = (1, 5, 20, 100)
"""Training events per user bounding the activity slices: 0, 1-4, 5-19, 20-99, 100+."""
HEAD_SHARE, TORSO_SHARE = 0.01, 0.2
"""Item popularity slices by training-event rank: top 1% head, next 19% torso, rest tail."""


def count_above(
    embeddings: tf.Tensor, num_items: int, queries: tf.Tensor, target: tf.Tensor, own: tf.Tensor
) -> tf.Tensor:
    """Catalogue items other than row `own` scoring above `target` per user; int64 [B].

    Args:
        embeddings: [N (+ more), d] item embeddings; rows below `num_items` are scored.
        num_items: Catalogue size N.
        queries: [B, d] user embeddings.
        target: [B] the score of each user's item.
        own: [B] the item's catalogue row (not counted against itself).
    """

    def body(start, count):
        block = embeddings[start : tf.minimum(start + RANK_CHUNK, num_items)]
        scores = tf.matmul(queries, block, transpose_b=True)
        cols = tf.range(start, start + tf.shape(block)[0], dtype=tf.int64)
        above = (scores > target[:, None]) & (cols[None, :] != own[:, None])
        return start + RANK_CHUNK, count + tf.reduce_sum(tf.cast(above, tf.int64), axis=1)

    _, count = tf.while_loop(
        lambda start, _: start < num_items, body, (tf.constant(0), tf.zeros_like(own))
    )
    return count


def train_items_above(seen: SeenItems, users: tf.Tensor, own: tf.Tensor, scores_of) -> tf.Tensor:
    """Training items of each user, other than `own`, that `scores_of` ranks above `own`.

    Args:
        seen: The known (user, item) pairs.
        users: [B] user indices.
        own: [B] the item's catalogue row.
        scores_of: Maps (rows [M], owner [M]) to the scores [M] of row for user
            `users[owner]`; also called with `own` to get each item's own score.

    Returns:
        int64 [B] counts.
    """
    rows = seen.train_rows(users)
    owner = rows.value_rowids()
    flat = rows.flat_values
    batch = tf.range(tf.shape(users, out_type=tf.int64)[0])
    target = tf.gather(scores_of(own, batch), owner)
    above = (scores_of(flat, owner) > target) & (flat != tf.gather(own, owner))
    return tf.math.unsorted_segment_sum(
        tf.cast(above, tf.int64), owner, tf.shape(users, out_type=tf.int64)[0]
    )


def bucket(values: tf.Tensor, edges: tuple[int, ...], labels: tuple[str, ...]) -> tf.Tensor:
    """Labels [B] of integer values [B] by bucket: labels[i] for edges[i-1] <= v < edges[i]."""
    index = tf.searchsorted(tf.constant(edges, values.dtype), values, side="right")
    return tf.gather(tf.constant(labels), index)
