"""The temporal holdout rule (`contracts.holdout`), on hand-worked events."""

import numpy as np
import pytest

from contracts.holdout import latest_pairs


def test_each_user_holds_out_their_latest_pairs():
    users = np.array(["a"] * 6 + ["b"] * 2)
    items = np.array(["x", "y", "z", "w", "v", "x", "x", "y"])
    times = np.array([1, 2, 3, 4, 5, 9, 1, 2])
    # a: 5 pairs, 20% -> 1: "v" (x's repeat at t=9 stays with x, in training);
    # b: 2 pairs, 20% rounds to 0.
    np.testing.assert_array_equal(latest_pairs(users, items, times, 20), [0, 0, 0, 0, 1, 0, 0, 0])
    # 40%: a holds out 2 ("w", "v"), b holds out 1 ("y").
    np.testing.assert_array_equal(latest_pairs(users, items, times, 40), [0, 0, 0, 1, 1, 0, 0, 1])


def test_a_pair_is_dated_by_its_first_event():
    # "x" is tagged at t=1 and rated at t=10: the whole pair is old, "y" is the latest.
    held = latest_pairs(np.array([0, 0, 0, 0]), np.array([7, 8, 7, 9]), np.array([1, 3, 10, 2]), 34)
    np.testing.assert_array_equal(held, [0, 1, 0, 0])


def test_ties_with_the_latest_training_pair_stay_in_training():
    users, items = np.zeros(3, np.int64), np.array([1, 2, 3])
    assert not latest_pairs(users, items, np.array([5, 5, 5]), 40).any()
    np.testing.assert_array_equal(latest_pairs(users, items, np.array([4, 5, 5]), 40), [0, 0, 0])
    np.testing.assert_array_equal(latest_pairs(users, items, np.array([4, 4, 5]), 40), [0, 0, 1])


def test_every_user_keeps_a_training_pair_and_eval_starts_after_training():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 50, 3000)
    items = rng.integers(0, 200, 3000)
    times = rng.integers(0, 500, 3000)
    held = latest_pairs(users, items, times, 30)
    assert 0.2 < held.mean() < 0.4
    for u in np.unique(users):
        mine = users == u
        train_first = {}
        for i, t, h in zip(items[mine], times[mine], held[mine], strict=True):
            if not h:
                train_first[i] = min(t, train_first.get(i, t))
        assert train_first, f"user {u} kept no training pair"
        held_items = set(items[mine & held])
        assert not held_items & set(train_first)
        if held_items:
            assert times[mine & held].min() > max(train_first.values())


@pytest.mark.parametrize("percent", [-1, 100])
def test_the_share_is_checked(percent):
    with pytest.raises(ValueError, match="holdout percent"):
        latest_pairs(np.zeros(1), np.zeros(1), np.zeros(1), percent)
