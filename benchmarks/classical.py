"""Strong classical recommenders fitted on a run's training events: EASE and implicit ALS.

Both work in Transform's index space (user and item indices) on the binary
user-item matrix of the training events, and score every catalogue item for a
user; `ranks` turns scores into the rank the model's `evaluate` signature
reports (training items excluded, 1 = first, ties counted as half above).

- EASE (Steck, 2019): item-item weights B = I - P / diag(P), P = (X'X + lambda I)^-1,
  diag(B) = 0, in closed form.
- Implicit ALS (Hu, Koren and Volinsky, 2008): confidence 1 + alpha on observed
  pairs, exact alternating least squares with the Y'Y trick.

Their hyperparameters are chosen on a temporal holdout of the training events
(`contracts.holdout`), never on the evaluation split.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from contracts.holdout import latest_pairs


@dataclasses.dataclass(frozen=True)
class Interactions:
    """Training events as a binary user x item matrix.

    Attributes:
        matrix: CSR [users, items] with 1 where the user has a training event.
    """

    matrix: sp.csr_matrix

    @classmethod
    def of(cls, users: np.ndarray, items: np.ndarray, num_users: int, num_items: int):
        """The matrix of aligned [E] user and item indices (duplicates count once)."""
        data = np.ones(len(users), np.float32)
        matrix = sp.csr_matrix((data, (users, items)), shape=(num_users, num_items))
        matrix.data[:] = 1.0
        return cls(matrix)


Scorer = Callable[[np.ndarray], np.ndarray]
"""Scores [U, items] of the given [U] user indices."""


def fit_ease(interactions: Interactions, l2: float) -> Scorer:
    """EASE's closed form; items without a training event score 0."""
    x = interactions.matrix
    active = np.flatnonzero(np.asarray(x.sum(0)).ravel() > 0)
    xa = x[:, active]
    gram = (xa.T @ xa).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    b = b.astype(np.float32)

    def score(users: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), x.shape[1]), np.float32)
        out[:, active] = xa[users] @ b
        return out

    return score


def fit_als(
    interactions: Interactions,
    factors: int,
    regularization: float,
    alpha: float = 10.0,
    iterations: int = 12,
    seed: int = 0,
) -> Scorer:
    """Implicit ALS with confidence 1 + alpha on the observed pairs."""
    x = interactions.matrix
    rng = np.random.default_rng(seed)
    users = rng.normal(0, 0.01, (x.shape[0], factors))
    items = rng.normal(0, 0.01, (x.shape[1], factors))
    by_item = x.T.tocsr()
    eye = regularization * np.eye(factors)

    def solve(fixed: np.ndarray, rows: sp.csr_matrix, out: np.ndarray) -> None:
        base = fixed.T @ fixed + eye
        for r in range(rows.shape[0]):
            cols = rows.indices[rows.indptr[r] : rows.indptr[r + 1]]
            if not len(cols):
                out[r] = 0.0
                continue
            f = fixed[cols]
            out[r] = np.linalg.solve(base + alpha * f.T @ f, (1 + alpha) * f.sum(0))

    for _ in range(iterations):
        solve(items, x, users)
        solve(users, by_item, items)

    def score(query: np.ndarray) -> np.ndarray:
        return (users[query] @ items.T).astype(np.float32)

    return score


def popularity(interactions: Interactions) -> Scorer:
    """Most popular items (training users per item)."""
    counts = np.asarray(interactions.matrix.sum(0)).ravel().astype(np.float32)
    return lambda users: np.tile(counts, (len(users), 1))


def ranks(
    score: Scorer,
    interactions: Interactions,
    users: np.ndarray,
    items: np.ndarray,
    candidates: np.ndarray,
    batch: int = 256,
) -> np.ndarray:
    """Rank of each (user, item) event among `candidates`, the user's training items excluded.

    Args:
        score: The recommender.
        interactions: Training events (their items are excluded per user).
        users: [Q] user indices.
        items: [Q] item indices.
        candidates: Item indices that can be served (the catalogue).
        batch: Users scored at once.

    Returns:
        float [Q]: 1 + the candidates scored above the item + half the tied ones;
        len(candidates) + 1 when the item is no candidate.
    """
    allowed = np.zeros(interactions.matrix.shape[1], bool)
    allowed[candidates] = True
    out = np.full(len(users), len(candidates) + 1, np.float64)
    unique = np.unique(users)
    for start in range(0, len(unique), batch):
        chunk = unique[start : start + batch]
        scores = score(chunk).astype(np.float64)
        scores[:, ~allowed] = -np.inf
        seen = interactions.matrix[chunk].tocoo()
        scores[seen.row, seen.col] = -np.inf
        row_of = {u: r for r, u in enumerate(chunk.tolist())}
        for q in np.flatnonzero(np.isin(users, chunk)):
            if not allowed[items[q]]:
                continue
            row = scores[row_of[int(users[q])]]
            target = row[items[q]]
            if not np.isfinite(target):
                continue
            out[q] = 1 + np.sum(row > target) + 0.5 * (np.sum(row == target) - 1)
    return out


def choose(
    fit: Callable[..., Scorer],
    grid: Sequence[dict],
    users: np.ndarray,
    items: np.ndarray,
    times: np.ndarray,
    counted: np.ndarray,
    shape: tuple[int, int],
    candidates: np.ndarray,
    k: int,
    percent: float = 20,
) -> tuple[dict, list[tuple[dict, float]]]:
    """The grid point with the best hit rate at k on a temporal holdout of the training events.

    Args:
        fit: `fit_ease` or `fit_als`.
        grid: Keyword arguments of `fit` to try.
        users: [E] user index of each training event.
        items: [E] item index.
        times: [E] event time.
        counted: [E] bool, the events whose retrieval the gate scores.
        shape: (users, items) of the index space.
        candidates: Catalogue item indices.
        k: Depth of the hit rate.
        percent: Share of each user's training pairs held out.

    Returns:
        (best keyword arguments, every point with its holdout hit rate).
    """
    held = latest_pairs(users, items, times, percent)
    fitted = Interactions.of(users[~held], items[~held], *shape)
    scored = held & counted
    results = []
    for params in grid:
        r = ranks(fit(fitted, **params), fitted, users[scored], items[scored], candidates)
        results.append((params, float(np.mean(r <= k))))
    return max(results, key=lambda pr: pr[1])[0], results
