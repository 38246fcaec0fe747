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

SCANN_MIN_CANDIDATES = 256
"""Below this many items a ScaNN index cannot be trained (its quantizer needs 16
points per block) and would not be faster than an exact search anyway."""


class DeterministicScaNN(tfrs.layers.factorized_top_k.ScaNN):
    """TFRS's ScaNN layer with a reproducible index and uncapped result depth.

    `leaves_to_search` is a variable read at search time, so the search breadth
    can be raised after the index is built (see `models.export.tune_scann`).

    Three changes to `tfrs.layers.factorized_top_k.ScaNN`: the tree's k-means
    starts from k-means++ centres instead of a random sample, so the same
    embeddings give the same index (TFRS's random initialisation does not, even
    single-threaded); a search for more than `num_reordering_candidates`
    results raises the pre-reorder depth instead of silently returning fewer;
    and every query is searched alone, so its answer does not depend on the
    batch it came in.

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
        self.num_leaves = num_leaves
        self.leaves_to_search = tf.Variable(
            num_leaves_to_search, trainable=False, dtype=tf.int32, name="leaves_to_search"
        )

    def call(self, queries: tf.Tensor, k: int | tf.Tensor | None = None):
        """Returns (scores [B, k], identifiers [B, k]) for query embeddings [B, d].

        Each query is searched on its own: ScaNN's batched kernels can give a
        query other candidates depending on the rest of the batch. A query for
        which ScaNN finds fewer than k candidates gets NaN scores at the end.
        """
        from scann.scann_ops.py import scann_ops

        if self._serialized_searcher is None:
            raise ValueError("call index() before querying the ScaNN layer")
        k = self._k if k is None else k
        searcher = scann_ops.searcher_from_module(self._serialized_searcher)

        def search(query: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            result = searcher.search_batched(
                query[None],
                final_num_neighbors=k,
                pre_reorder_num_neighbors=tf.maximum(k, self._num_reordering_candidates),
                leaves_to_search=self.leaves_to_search,
            )
            missing = [[0, k - tf.shape(result.indices)[1]]]
            return (
                tf.pad(result.distances[0], missing, constant_values=np.nan),
                tf.pad(result.indices[0], missing),
            )

        scores, positions = tf.map_fn(
            search,
            queries,
            fn_output_signature=(
                tf.TensorSpec([None], tf.float32),
                tf.TensorSpec([None], tf.int32),
            ),
        )
        return scores, tf.gather(self._identifiers, positions)


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
    """The catalogue rows each known user interacted with, each pair flagged "in training".

    Served models exclude every known pair; the evaluation excludes only pairs
    of the training events, so an eval event's own item is never hidden from it.
    Keys `user_idx * num_rows + row` are kept sorted, so membership is one
    `searchsorted` per result, and a user's rows are one contiguous key range.

    Users outside the vocabulary (known from evaluation events only) share the
    OOV index in the model; here they keep their own, `num_users + j` for the
    j-th of `outside_users`, found by raw id (`index_of`).

    Args:
        user_idx: [E] user index of each known event.
        rows: [E] catalogue row of each event's item (-1 if not in the catalogue).
        in_train: [E] whether the event is a training event.
        num_users: User vocabulary size plus OOV buckets.
        num_rows: Catalogue size.
        outside_users: Raw ids of the users outside the vocabulary, in the
            order of their indices.

    Raises:
        ValueError: if the arrays differ in length.
    """

    def __init__(
        self,
        user_idx: np.ndarray,
        rows: np.ndarray,
        in_train: np.ndarray,
        num_users: int,
        num_rows: int,
        outside_users: np.ndarray | None = None,
    ):
        super().__init__()
        if not user_idx.shape == rows.shape == in_train.shape:
            raise ValueError(
                f"user_idx {user_idx.shape}, rows {rows.shape} and in_train "
                f"{in_train.shape} must align"
            )
        keep = rows >= 0
        all_keys = user_idx[keep].astype(np.int64) * num_rows + rows[keep]
        keys, inverse = np.unique(all_keys, return_inverse=True)
        train = np.zeros(len(keys), bool)
        np.logical_or.at(train, inverse, in_train[keep].astype(bool))
        outside = np.asarray([] if outside_users is None else outside_users, object)
        indexed = num_users + len(outside)
        counts = np.bincount(keys // num_rows, minlength=indexed).astype(np.int32)
        self.num_rows = num_rows
        self.keys = tf.Variable(np.append(keys, np.iinfo(np.int64).max), trainable=False)
        self.train = tf.Variable(np.append(train, False), trainable=False)
        self.counts = tf.Variable(counts[:indexed], trainable=False)
        self.outside = None
        if len(outside):
            self.outside = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(outside.astype(bytes)),
                    tf.range(num_users, indexed, dtype=tf.int64),
                ),
                default_value=-1,
            )

    def index_of(self, users: tf.Tensor, user_ids: tf.Tensor) -> tf.Tensor:
        """The index [B] each user's known items are kept under.

        Args:
            users: [B] vocabulary indices (the OOV index for unknown ids).
            user_ids: [B] the raw ids, as the vocabulary spells them.
        """
        if self.outside is None:
            return users
        found = self.outside.lookup(user_ids)
        return tf.where(found >= 0, found, users)

    def count(self, user_idx: tf.Tensor) -> tf.Tensor:
        """Known items of each user [B] (0 for unknown users); int32 [B]."""
        inside = tf.minimum(user_idx, tf.size(self.counts, tf.int64) - 1)
        return tf.where(
            user_idx < tf.size(self.counts, tf.int64), tf.gather(self.counts, inside), 0
        )

    def contains(self, user_idx: tf.Tensor, rows: tf.Tensor, train_only: bool = False) -> tf.Tensor:
        """Whether each of rows [B, K] is known for user [B] (in training only, if asked); bool."""
        keys = user_idx[:, None] * self.num_rows + tf.cast(rows, tf.int64)
        flat = tf.reshape(keys, [-1])
        position = tf.searchsorted(self.keys, flat)
        found = tf.equal(tf.gather(self.keys, position), flat)
        if train_only:
            found &= tf.gather(self.train, position)
        return tf.reshape(found, tf.shape(keys))

    def train_rows(self, user_idx: tf.Tensor) -> tf.RaggedTensor:
        """The catalogue rows of each user's training pairs; int64 ragged [B, (n_u)]."""
        starts = tf.searchsorted(self.keys, user_idx * self.num_rows)
        limits = tf.searchsorted(self.keys, (user_idx + 1) * self.num_rows)
        positions = tf.ragged.range(starts, limits)
        keys = tf.gather(self.keys, positions)
        rows = keys - user_idx[:, None] * self.num_rows
        return tf.ragged.boolean_mask(rows, tf.gather(self.train, positions))
