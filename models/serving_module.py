"""The module every exported model serves: raw features in, items, ratings or ranks out.

Signatures (names in `contracts.names`):
    retrieve(user_id: string[B], k: int32[]) -> item_ids string[B, k'], titles
        string[B, k'], scores float[B, k'], best first, k' = min(k, catalogue size).
    retrieve_with_seen(user_id, k): the same, known items included.
    rate(user_id: string[B], item_id: string[B]) -> rating float[B].
    evaluate(examples: string[B] serialized raw events) -> per event: the
        item's rank (training items excluded, and not), the predicted rating,
        the trivial baselines' answers, the label and the task weights. The
        event is scored with exactly the inputs `retrieve` and `rate` get for
        its user: the user's latest training items as history, whatever the
        event's time.
    eval_features(examples) -> the evaluation's slice features per event.
    serving_default = retrieve.

Ids are normalised as in ExampleGen (`contracts.ids`). `retrieve` never returns
an item the user is known to have interacted with (training and evaluation
events) unless fewer than k other items are left; those come last with score
float32.min. `evaluate` ranks an event's item among the catalogue with only the
*training* pairs excluded (rank 1 = first; catalogue size + 1 when the item
cannot be retrieved), so a hit at K is `rank <= K`: the item is in what
`retrieve(user, K)` serves once the user's evaluation items are no longer
excluded (1 + the items `retrieve_with_seen` ranks above it, training items
left out). Unknown users get the
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

import math

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from contracts import names
from models import features as F
from models import history, ranking
from models.config import RecommendConfig, ScannConfig, TaskEvents
from models.history import UserHistories
from models.index import SCANN_MIN_CANDIDATES, SeenItems, build_index
from models.layers import rate
from models.preprocessing import first_value
from models.search import CandidateSearch, Exclusions, popular_unexcluded
from models.serving_state import ACTIVITY_LABELS, Catalogue, TrainingFacts, as_raw_feature


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
        histories: UserHistories | None = None,
        recommend: RecommendConfig | None = None,
    ):
        super().__init__()
        self.user_tower = model.user_tower
        self.rating_tower = model.rating_tower
        self.rate_from_history = getattr(model, "rate_from_history", True)
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
        depth = 0
        if index_kind != "brute_force" and n >= SCANN_MIN_CANDIDATES:
            self.index = build_index(index_kind, catalogue.embeddings[:n], k=top_k, scann=scann)
            depth = (scann or ScannConfig()).resolved(n, top_k)["num_reordering_candidates"]
        self.search = CandidateSearch(self.item_embeddings, n, self.index, depth)
        self.seen = seen
        self.histories = histories
        self.recommend_config = (recommend or RecommendConfig()).chosen(None)
        if self.rating_prior is not None or histories is not None:
            if catalogue.item_idx is None:
                raise ValueError("a model with a rating prior or history needs Catalogue.item_idx")
            oov = tf_transform_output.vocabulary_size_by_name(F.ITEM_VOCAB)
            rows = tf.concat([tf.cast(catalogue.item_idx, tf.int64), [oov]], 0)
            self.row_item_idx = tf.Variable(rows, trainable=False)
        self.item_rows = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self.item_ids, tf.range(n, dtype=tf.int64)),
            default_value=n,
        )

    def _users(self, user_id: tf.Tensor, recent_rows=None) -> tuple[tf.Tensor, tf.Tensor]:
        """(query embeddings [B, d], user indices [B]) of raw user ids.

        The one place a query is built, for every signature: the history is the
        user's latest training items, then the items a request brings.

        The user index is the vocabulary's, or for a user outside it whose
        known items are kept (`SeenItems.index_of`) an index past the OOV one;
        the towers and biases read `_in_vocabulary` of it.

        Args:
            user_id: [B] raw ids.
            recent_rows: Ragged [B, (r)] catalogue rows a request adds to the history.
        """
        stripped = tf.strings.strip(user_id)
        raw = as_raw_feature(stripped, self._raw_spec[F.USER_ID])
        features = dict(self.tft_layer({F.USER_ID: raw}))
        users = features[F.USER_IDX]
        if self.seen is not None:
            users = self.seen.index_of(users, stripped)
        if self.histories is not None:
            stored = self.histories.latest(users)
            if recent_rows is not None:
                recent = tf.gather(self.row_item_idx, recent_rows) + 1
                stored = tf.concat([stored, recent], axis=1)
            features[F.HISTORY] = history.right_aligned(stored, self.histories.length)
        return self.user_tower(features), users

    def _in_vocabulary(self, users: tf.Tensor) -> tf.Tensor:
        """User indices [B] the towers and tables know: past the vocabulary, the OOV one."""
        return tf.minimum(users, self.num_users)

    @tf.function(
        autograph=False,
        input_signature=[
            tf.TensorSpec([None], tf.string, name=names.USER_ID_INPUT),
            tf.TensorSpec([], tf.int32, name=names.K_INPUT),
        ],
    )
    def retrieve(self, user_id: tf.Tensor, k: tf.Tensor) -> dict[str, tf.Tensor]:
        """Top-k catalogue items per user, best first (known items excluded)."""
        return self._retrieve(user_id, k, self.seen)

    @tf.function(
        autograph=False,
        input_signature=[
            tf.TensorSpec([None], tf.string, name=names.USER_ID_INPUT),
            tf.TensorSpec([], tf.int32, name=names.K_INPUT),
        ],
    )
    def retrieve_with_seen(self, user_id: tf.Tensor, k: tf.Tensor) -> dict[str, tf.Tensor]:
        """Top-k catalogue items per user, best first, known items included."""
        return self._retrieve(user_id, k, None)

    def _retrieve(self, user_id, k, seen: SeenItems | None) -> dict[str, tf.Tensor]:
        tf.debugging.assert_positive(k, message="k must be a positive integer")
        k = tf.minimum(k, self.num_items)
        queries, users = self._users(user_id)
        exclusions = Exclusions(seen)
        scores, rows = self.search(queries, users, k, exclusions)
        unknown = users >= self.num_users
        popular = popular_unexcluded(
            self.popular_scores, self.popular_rows, users, k, exclusions, unknown
        )
        scores = tf.where(unknown[:, None], popular[0], scores)
        rows = tf.where(unknown[:, None], popular[1], rows)
        return {
            names.ITEM_IDS_OUTPUT: tf.gather(self.item_ids, rows),
            names.TITLES_OUTPUT: tf.gather(self.titles, rows),
            names.SCORES_OUTPUT: scores,
        }

    def _rows_of(self, item_ids: tf.Tensor) -> tf.Tensor:
        """Catalogue rows of raw item ids [B, n]; -1 for "" (padding) and unknown items."""
        rows = self.item_rows.lookup(tf.strings.strip(item_ids))
        return tf.where(
            (rows >= self.num_items) | tf.equal(item_ids, ""), tf.constant(-1, tf.int64), rows
        )

    @tf.function(
        autograph=False,
        input_signature=[
            tf.TensorSpec([None], tf.string, name=names.USER_ID_INPUT),
            tf.TensorSpec([None, None], tf.string, name=names.RECENT_ITEMS_INPUT),
            tf.TensorSpec([None, None], tf.string, name=names.EXCLUDE_ITEMS_INPUT),
            tf.TensorSpec([], tf.int32, name=names.K_INPUT),
        ],
    )
    def recommend(self, user_id, recent_item_ids, exclude_item_ids, k) -> dict[str, tf.Tensor]:
        """Retrieve candidates, re-rank them by predicted rating, return the top k per user.

        `recent_item_ids` (items consumed since training, oldest first; "" pads)
        join the user's history and, like `exclude_item_ids` and the known items,
        never come back; a slot with no eligible item left has item id "".
        """
        tf.debugging.assert_positive(k, message="k must be a positive integer")
        k = tf.minimum(k, self.num_items)
        recent, exclude = self._rows_of(recent_item_ids), self._rows_of(exclude_item_ids)
        recent_rows = tf.ragged.boolean_mask(recent, recent >= 0)
        queries, users = self._users(user_id, recent_rows=recent_rows)
        depth = tf.maximum(k, min(self.recommend_config.candidates, self.num_items))
        exclusions = Exclusions(self.seen, tf.concat([recent, exclude], axis=1))
        scores, rows = self.search(queries, users, depth, exclusions)
        # A user the model has no trace of (no id, no history): the popular list.
        cold = (users >= self.num_users) & (recent_rows.row_lengths() == 0)
        popular = popular_unexcluded(
            self.popular_scores, self.popular_rows, users, depth, exclusions, cold
        )
        scores = tf.where(cold[:, None], popular[0], scores)
        rows = tf.where(cold[:, None], popular[1], rows)
        batch = tf.shape(users)[0]
        eligible = scores > tf.float32.min
        ratings = tf.reshape(
            self._rate(
                tf.repeat(queries, depth, axis=0),
                tf.repeat(users, depth, axis=0),
                tf.cast(tf.reshape(rows, [-1]), tf.int64),
            ),
            [batch, depth],
        )
        final = ratings + self.recommend_config.retrieval_weight * scores
        top = tf.math.top_k(tf.where(eligible, final, tf.float32.min), k=k)
        valid = top.values > tf.float32.min
        chosen = tf.gather(rows, top.indices, batch_dims=1)
        return {
            names.ITEM_IDS_OUTPUT: tf.where(valid, tf.gather(self.item_ids, chosen), ""),
            names.TITLES_OUTPUT: tf.where(valid, tf.gather(self.titles, chosen), ""),
            names.SCORES_OUTPUT: top.values,
            names.RATING_OUTPUT: tf.where(
                valid, tf.gather(ratings, top.indices, batch_dims=1), 0.0
            ),
            names.RETRIEVAL_SCORES_OUTPUT: tf.where(
                valid, tf.gather(scores, top.indices, batch_dims=1), tf.float32.min
            ),
        }

    def _clip(self, ratings: tf.Tensor) -> tf.Tensor:
        if self.rating_range is None:
            return ratings
        return tf.clip_by_value(ratings, *self.rating_range)

    def _rate(self, queries: tf.Tensor, users: tf.Tensor, item_rows: tf.Tensor) -> tf.Tensor:
        items = tf.gather(self.item_embeddings, item_rows)
        users = self._in_vocabulary(users)
        rating = rate(
            self.user_tower, self.rating_tower, queries, users, items, self.rate_from_history
        )
        if self.rating_prior is not None:
            rating += self.rating_prior(users, tf.gather(self.row_item_idx, item_rows))
        return self._clip(tf.reshape(rating, [-1]))

    @tf.function(
        autograph=False,
        input_signature=[
            tf.TensorSpec([None], tf.string, name=names.USER_ID_INPUT),
            tf.TensorSpec([None], tf.string, name=names.ITEM_ID_INPUT),
        ],
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
        """(user_id, item_id, event_type, rating label, has_rating) [B] of raw events."""
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

    @tf.function(
        autograph=False,
        input_signature=[tf.TensorSpec([None], tf.string, name=names.EXAMPLES_INPUT)],
    )
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
        user_bias = tf.gather(self.user_bias, self._in_vocabulary(users))
        bias = self.bias_mean + user_bias + tf.gather(self.item_bias, rows)
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

    @tf.function(
        autograph=False,
        input_signature=[tf.TensorSpec([None], tf.string, name=names.EXAMPLES_INPUT)],
    )
    def eval_features(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        """Slice features per event: user activity, item popularity, new or known user/item."""
        user_id, item_id, *_ = self._events(examples)
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
