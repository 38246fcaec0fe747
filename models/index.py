"""Retrieval indexes over the catalogue's item embeddings, and the seen-item filter.

Two indexes answer the same `retrieve` signature:
- brute force (`tfrs.layers.factorized_top_k.BruteForce`): exact, stock TF ops,
  loads in stock TF Serving;
- ScaNN (`tfrs.layers.factorized_top_k.ScaNN`): approximate, much faster on
  large catalogues, needs a TF Serving build with ScaNN ops.
"""

from __future__ import annotations

import uuid

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from contracts.layout import INDEX_KINDS
from models.config import ScannConfig


class DeterministicScaNN(tfrs.layers.factorized_top_k.ScaNN):
    """TFRS's ScaNN layer with a reproducible index and uncapped result depth.

    Two changes to `tfrs.layers.factorized_top_k.ScaNN`: the tree's k-means
    starts from k-means++ centres instead of a random sample, so the same
    embeddings give the same index (TFRS's random initialisation does not, even
    single-threaded), and a search for more than
    `num_reordering_candidates` results raises the pre-reorder depth instead of
    silently returning fewer (the seen-item filter over-fetches).

    Args:
        num_leaves: Partitions of the tree.
        num_leaves_to_search: Partitions each query scores.
        num_reordering_candidates: Approximate neighbours rescored exactly.
        dimensions_per_block: Asymmetric-hashing block size.
        training_iterations: k-means iterations.
        training_threads: Threads training the tree.
        k: Default number of results.
        name: Layer name.
    """

    def __init__(
        self,
        num_leaves: int,
        num_leaves_to_search: int,
        num_reordering_candidates: int,
        dimensions_per_block: int = 2,
        training_iterations: int = 12,
        training_threads: int = 1,
        k: int = 100,
        name: str | None = None,
    ):
        super().__init__(
            k=k,
            num_leaves=num_leaves,
            num_leaves_to_search=num_leaves_to_search,
            num_reordering_candidates=num_reordering_candidates,
            dimensions_per_block=dimensions_per_block,
            training_iterations=training_iterations,
            name=name,
        )
        from scann.scann_ops.py import scann_ops

        def build_searcher(candidates: tf.Tensor):
            builder = (
                scann_ops.builder(db=candidates, num_neighbors=k, distance_measure="dot_product")
                .tree(
                    num_leaves=num_leaves,
                    num_leaves_to_search=num_leaves_to_search,
                    training_iterations=training_iterations,
                    random_init=False,
                )
                .score_ah(dimensions_per_block=dimensions_per_block)
                .reorder(num_reordering_candidates)
                .set_n_training_threads(training_threads)
            )
            return builder.build(shared_name=f"{self.name}/{uuid.uuid4()}")

        self._build_searcher = build_searcher

    def call(self, queries: tf.Tensor, k: int | tf.Tensor | None = None):
        """Returns (scores [B, k'], identifiers [B, k']) for query embeddings [B, d]."""
        from scann.scann_ops.py import scann_ops

        if self._serialized_searcher is None:
            raise ValueError("call index() before querying the ScaNN layer")
        k = self._k if k is None else k
        searcher = scann_ops.searcher_from_module(self._serialized_searcher)
        result = searcher.search_batched_parallel(
            queries,
            final_num_neighbors=k,
            pre_reorder_num_neighbors=tf.maximum(k, self._num_reordering_candidates),
        )
        return result.distances, tf.gather(self._identifiers, result.indices)


def build_index(
    kind: str, embeddings: tf.Tensor, k: int, scann: ScannConfig | None = None
) -> tfrs.layers.factorized_top_k.TopK:
    """Indexes item embeddings [N, d]; identifiers are catalogue rows 0..N-1 (int32).

    Args:
        kind: "brute_force" or "scann".
        embeddings: Candidate embeddings, one row per catalogue item.
        k: Default number of results.
        scann: ScaNN parameters (defaults scaled by N when None).

    Raises:
        ValueError: on an unknown kind or an empty catalogue.
    """
    if kind not in INDEX_KINDS:
        raise ValueError(f"index kind must be one of {INDEX_KINDS}, got {kind!r}")
    num = int(embeddings.shape[0])
    if num == 0:
        raise ValueError("cannot index an empty catalogue")
    rows = tf.range(num, dtype=tf.int32)
    if kind == "brute_force":
        return tfrs.layers.factorized_top_k.BruteForce(k=min(k, num)).index(embeddings, rows)
    config = scann or ScannConfig()
    layer = DeterministicScaNN(
        **config.resolved(num, k),
        dimensions_per_block=config.dimensions_per_block,
        training_iterations=config.training_iterations,
        training_threads=config.training_threads,
        k=min(k, num),
    )
    return layer.index(embeddings, rows)


class SeenItems(tf.Module):
    """The catalogue rows each known user interacted with in training.

    Keys `user_idx * num_rows + row` are kept sorted, so membership is one
    `searchsorted` per result; the per-user counts bound how far retrieval must
    over-fetch to still return k unseen items.

    Args:
        user_idx: [E] user index of each training event.
        rows: [E] catalogue row of each event's item (-1 if not in the catalogue).
        num_users: User vocabulary size plus OOV buckets.
        num_rows: Catalogue size.

    Raises:
        ValueError: if the arrays differ in length.
    """

    def __init__(self, user_idx: np.ndarray, rows: np.ndarray, num_users: int, num_rows: int):
        super().__init__()
        if user_idx.shape != rows.shape:
            raise ValueError(f"user_idx {user_idx.shape} and rows {rows.shape} must align")
        keep = rows >= 0
        keys = np.unique(user_idx[keep].astype(np.int64) * num_rows + rows[keep])
        counts = np.bincount(keys // num_rows, minlength=num_users).astype(np.int32)
        self.num_rows = num_rows
        self.keys = tf.Variable(np.append(keys, np.iinfo(np.int64).max), trainable=False)
        self.counts = tf.Variable(counts[:num_users], trainable=False)

    def max_count(self, user_idx: tf.Tensor) -> tf.Tensor:
        """Largest number of seen items among the users [B] (0 for an empty batch)."""
        counts = tf.gather(self.counts, tf.minimum(user_idx, tf.size(self.counts, tf.int64) - 1))
        return tf.reduce_max(tf.concat([counts, [0]], 0))

    def contains(self, user_idx: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
        """Whether each of rows [B, K] was seen by user [B]; bool [B, K]."""
        keys = user_idx[:, None] * self.num_rows + tf.cast(rows, tf.int64)
        flat = tf.reshape(keys, [-1])
        position = tf.searchsorted(self.keys, flat)
        found = tf.equal(tf.gather(self.keys, position), flat)
        return tf.reshape(found, tf.shape(keys))
