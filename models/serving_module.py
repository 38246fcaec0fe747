"""The module every exported model serves: raw features in, items, ratings or ranks out.

Signatures (names in `contracts.names`):
    retrieve(user_id: string[B], k: int32[]) -> item_ids string[B, k'], titles
        string[B, k'], scores float[B, k'], best first, k' = min(k, catalogue size).
    retrieve_with_seen(user_id, k): the same, known items included.
    rate(user_id: string[B], item_id: string[B]) -> rating float[B].
    evaluate(examples: string[B] serialized raw events) -> per event: the
        item's rank (training items excluded, and not), the predicted rating,
        the trivial baselines' answers, the label and the task weights.
    eval_features(examples) -> the evaluation's slice features per event.
    serving_default = retrieve.

Ids are normalised as in ExampleGen (`contracts.ids`). `retrieve` never returns
an item the user is known to have interacted with (training and evaluation
events) unless fewer than k other items are left; those come last with score
float32.min. `evaluate` ranks an event's item among the catalogue with only the
*training* pairs excluded (rank 1 = first; catalogue size + 1 when the item
cannot be retrieved), so a hit at K is `rank <= K`, exactly what
`retrieve(user, K)` would have returned at training time. Unknown users get the
training data's most popular items (scores: each item's share of training
events), and `rate` answers them with the activity-weighted mean user. Ratings
are clipped to the schema's rating range. Unknown items in `rate` use the item
tower's OOV representation.

The brute-force model scores the whole catalogue with stock TF ops. The ScaNN
model asks its index for `num_reordering_candidates` results per user, searched
one user at a time, so a user's answer does not depend on the rest of the batch;
a user whose request needs more (k plus their known items), or for whom ScaNN
found fewer candidates than asked, is answered by the exact search. A
catalogue smaller than `SCANN_MIN_CANDIDATES` is searched exactly by both.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from contracts import names
from models import features as F
from models import ranking
from models.baselines import BiasModel
from models.config import ScannConfig, TaskEvents
from models.index import SCANN_MIN_CANDIDATES, SeenItems, build_index
from models.preprocessing import first_value

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


class ServingModule(tf.Module):
    """Wraps the trained towers, the Transform layer, the catalogue and its index.

    Args:
        model: The trained recommender (its `user_tower` and `rating_tower`).
        tf_transform_output: Transform output whose graph is embedded.
        catalogue: The retrieval candidates.
        facts: Popularity, user activity, the bias baseline and the rating range.
        events: Which events the rating and top-K evaluation count (None: all).
        index_kind: "brute_force" or "scann".
        top_k: Default depth the ScaNN index is sized for.
        scann: ScaNN parameters when `index_kind` is "scann".
        seen: Known (user, item) pairs; None disables every exclusion.
    """

    def __init__(
        self,
        model,
        tf_transform_output: tft.TFTransformOutput,
        catalogue: Catalogue,
        facts: TrainingFacts,
        events: TaskEvents | None = None,
        index_kind: str = "brute_force",
        top_k: int = names.RETRIEVAL_K,
        scann: ScannConfig | None = None,
        seen: SeenItems | None = None,
    ):
        super().__init__()
        self.user_tower = model.user_tower
        self.rating_tower = model.rating_tower
        self.rating_prior = getattr(model, "rating_prior", None)
        self.tft_layer = tf_transform_output.transform_features_layer()
        self._raw_spec = tf_transform_output.raw_feature_spec()
        self.num_users = tf_transform_output.vocabulary_size_by_name(F.USER_VOCAB)
        self.num_items = n = int(catalogue.item_ids.shape[0])
        self.item_ids = tf.Variable(catalogue.item_ids, trainable=False, name="item_ids")
        self.titles = tf.Variable(catalogue.titles, trainable=False, name="titles")
        self.item_embeddings = tf.Variable(catalogue.embeddings, trainable=False)
        popularity = np.asarray(facts.popularity, np.float32)
        order = np.argsort(-popularity, kind="stable")
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(1, n + 1)
        self.popular_rows = tf.Variable(order.astype(np.int32), trainable=False)
        self.popular_scores = tf.Variable(popularity[order], trainable=False)
        self.popular_rank = tf.Variable(rank, trainable=False)
        self.popularity = tf.Variable(popularity, trainable=False)
        self.user_activity = tf.Variable(np.asarray(facts.user_activity, np.int64), trainable=False)
        self.bias_mean = float(facts.bias.mean)
        self.user_bias = tf.Variable(facts.bias.user_bias, trainable=False)
        self.item_bias = tf.Variable(facts.bias.item_bias, trainable=False)
        self.rating_range = facts.rating_range
        events = events or TaskEvents()
        self.rating_types = tf.constant(list(events.rating), tf.string)
        self.retrieval_types = tf.constant(list(events.evaluated_retrieval_events()), tf.string)
        self.head_rank, self.torso_rank = (
            math.ceil(s * n) for s in (ranking.HEAD_SHARE, ranking.TORSO_SHARE)
        )
        self.index = None
        self.scann_depth = 0
        if index_kind != "brute_force" and n >= SCANN_MIN_CANDIDATES:
            self.index = build_index(index_kind, catalogue.embeddings[:n], k=top_k, scann=scann)
            resolved = (scann or ScannConfig()).resolved(n, top_k)
            self.scann_depth = resolved["num_reordering_candidates"]
        self.seen = seen
        if self.rating_prior is not None:
            if catalogue.item_idx is None:
                raise ValueError("a model with a rating prior needs Catalogue.item_idx")
            oov = tf_transform_output.vocabulary_size_by_name(F.ITEM_VOCAB)
            rows = tf.concat([tf.cast(catalogue.item_idx, tf.int64), [oov]], 0)
            self.row_item_idx = tf.Variable(rows, trainable=False)
        self.item_rows = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self.item_ids, tf.range(n, dtype=tf.int64)),
            default_value=n,
        )

    def _users(self, user_id: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(query embeddings [B, d], user indices [B]) of raw user ids."""
        raw = as_raw_feature(tf.strings.strip(user_id), self._raw_spec[F.USER_ID])
        features = self.tft_layer({F.USER_ID: raw})
        return self.user_tower(features), features[F.USER_IDX]

    def _exact(self, queries: tf.Tensor, depth: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        scores = tf.matmul(queries, self.item_embeddings[: self.num_items], transpose_b=True)
        top = tf.math.top_k(scores, k=depth)
        return top.values, top.indices

    @staticmethod
    def _unseen_top_k(scores, rows, users, k, seen: SeenItems | None):
        """The k best of (scores, rows) [B, depth] once `seen` items are pushed last."""
        if seen is not None:
            scores = tf.where(seen.contains(users, rows), tf.float32.min, scores)
        top = tf.math.top_k(scores, k=k)
        return top.values, tf.gather(rows, top.indices, batch_dims=1)

    def _search(self, queries, users, k, seen: SeenItems | None):
        """Top-k (scores, rows) [B, k] per user without `seen` items, exact or through ScaNN."""
        need = tf.fill(tf.shape(users), k)
        if seen is not None:
            need = tf.minimum(need + seen.count(users), self.num_items)
        deepest = tf.reduce_max(tf.concat([need, [k]], 0))
        if self.index is None:
            return self._unseen_top_k(*self._exact(queries, deepest), users, k, seen)
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
        approx = self._unseen_top_k(scores, rows, users, k, seen)
        exact = tf.cond(
            tf.reduce_any(fallback),
            lambda: self._unseen_top_k(*self._exact(queries, deepest), users, k, seen),
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
        return self._retrieve(user_id, k, self.seen)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name=names.USER_ID_INPUT),
            tf.TensorSpec([], tf.int32, name=names.K_INPUT),
        ]
    )
    def retrieve_with_seen(self, user_id: tf.Tensor, k: tf.Tensor) -> dict[str, tf.Tensor]:
        """Top-k catalogue items per user, best first, known items included."""
        return self._retrieve(user_id, k, None)

    def _retrieve(self, user_id, k, seen: SeenItems | None) -> dict[str, tf.Tensor]:
        tf.debugging.assert_positive(k, message="k must be a positive integer")
        k = tf.minimum(k, self.num_items)
        queries, users = self._users(user_id)
        scores, rows = self._search(queries, users, k, seen)
        unknown = (users >= self.num_users)[:, None]
        rows = tf.where(unknown, self.popular_rows[None, :k], rows)
        scores = tf.where(unknown, self.popular_scores[None, :k], scores)
        return {
            names.ITEM_IDS_OUTPUT: tf.gather(self.item_ids, rows),
            names.TITLES_OUTPUT: tf.gather(self.titles, rows),
            names.SCORES_OUTPUT: scores,
        }

    def _clip(self, ratings: tf.Tensor) -> tf.Tensor:
        if self.rating_range is None:
            return ratings
        return tf.clip_by_value(ratings, *self.rating_range)

    def _rate(self, queries: tf.Tensor, users: tf.Tensor, item_rows: tf.Tensor) -> tf.Tensor:
        items = tf.gather(self.item_embeddings, item_rows)
        rating = self.rating_tower((queries, items))
        if self.rating_prior is not None:
            rating += self.rating_prior(users, tf.gather(self.row_item_idx, item_rows))
        return self._clip(tf.reshape(rating, [-1]))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name=names.USER_ID_INPUT),
            tf.TensorSpec([None], tf.string, name=names.ITEM_ID_INPUT),
        ]
    )
    def rate(self, user_id: tf.Tensor, item_id: tf.Tensor) -> dict[str, tf.Tensor]:
        """Predicted rating per (user, item) pair, within the schema's rating range."""
        tf.debugging.assert_equal(
            tf.shape(user_id), tf.shape(item_id), message="user_id and item_id must align"
        )
        queries, users = self._users(user_id)
        rows = self.item_rows.lookup(tf.strings.strip(item_id))
        return {names.RATING_OUTPUT: self._rate(queries, users, rows)}

    def _events(self, examples: tf.Tensor):
        """(user_id, item_id, event_type, rating label, has_rating) [B] of serialized events."""
        wanted = (F.USER_ID, F.ITEM_ID, F.EVENT_TYPE, F.RATING)
        parsed = tf.io.parse_example(examples, {k: self._raw_spec[k] for k in wanted})
        user_id, item_id, event_type = (first_value(parsed[k], b"")[0] for k in wanted[:3])
        label, has_rating = first_value(parsed[F.RATING], 0.0)
        return user_id, item_id, event_type, label, has_rating

    @staticmethod
    def _is_one_of(values: tf.Tensor, allowed: tf.Tensor) -> tf.Tensor:
        if allowed.shape[0] == 0:
            return tf.not_equal(values, b"")
        return tf.reduce_any(tf.equal(values[:, None], allowed[None, :]), axis=1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=names.EXAMPLES_INPUT)])
    def evaluate(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        """Per event: the item's ranks and rating, the trivial baselines', label and weights."""
        user_id, item_id, event_type, label, has_rating = self._events(examples)
        queries, users = self._users(user_id)
        rows = self.item_rows.lookup(tf.strings.strip(item_id))
        missed = tf.constant(self.num_items + 1, tf.int64)
        target = tf.reduce_sum(queries * tf.gather(self.item_embeddings, rows), axis=1)
        rank_with_seen = (
            ranking.count_above(self.item_embeddings, self.num_items, queries, target, rows) + 1
        )
        popular = tf.gather(self.popular_rank, tf.minimum(rows, self.num_items - 1))
        rank, popular_unseen = rank_with_seen, popular
        if self.seen is not None:

            def model_scores(item_rows, owner):
                items = tf.gather(self.item_embeddings, item_rows)
                return tf.reduce_sum(tf.gather(queries, owner) * items, axis=1)

            def popularity_scores(item_rows, owner):
                del owner
                capped = tf.minimum(item_rows, self.num_items - 1)
                return -tf.cast(tf.gather(self.popular_rank, capped), tf.float32)

            seen = self.seen.contains(users, rows[:, None], train_only=True)[:, 0]
            rank = rank - ranking.train_items_above(self.seen, users, rows, model_scores)
            popular_unseen = popular - ranking.train_items_above(
                self.seen, users, rows, popularity_scores
            )
            rank, popular_unseen = (tf.where(seen, missed, r) for r in (rank, popular_unseen))
        unknown_user = users >= self.num_users
        unreachable = rows >= self.num_items
        rank, rank_with_seen, popular_unseen = (
            tf.where(unreachable, missed, tf.where(unknown_user, popular, r))
            for r in (rank, rank_with_seen, popular_unseen)
        )
        bias = self.bias_mean + tf.gather(self.user_bias, users) + tf.gather(self.item_bias, rows)
        rated = (has_rating > 0) & self._is_one_of(event_type, self.rating_types)
        return {
            names.RANK_OUTPUT: rank,
            names.RANK_WITH_SEEN_OUTPUT: rank_with_seen,
            names.POPULAR_RANK_OUTPUT: popular_unseen,
            names.RATING_OUTPUT: self._rate(queries, users, rows),
            names.BIAS_RATING_OUTPUT: self._clip(bias),
            names.RATING_LABEL_OUTPUT: label,
            names.RATING_WEIGHT_OUTPUT: tf.cast(rated, tf.float32),
            names.RETRIEVAL_WEIGHT_OUTPUT: tf.cast(
                self._is_one_of(event_type, self.retrieval_types), tf.float32
            ),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=names.EXAMPLES_INPUT)])
    def eval_features(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        """Slice features per event: user activity, item popularity, new or known user/item."""
        user_id, item_id, _, _, _ = self._events(examples)
        _, users = self._users(user_id)
        rows = self.item_rows.lookup(tf.strings.strip(item_id))
        activity = tf.gather(self.user_activity, tf.minimum(users, self.num_users))
        capped = tf.minimum(rows, self.num_items - 1)
        popular = tf.gather(self.popular_rank, capped)
        trained = tf.gather(self.popularity, capped) > 0
        item_slice = tf.where(
            popular <= self.head_rank,
            "head",
            tf.where(popular <= self.torso_rank, "torso", "tail"),
        )
        item_slice = tf.where(trained, item_slice, "cold")
        item_slice = tf.where(rows >= self.num_items, "not_in_catalogue", item_slice)
        return {
            names.USER_ACTIVITY_SLICE: ranking.bucket(
                activity, ranking.USER_ACTIVITY_EDGES, ACTIVITY_LABELS
            ),
            names.ITEM_POPULARITY_SLICE: item_slice,
            names.USER_KNOWN_SLICE: tf.where(users < self.num_users, "known", "new"),
            names.ITEM_KNOWN_SLICE: tf.where(trained & (rows < self.num_items), "known", "new"),
        }
