"""The module every exported model serves: raw features in, items, ratings or ranks out.

Signatures (names in `contracts.names`):
    retrieve(user_id: string[B], k: int32[]) -> item_ids string[B, k'], titles
        string[B, k'], scores float[B, k'], best first, k' = min(k, catalogue size).
    rate(user_id: string[B], item_id: string[B]) -> rating float[B].
    evaluate(examples: string[B] serialized raw events) -> rank int64[B],
        rank_with_seen int64[B], rating float[B]; used by the Evaluator.
    serving_default = retrieve.

Ids are normalised as in ExampleGen (`contracts.ids`). `retrieve` never returns
an item the user is known to have interacted with (training and evaluation
events) unless fewer than k other items are left; those come last with score
float32.min. `evaluate` ranks an event's item among the catalogue with only
the *training* pairs excluded (`rank`, 1 = first; catalogue size + 1 when the
item cannot be retrieved) and without exclusion (`rank_with_seen`); a hit at K
is `rank <= K`, exactly what `retrieve(user, K)` would have returned at
training time. Unknown users get the training data's most popular items
(scores: each item's share of training events), and `rate` answers them with
the activity-weighted mean user. Unknown items in `rate` use the item tower's
OOV representation.

The brute-force model scores the whole catalogue with stock TF ops. The ScaNN
model asks its index for at most `num_reordering_candidates` results, where
ScaNN's answers for one user do not depend on the depth asked or on the rest of
the batch; a user whose request needs more (k plus their known items), or for
whom ScaNN found fewer candidates than asked, is answered by the exact search.
A catalogue smaller than `SCANN_MIN_CANDIDATES` is searched exactly by both.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from contracts import names
from models import features as F
from models.config import ScannConfig
from models.index import SCANN_MIN_CANDIDATES, SeenItems, build_index
from models.model import MultiTaskRecommender
from models.preprocessing import first_value

RANK_CHUNK = 16_384
"""Catalogue items scored at once when ranking (memory: batch x chunk floats)."""


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


class ServingModule(tf.Module):
    """Wraps the trained towers, the Transform layer, the catalogue and its index.

    Args:
        model: The trained recommender.
        tf_transform_output: Transform output whose graph is embedded.
        item_ids: [N] catalogue ids; row r of every catalogue tensor is item r.
        titles: [N] catalogue titles.
        embeddings: [N + 1, d] item embeddings; the last row is the OOV item.
        popularity: [N] each item's share of training events (unknown users' answer).
        index_kind: "brute_force" or "scann".
        top_k: Default depth the ScaNN index is sized for.
        scann: ScaNN parameters when `index_kind` is "scann".
        seen: Known (user, item) pairs; None disables every exclusion.
    """

    def __init__(
        self,
        model: MultiTaskRecommender,
        tf_transform_output: tft.TFTransformOutput,
        item_ids: tf.Tensor,
        titles: tf.Tensor,
        embeddings: tf.Tensor,
        popularity: np.ndarray,
        index_kind: str = "brute_force",
        top_k: int = names.RETRIEVAL_K,
        scann: ScannConfig | None = None,
        seen: SeenItems | None = None,
    ):
        super().__init__()
        self.user_tower = model.user_tower
        self.rating_tower = model.rating_tower
        self.tft_layer = tf_transform_output.transform_features_layer()
        self._raw_spec = tf_transform_output.raw_feature_spec()
        self.num_users = tf_transform_output.vocabulary_size_by_name(F.USER_VOCAB)
        self.num_items = int(item_ids.shape[0])
        self.item_ids = tf.Variable(item_ids, trainable=False, name="item_ids")
        self.titles = tf.Variable(titles, trainable=False, name="titles")
        self.item_embeddings = tf.Variable(embeddings, trainable=False, name="item_embeddings")
        order = np.argsort(-np.asarray(popularity), kind="stable")
        rank = np.empty(self.num_items, np.int64)
        rank[order] = np.arange(1, self.num_items + 1)
        self.popular_rows = tf.Variable(order.astype(np.int32), trainable=False)
        self.popular_scores = tf.Variable(
            np.asarray(popularity, np.float32)[order], trainable=False
        )
        self.popular_rank = tf.Variable(rank, trainable=False)
        self.index = None
        self.scann_depth = 0
        if index_kind != "brute_force" and self.num_items >= SCANN_MIN_CANDIDATES:
            self.index = build_index(index_kind, embeddings[: self.num_items], k=top_k, scann=scann)
            resolved = (scann or ScannConfig()).resolved(self.num_items, top_k)
            self.scann_depth = resolved["num_reordering_candidates"]
        self.seen = seen
        self.item_rows = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                self.item_ids, tf.range(self.num_items, dtype=tf.int64)
            ),
            default_value=self.num_items,
        )

    def _users(self, user_id: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(query embeddings [B, d], user indices [B]) of raw user ids."""
        raw = as_raw_feature(tf.strings.strip(user_id), self._raw_spec[F.USER_ID])
        features = self.tft_layer({F.USER_ID: raw})
        return self.user_tower(features), features[F.USER_IDX]

    def _catalogue(self) -> tf.Tensor:
        return self.item_embeddings[: self.num_items]

    def _exact(self, queries: tf.Tensor, depth: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        scores = tf.matmul(queries, self._catalogue(), transpose_b=True)
        top = tf.math.top_k(scores, k=depth)
        return top.values, top.indices

    def _unseen_top_k(self, scores, rows, users, k):
        """The k best of (scores, rows) [B, depth] once known items are pushed last."""
        if self.seen is not None:
            scores = tf.where(self.seen.contains(users, rows), tf.float32.min, scores)
        top = tf.math.top_k(scores, k=k)
        return top.values, tf.gather(rows, top.indices, batch_dims=1)

    def _search(self, queries, users, k):
        """Top-k unseen (scores, rows) [B, k] per user, exact or through ScaNN."""
        need = tf.fill(tf.shape(users), k)
        if self.seen is not None:
            need = tf.minimum(need + self.seen.count(users), self.num_items)
        deepest = tf.reduce_max(tf.concat([need, [k]], 0))
        if self.index is None:
            return self._unseen_top_k(*self._exact(queries, deepest), users, k)
        # Always the full reordering depth: one user's candidates never depend on the batch.
        scores, rows = self.index(queries, k=self.scann_depth)
        width = tf.shape(scores)[1]
        pad = tf.maximum(k - width, 0)
        scores = tf.pad(scores, [[0, 0], [0, pad]], constant_values=np.nan)
        rows = tf.pad(rows, [[0, 0], [0, pad]])
        wanted = tf.range(tf.shape(scores)[1])[None, :] < need[:, None]
        short = tf.reduce_any(wanted & ~tf.math.is_finite(scores), axis=1)
        fallback = short | (need > width)
        scores = tf.where(tf.math.is_finite(scores), scores, tf.float32.min)
        approx = self._unseen_top_k(scores, rows, users, k)
        exact = tf.cond(
            tf.reduce_any(fallback),
            lambda: self._unseen_top_k(*self._exact(queries, deepest), users, k),
            lambda: approx,
        )
        return tuple(tf.where(fallback[:, None], e, a) for e, a in zip(exact, approx, strict=True))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name=names.USER_ID_INPUT),
            tf.TensorSpec([], tf.int32, name=names.K_INPUT),
        ]
    )
    def retrieve(self, user_id: tf.Tensor, k: tf.Tensor) -> dict[str, tf.Tensor]:
        """Top-k catalogue items per user, best first (known items excluded)."""
        tf.debugging.assert_positive(k, message="k must be a positive integer")
        k = tf.minimum(k, self.num_items)
        queries, users = self._users(user_id)
        scores, rows = self._search(queries, users, k)
        unknown = (users >= self.num_users)[:, None]
        rows = tf.where(unknown, self.popular_rows[None, :k], rows)
        scores = tf.where(unknown, self.popular_scores[None, :k], scores)
        return {
            names.ITEM_IDS_OUTPUT: tf.gather(self.item_ids, rows),
            names.TITLES_OUTPUT: tf.gather(self.titles, rows),
            names.SCORES_OUTPUT: scores,
        }

    def _rate(self, queries: tf.Tensor, item_rows: tf.Tensor) -> tf.Tensor:
        items = tf.gather(self.item_embeddings, item_rows)
        return tf.reshape(self.rating_tower((queries, items)), [-1])

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name=names.USER_ID_INPUT),
            tf.TensorSpec([None], tf.string, name=names.ITEM_ID_INPUT),
        ]
    )
    def rate(self, user_id: tf.Tensor, item_id: tf.Tensor) -> dict[str, tf.Tensor]:
        """Predicted rating per (user, item) pair."""
        tf.debugging.assert_equal(
            tf.shape(user_id), tf.shape(item_id), message="user_id and item_id must align"
        )
        queries, _ = self._users(user_id)
        rows = self.item_rows.lookup(tf.strings.strip(item_id))
        return {names.RATING_OUTPUT: self._rate(queries, rows)}

    def _count_above(self, queries: tf.Tensor, target: tf.Tensor, own: tf.Tensor) -> tf.Tensor:
        """Catalogue items other than row `own` scoring above `target`, per user; int64 [B]."""

        def body(start, count):
            block = self.item_embeddings[start : tf.minimum(start + RANK_CHUNK, self.num_items)]
            scores = tf.matmul(queries, block, transpose_b=True)
            cols = tf.range(start, start + tf.shape(block)[0], dtype=tf.int64)
            above = (scores > target[:, None]) & (cols[None, :] != own[:, None])
            return start + RANK_CHUNK, count + tf.reduce_sum(tf.cast(above, tf.int64), axis=1)

        _, count = tf.while_loop(
            lambda start, _: start < self.num_items,
            body,
            (tf.constant(0), tf.zeros_like(own)),
        )
        return count

    def _train_seen_above(self, queries, users, target, own) -> tf.Tensor:
        """Items of each user's training pairs, other than `own`, scoring above `target`."""
        rows = self.seen.train_rows(users)
        owner = rows.value_rowids()
        flat = rows.flat_values
        scores = tf.reduce_sum(
            tf.gather(queries, owner) * tf.gather(self.item_embeddings, flat), axis=1
        )
        above = (scores > tf.gather(target, owner)) & (flat != tf.gather(own, owner))
        return tf.math.unsorted_segment_sum(
            tf.cast(above, tf.int64), owner, tf.shape(users, out_type=tf.int64)[0]
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=names.EXAMPLES_INPUT)])
    def evaluate(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        """Rank of each event's item (training pairs excluded, and not) and its predicted rating."""
        spec = {name: self._raw_spec[name] for name in (F.USER_ID, F.ITEM_ID)}
        parsed = tf.io.parse_example(examples, spec)
        user_id = first_value(parsed[F.USER_ID], b"")[0]
        item_id = first_value(parsed[F.ITEM_ID], b"")[0]
        queries, users = self._users(user_id)
        rows = self.item_rows.lookup(tf.strings.strip(item_id))
        target = tf.reduce_sum(queries * tf.gather(self.item_embeddings, rows), axis=1)
        missed = tf.constant(self.num_items + 1, tf.int64)
        rank_with_seen = self._count_above(queries, target, rows) + 1
        rank = rank_with_seen
        if self.seen is not None:
            rank -= self._train_seen_above(queries, users, target, rows)
            seen = self.seen.contains(users, rows[:, None], train_only=True)[:, 0]
            rank = tf.where(seen, missed, rank)
        popular = tf.gather(self.popular_rank, tf.minimum(rows, self.num_items - 1))
        unknown_user = users >= self.num_users
        unreachable = rows >= self.num_items
        rank, rank_with_seen = (
            tf.where(
                unreachable,
                missed,
                tf.where(unknown_user, popular, r),
            )
            for r in (rank, rank_with_seen)
        )
        return {
            names.RANK_OUTPUT: rank,
            names.RANK_WITH_SEEN_OUTPUT: rank_with_seen,
            names.RATING_OUTPUT: self._rate(queries, rows),
        }
