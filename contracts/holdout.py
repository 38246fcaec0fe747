"""The one temporal holdout: each user's latest pairs, in ExampleGen, early stopping and the Tuner.

A served model knows a user's past and is asked about what comes next, so what
judges it is each user's latest interactions. The rule works on (user, item)
pairs, each dated by its first event, so every event of a pair lands on one
side and a tag cannot leak an evaluation rating into training:

- a user with n pairs holds out the `round(n * percent / 100)` latest (at most
  n - 1, so every user keeps a training pair; half rounds up);
- pairs first seen at the same time as the user's latest training pair stay in
  training, so every held-out pair starts strictly after every training pair.

Later events of a training pair stay with it, in training.
"""

from __future__ import annotations

import numpy as np


def _codes(values: np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(values), return_inverse=True)[1].reshape(-1).astype(np.int64)


def latest_pairs(
    users: np.ndarray, items: np.ndarray, times: np.ndarray, percent: float
) -> np.ndarray:
    """Which events belong to a held-out pair; bool [E].

    Args:
        users: [E] user ids or indices (any type numpy can sort).
        items: [E] item ids or indices.
        times: [E] event times (any unit; only their order matters).
        percent: Share of each user's pairs to hold out, in [0, 100).

    Returns:
        True where the event's (user, item) pair is held out (see the module doc).

    Raises:
        ValueError: if the arrays differ in length or `percent` is out of range.
    """
    n = len(users)
    if len(items) != n or len(times) != n:
        raise ValueError(
            f"users, items and times differ in length: {n}, {len(items)}, {len(times)}"
        )
    if not 0 <= percent < 100:
        raise ValueError(f"holdout percent must be in [0, 100), got {percent}")
    if not n or not percent:
        return np.zeros(n, bool)
    user, item = _codes(users), _codes(items)
    pair_of = np.unique(user * (item.max() + 1) + item, return_inverse=True)[1].reshape(-1)
    pairs = int(pair_of.max()) + 1
    times = np.asarray(times, np.float64)
    first = np.full(pairs, np.inf)
    np.minimum.at(first, pair_of, times)
    pair_user = np.zeros(pairs, np.int64)
    pair_user[pair_of] = user
    order = np.lexsort((first, pair_user))
    sorted_user, sorted_first = pair_user[order], first[order]
    start = np.r_[0, np.flatnonzero(np.diff(sorted_user)) + 1]
    count = np.diff(np.r_[start, pairs])
    held = np.minimum(np.floor(count * percent / 100 + 0.5).astype(np.int64), count - 1)
    boundary = np.full(len(start), np.inf)
    some = held > 0
    boundary[some] = sorted_first[(start + count - held - 1)[some]]
    user_boundary = np.repeat(boundary, count)
    held_pair = np.zeros(pairs, bool)
    held_pair[order] = sorted_first > user_boundary
    return held_pair[pair_of]
