"""`recommend`'s blend of the two heads, chosen on the early-stopping holdout.

`recommend` retrieves candidates and orders them by `rating + w * retrieval
score`. Which w serves the best lists depends on the data: the rating tower
predicts the stars of items a user chose to rate, not which item they choose.
So w is chosen after training, as served: each holdout event (a user's latest
training pairs, never fitted) gets the query serving would build, the
candidates the served search returns without the user's other known items,
and the lists each w of `BLEND_WEIGHTS` orders; the w with the best top-k hit
rate wins (ties: the larger w, nearer retrieval order).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models import features as F

CHUNK = 256
"""Holdout events scored at once (the scores are [CHUNK, catalogue])."""
BLEND_WEIGHTS = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 1000.0)
"""Candidate weights of the retrieval score; 1000 is retrieval order in effect."""


def item_vectors(model, item_features: dict[str, np.ndarray]) -> np.ndarray:
    """The item tower's embeddings of every item index; [num_items + OOV, d]."""
    return model.item_tower({k: tf.constant(v) for k, v in item_features.items()}).numpy()


def _ratings(model, queries, users, items, item_idx, rating_range):
    """The served rating of each (query, candidate): tower + prior, clipped; [B, C]."""
    batch, depth = item_idx.shape
    flat_items = tf.reshape(tf.gather(items, item_idx), [batch * depth, -1])
    rating = model.rate(tf.repeat(queries, depth, 0), tf.repeat(users, depth, 0), flat_items)
    if model.rating_prior is not None:
        rating += model.rating_prior(tf.repeat(users, depth, 0), tf.reshape(item_idx, [-1]))
    rating = tf.reshape(rating, [batch, depth]).numpy()
    return np.clip(rating, *rating_range) if rating_range else rating


def choose_retrieval_weight(
    model,
    holdout: tf.data.Dataset,
    item_features: dict[str, np.ndarray],
    catalogue_idx: np.ndarray,
    known: tuple[np.ndarray, np.ndarray],
    candidates: int,
    k: int = 10,
    evaluated: tuple[str, ...] = (),
    rating_range: tuple[float, float] | None = None,
    weights: tuple[float, ...] = BLEND_WEIGHTS,
) -> dict:
    """The retrieval weight whose `recommend` lists hit the holdout most often at k.

    Args:
        model: The trained `MultiTaskRecommender`.
        holdout: Batches of held-out training events with served histories.
        item_features: Every item index's features (`models.data.item_index_features`).
        catalogue_idx: [N] item index of each catalogue row (OOV rows excluded).
        known: (user, item) indices of the training events outside the holdout:
            excluded, as serving excludes known items.
        candidates: Candidates retrieved per request (`RecommendConfig.candidates`).
        k: Depth of the hit rate.
        evaluated: Event types scored; empty: every event.
        rating_range: The schema's rating range, which served ratings are clipped to.
        weights: Candidate weights.

    Returns:
        {"retrieval_weight", "events", "hit_rate" (by weight), "retrieval_order"
        (the hit rate of retrieval's own order)}; weight None when no event counts.
    """
    items = item_vectors(model, item_features)
    rows = np.asarray(catalogue_idx, np.int64)
    depth = min(candidates, len(rows))
    position = np.full(items.shape[0], -1, np.int64)
    position[rows] = np.arange(len(rows))
    known_users, known_rows = known[0].astype(np.int64), position[known[1].astype(np.int64)]
    order = np.lexsort((known_rows, known_users))
    known_users, known_rows = known_users[order], known_rows[order]
    hits = np.zeros(len(weights))
    retrieval_hits, events = 0, 0
    for batch in holdout:
        keep = np.ones(batch[F.USER_IDX].shape[0], bool)
        if evaluated:
            keep = np.isin(batch[F.EVENT_TYPE].numpy(), np.array(evaluated, object).astype(bytes))
        for start in np.arange(0, len(keep), CHUNK):
            chosen = np.zeros_like(keep)
            chosen[start : start + CHUNK] = keep[start : start + CHUNK]
            if not chosen.any():
                continue
            features = {name: tf.boolean_mask(v, chosen) for name, v in batch.items()}
            users, target = features[F.USER_IDX], features[F.ITEM_IDX].numpy()
            queries = model.user_tower(features)
            scores = (queries.numpy() @ items[rows].T).astype(np.float32)
            for r, user in enumerate(users.numpy()):
                lo, hi = np.searchsorted(known_users, [user, user + 1])
                seen = known_rows[lo:hi]
                scores[r, seen[seen >= 0]] = -np.inf
            top = tf.math.top_k(scores, k=depth)
            retrieved, idx = top.values.numpy(), rows[top.indices.numpy()]
            rating = _ratings(model, queries, users, items, idx, rating_range)
            found = idx == target[:, None]
            retrieval_hits += int(found[:, :k].any(1).sum())
            for w, weight in enumerate(weights):
                final = np.where(np.isfinite(retrieved), rating + weight * retrieved, -np.inf)
                ranked = np.argsort(-final, axis=1, kind="stable")[:, :k]
                hits[w] += np.take_along_axis(found, ranked, 1).any(1).sum()
            events += int(chosen.sum())
    if not events:
        return {"retrieval_weight": None, "events": 0, "hit_rate": {}, "retrieval_order": None}
    rates = hits / events
    best = max(range(len(weights)), key=lambda w: (rates[w], weights[w]))
    return {
        "retrieval_weight": float(weights[best]),
        "events": events,
        "hit_rate": {str(w): float(r) for w, r in zip(weights, rates, strict=True)},
        "retrieval_order": retrieval_hits / events,
    }
