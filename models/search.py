"""The top-k catalogue rows of query embeddings, exact or through ScaNN, with exclusions.

Excluded rows (the user's known items, items a request names) are pushed last;
they come back only if fewer than k others are left (with score float32.min).
The exact search scores the whole catalogue with stock TF ops. The ScaNN
search asks its index for `depth` results per query, each query searched on its
own (so its answer does not depend on the batch); a query whose request needs
more (k plus its exclusions), or for which ScaNN found fewer, is answered by the
exact search over the same embeddings.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.index import SeenItems


class Exclusions:
    """What a search leaves out: known (user, item) pairs and rows given per query.

    Args:
        seen: Known pairs; None excludes none.
        extra: [B, X] catalogue rows to exclude per query (-1 pads); None: none.
    """

    def __init__(self, seen: SeenItems | None = None, extra: tf.Tensor | None = None):
        self.seen, self.extra = seen, extra

    def count(self, users: tf.Tensor) -> tf.Tensor:
        """Upper bound of each query's excluded rows; int32 [B]."""
        count = tf.zeros(tf.shape(users), tf.int32)
        if self.seen is not None:
            count += self.seen.count(users)
        if self.extra is not None:
            count += tf.reduce_sum(tf.cast(self.extra >= 0, tf.int32), axis=1)
        return count

    def mask(self, users: tf.Tensor, rows: tf.Tensor) -> tf.Tensor | None:
        """Whether each of rows [B, K] is excluded for its query; bool, or None for none."""
        found = None
        if self.seen is not None:
            found = self.seen.contains(users, rows)
        if self.extra is not None:
            given = row_in(tf.cast(rows, tf.int64), tf.cast(self.extra, tf.int64))
            found = given if found is None else found | given
        return found


def row_in(rows: tf.Tensor, given: tf.Tensor) -> tf.Tensor:
    """Whether each of rows [B, K] is among its query's given rows [B, X] (-1 pads); bool [B, K].

    A sorted search per query: memory O(B * (K + X)), never B * K * X.
    """
    padded = tf.sort(
        tf.concat([tf.fill([tf.shape(given)[0], 1], tf.constant(-1, tf.int64)), given], 1)
    )
    position = tf.searchsorted(padded, rows, out_type=tf.int64)
    position = tf.minimum(position, tf.shape(padded, out_type=tf.int64)[1] - 1)
    return tf.equal(tf.gather(padded, position, batch_dims=1), rows)


def top_k_unexcluded(scores, rows, users, k, exclusions: Exclusions):
    """The k best of (scores, rows) [B, depth] once excluded rows are pushed last."""
    excluded = exclusions.mask(users, rows)
    if excluded is not None:
        scores = tf.where(excluded, tf.float32.min, scores)
    top = tf.math.top_k(scores, k=k)
    return top.values, tf.gather(rows, top.indices, batch_dims=1)


def popular_unexcluded(scores, rows, users, k, exclusions: Exclusions, needed: tf.Tensor):
    """(scores, rows) [B, k] of the most popular rows outside each user's exclusions.

    Args:
        scores: [N] popularity, best first.
        rows: [N] the catalogue rows in that order.
        users: [B] user indices (for the known items).
        k: Results per user.
        exclusions: What each user must not get.
        needed: [B] bool, the users the list is for: only their exclusions widen
            it (the first k + exclusions rows always hold k eligible ones).
    """
    count = tf.where(needed, exclusions.count(users), 0)
    width = tf.minimum(k + tf.reduce_max(tf.concat([count, [0]], 0)), tf.size(rows))
    batch = tf.shape(users)[0]
    return top_k_unexcluded(
        tf.tile(scores[None, :width], [batch, 1]),
        tf.tile(rows[None, :width], [batch, 1]),
        users,
        k,
        exclusions,
    )


class CandidateSearch(tf.Module):
    """Top-k rows of the catalogue for query embeddings.

    Args:
        embeddings: [N (+ more), d] item embeddings; rows below `num_items` are searched.
        num_items: Catalogue size N.
        index: A built ScaNN layer (`models.index.build_index`), or None for exact.
        depth: Results asked of the ScaNN index per query (its reordering depth).
    """

    def __init__(self, embeddings: tf.Variable, num_items: int, index=None, depth: int = 0):
        super().__init__()
        self.embeddings, self.num_items = embeddings, num_items
        self.index, self.depth = index, depth

    def exact(self, queries: tf.Tensor, depth: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(scores, rows) [B, depth] of the whole catalogue, best first."""
        scores = tf.matmul(queries, self.embeddings[: self.num_items], transpose_b=True)
        top = tf.math.top_k(scores, k=depth)
        return top.values, top.indices

    def __call__(self, queries, users, k, exclusions: Exclusions):
        """Top-k (scores, rows) [B, k] per query without excluded rows."""
        need = tf.minimum(tf.fill(tf.shape(users), k) + exclusions.count(users), self.num_items)
        deepest = tf.reduce_max(tf.concat([need, [k]], 0))
        if self.index is None:
            return top_k_unexcluded(*self.exact(queries, deepest), users, k, exclusions)
        # Always the full reordering depth: one user's candidates never depend on the batch.
        scores, rows = self.index(queries, k=self.depth)
        width = tf.shape(scores)[1]
        pad = tf.maximum(k - width, 0)
        scores = tf.pad(scores, [[0, 0], [0, pad]], constant_values=np.nan)
        rows = tf.pad(rows, [[0, 0], [0, pad]])
        wanted = tf.range(tf.shape(scores)[1])[None, :] < need[:, None]
        short = tf.reduce_any(wanted & ~tf.math.is_finite(scores), axis=1)
        fallback = short | (need > width)
        scores = tf.where(tf.math.is_finite(scores), scores, tf.float32.min)
        approx = top_k_unexcluded(scores, rows, users, k, exclusions)
        exact = tf.cond(
            tf.reduce_any(fallback),
            lambda: top_k_unexcluded(*self.exact(queries, deepest), users, k, exclusions),
            lambda: approx,
        )
        return tuple(tf.where(fallback[:, None], e, a) for e, a in zip(exact, approx, strict=True))
