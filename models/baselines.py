"""The trivial baselines every model must beat, fitted on the same training events.

- Rating: the global mean plus damped user and item biases,
  r(u, i) = mu + b_u + b_i, fitted by alternating regularised means.
- Retrieval: the most popular items of the training events, without the
  user's own training items (`models.serving_module` ranks with it).
"""

from __future__ import annotations

import dataclasses

import numpy as np

BIAS_DAMPING = 10.0
"""Pseudo-count pulling a user's or item's bias towards 0 (few ratings, small bias)."""
BIAS_SWEEPS = 5


@dataclasses.dataclass(frozen=True)
class BiasModel:
    """mu + user bias + item bias.

    Attributes:
        mean: Global mean rating mu.
        user_bias: [num_users] bias per user index (0 for users without ratings).
        item_bias: [num_items] bias per item index (0 for items without ratings).
    """

    mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings [n] for aligned user and item indices."""
        return self.mean + self.user_bias[users] + self.item_bias[items]


def fit_bias_model(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    num_users: int,
    num_items: int,
    damping: float = BIAS_DAMPING,
    sweeps: int = BIAS_SWEEPS,
) -> BiasModel:
    """Fits mu and damped biases on aligned [n] user indices, item indices and ratings.

    Each sweep sets b_i = sum(r - mu - b_u) / (n_i + damping), then
    b_u = sum(r - mu - b_i) / (n_u + damping).

    Raises:
        ValueError: if there is no rating, or an index is out of range.
    """
    if not len(ratings):
        raise ValueError("the bias baseline needs at least one training rating")
    if users.max() >= num_users or items.max() >= num_items:
        raise ValueError(
            f"indices exceed the vocabularies ({users.max()} >= {num_users} or "
            f"{items.max()} >= {num_items})"
        )
    ratings = ratings.astype(np.float64)
    mean = float(ratings.mean())
    user_bias, item_bias = np.zeros(num_users), np.zeros(num_items)
    for _ in range(sweeps):
        item_bias = np.bincount(items, ratings - mean - user_bias[users], num_items) / (
            np.bincount(items, None, num_items) + damping
        )
        user_bias = np.bincount(users, ratings - mean - item_bias[items], num_users) / (
            np.bincount(users, None, num_users) + damping
        )
    return BiasModel(mean, user_bias.astype(np.float32), item_bias.astype(np.float32))
