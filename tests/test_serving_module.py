"""The served module on hand-built embeddings: exclusions, unknown users, ranks, ScaNN depth."""

import numpy as np
import pytest
import scann  # noqa: F401  (ScaNN ops for the ScaNN index)
import tensorflow as tf
from testlib import (
    BIAS_MEAN,
    I1_BIAS,
    QUERIES,
    U1_BIAS,
    HandBuiltModel,
    example,
    small_world_module,
    users_transform,
)

from contracts import names
from models import features as F
from models.baselines import BiasModel
from models.config import ScannConfig, TaskEvents
from models.export import Interactions, scann_recall, set_unknown_user, tune_scann
from models.index import SeenItems
from models.layers import UserTower
from models.serving_module import ServingModule
from models.serving_state import Catalogue, TrainingFacts


@pytest.fixture(scope="module")
def output():
    return users_transform(list(QUERIES))


def module_for(output, kind="brute_force", seen=True, **kwargs):
    return small_world_module(output, kind, seen, **kwargs)


def ids(out):
    return [[i.decode() for i in row] for row in out[names.ITEM_IDS_OUTPUT].numpy()]


@pytest.mark.parametrize("kind", ["brute_force", "scann"])
def test_retrieve_excludes_every_known_item_and_answers_unknown_users(output, kind):
    module = module_for(output, kind)
    out = module.retrieve(tf.constant([" u1 ", "u2", "stranger"]), tf.constant(2))
    # u1 knows i1 (train) and i3 (eval); u2 knows i4; strangers get the most popular.
    assert ids(out) == [["i2", "i4"], ["i3", "i1"], ["i4", "i1"]]
    np.testing.assert_allclose(out[names.SCORES_OUTPUT].numpy()[2], [2 / 3, 1 / 3], rtol=1e-6)
    everything = module.retrieve(tf.constant(["u1"]), tf.constant(10))
    assert ids(everything) == [["i2", "i4", "i1", "i3"]]  # known items last
    assert everything[names.SCORES_OUTPUT].numpy()[0, 2] == np.finfo(np.float32).min
    empty = module.retrieve(tf.constant([], tf.string), tf.constant(2))
    assert empty[names.ITEM_IDS_OUTPUT].shape[0] == 0


@pytest.mark.parametrize("kind", ["brute_force", "scann"])
def test_a_user_outside_the_vocabulary_never_gets_their_known_items(output, kind):
    # e1 is known from an evaluation event on i4 only: outside the vocabulary, it gets
    # the popular list (i4 i1 i2 i3) without i4; a stranger and e2 are not denied i4.
    module = module_for(output, kind, outside={"e1": [3], "e2": [0]})
    out = module.retrieve(tf.constant(["e1", "stranger", "e2"]), tf.constant(2))
    assert ids(out) == [["i1", "i2"], ["i4", "i1"], ["i4", "i2"]]
    rec = module.recommend(
        tf.constant(["e1", "stranger"]),
        tf.constant([[""], [""]]),
        tf.constant([[""], [""]]),
        tf.constant(3),
    )
    assert [sorted(r) for r in ids(rec)] == [["i1", "i2", "i3"], ["i1", "i2", "i4"]]
    # Its ratings and biases are the unknown user's.
    rates = module.rate(tf.constant(["e1", "stranger"]), tf.constant(["i1", "i1"]))
    first, second = rates[names.RATING_OUTPUT].numpy()
    assert first == second


def test_a_request_can_keep_known_items(output):
    module = module_for(output)
    kept = module.retrieve_with_seen(tf.constant(["u1", "stranger"]), tf.constant(2))
    assert ids(kept) == [["i1", "i2"], ["i4", "i1"]]  # u1's training item i1 comes first


def test_without_seen_items_nothing_is_excluded(output):
    module = module_for(output, seen=False)
    assert ids(module.retrieve(tf.constant(["u1"]), tf.constant(2))) == [["i1", "i2"]]


@pytest.mark.parametrize("kind", ["brute_force", "scann"])
def test_evaluate_ranks_items_with_training_pairs_excluded(output, kind):
    module = module_for(output, kind)
    events = [
        ("u1", "i3"),  # i1 (train) excluded: i2 above -> 2; with seen: i1, i2 above -> 3
        ("u1", "i1"),  # a training item: never retrievable -> 5; with seen -> 1
        ("u2", "i3"),  # i4 (train) excluded -> 1; with seen -> 2
        ("stranger", "i1"),  # popularity order i4, i1 -> 2
        ("u1", "no-such-item"),  # not in the catalogue -> 5
        ("u3", "i2"),  # i4, i3, i1 above; i4 is a training item -> 3; with seen 4
    ]
    out = module.evaluate(tf.constant([example(u, i) for u, i in events]))
    assert out[names.RANK_OUTPUT].numpy().tolist() == [2, 5, 1, 2, 5, 3]
    assert out[names.RANK_WITH_SEEN_OUTPUT].numpy().tolist() == [3, 1, 2, 2, 5, 4]
    # Most popular unseen (i4, i1, i2, i3 by popularity; training items excluded):
    # u1 (trained i1): i4, i2, i3 -> i3 is 3rd; u1/i1 is a training item -> 5;
    # u2 (trained i4): i1, i2, i3 -> 3rd; the stranger: i1 is 2nd; u3 (trained i4): i2 2nd.
    assert out[names.POPULAR_RANK_OUTPUT].numpy().tolist() == [3, 5, 3, 2, 5, 2]
    # rating = <u, i>: u1·i3 = .5, u1·i1 = 1, u2·i3 = .5, u3·i2 = .16.
    np.testing.assert_allclose(
        out[names.RATING_OUTPUT].numpy()[[0, 1, 2, 5]], [0.5, 1.0, 0.5, 0.16], rtol=1e-6
    )
    # Bias baseline: 3 + 0.5 for u1 + 0.25 for i1.
    b, u1, i1 = BIAS_MEAN, U1_BIAS, I1_BIAS
    np.testing.assert_allclose(
        out[names.BIAS_RATING_OUTPUT].numpy(),
        [b + u1, b + u1 + i1, b, b + i1, b + u1, b],
        rtol=1e-6,
    )


def test_evaluate_says_which_events_count_for_which_task(output):
    module = module_for(output, events=TaskEvents(rating=("watch",), retrieval_eval=("tag",)))
    events = [
        example("u1", "i3", "watch", 4.0),  # rated watch: rating task
        example("u1", "i2", "watch"),  # unrated watch: neither
        example("u2", "i1", "tag"),  # tag: retrieval task
        example("u2", "i1", "tag", 2.0),  # rated tag: retrieval only (ratings are watch)
    ]
    out = module.evaluate(tf.constant(events))
    assert out[names.RATING_WEIGHT_OUTPUT].numpy().tolist() == [1.0, 0.0, 0.0, 0.0]
    assert out[names.RETRIEVAL_WEIGHT_OUTPUT].numpy().tolist() == [0.0, 0.0, 1.0, 1.0]
    assert out[names.RATING_LABEL_OUTPUT].numpy().tolist() == [4.0, 0.0, 0.0, 2.0]
    every = module_for(output)
    out = every.evaluate(tf.constant(events))  # no selection: all events
    assert out[names.RATING_WEIGHT_OUTPUT].numpy().tolist() == [1.0, 0.0, 0.0, 1.0]
    assert out[names.RETRIEVAL_WEIGHT_OUTPUT].numpy().tolist() == [1.0, 1.0, 1.0, 1.0]


def test_eval_features_slice_users_and_items(output):
    module = module_for(output)
    out = module.eval_features(
        tf.constant([example("u1", "i4"), example("stranger", "i2"), example("u2", "zzz")])
    )
    decoded = {k: [v.decode() for v in t.numpy()] for k, t in out.items()}
    # u1 has 1 training event; i4 is the most popular of 4 items (head: top ceil(1%) = 1).
    assert decoded[names.USER_ACTIVITY_SLICE] == ["1-4", "new", "1-4"]
    assert decoded[names.ITEM_POPULARITY_SLICE] == ["head", "cold", "not_in_catalogue"]
    assert decoded[names.USER_KNOWN_SLICE] == ["known", "new", "known"]
    assert decoded[names.ITEM_KNOWN_SLICE] == ["known", "new", "new"]


def test_ratings_are_clipped_to_the_schema_range(output):
    module = module_for(output, rating_range=(0.75, 0.9))
    out = module.rate(tf.constant(["u1", "u1", "u2"]), tf.constant(["i1", "i3", "i2"]))
    np.testing.assert_allclose(out[names.RATING_OUTPUT].numpy(), [0.9, 0.75, 0.75], rtol=1e-6)


def test_rate_normalises_ids_and_uses_the_oov_item(output):
    module = module_for(output)
    out = module.rate(tf.constant(["u1", "u1 ", "u2"]), tf.constant(["i1", " i3", "nope"]))
    np.testing.assert_allclose(out[names.RATING_OUTPUT].numpy(), [1.0, 0.5, 0.0], rtol=1e-6)


def test_unknown_user_row_is_the_activity_weighted_mean(output):
    tower = UserTower(num_users=3, dim=2)
    tower.embedding.build(None)
    tower.embedding.embeddings.assign([[1.0, 0.0], [0.0, 1.0], [3.0, 3.0], [9.0, 9.0]])

    class Model:
        user_tower = tower

    # Training events: user 0 three times, user 1 once; user 2 only in eval.
    known = Interactions(
        users=np.array([0, 0, 0, 1, 2]),
        items=np.zeros(5, np.int64),
        in_train=np.array([True, True, True, True, False]),
        event_types=np.array([b"watch"] * 5),
        ratings=np.zeros(5),
        rated=np.zeros(5, bool),
        timestamps=np.zeros(5, np.int64),
        user_ids=np.array([b"a", b"a", b"a", b"b", b"c"], dtype=object),
    )
    set_unknown_user(Model, known, num_users=3)
    np.testing.assert_allclose(tower.embedding.embeddings.numpy()[3], [0.75, 0.25])


@pytest.fixture(scope="module")
def large():
    """3,000 items, 40 users; user 0 knows 2,500 items, the others 0 to 39."""
    rng = np.random.default_rng(0)
    factors = rng.normal(size=(8, 16))
    items = (rng.normal(size=(3000, 8)) @ factors + 0.3 * rng.normal(size=(3000, 16))).astype(
        np.float32
    )
    queries = (rng.normal(size=(40, 8)) @ factors).astype(np.float32)
    users = [f"user{u}" for u in range(40)]
    output = users_transform(users)
    vocab = [u.decode() for u in output.vocabulary_by_name(F.USER_VOCAB)]
    table = np.zeros([len(vocab) + 1, 16], np.float32)
    for u, user in enumerate(users):
        table[vocab.index(user)] = queries[u]
    pairs = [(0, r) for r in rng.choice(3000, 2500, replace=False)]
    pairs += [(u, r) for u in range(1, 40) for r in rng.choice(3000, u, replace=False)]
    seen = SeenItems(
        np.array([vocab.index(users[u]) for u, _ in pairs]),
        np.array([r for _, r in pairs]),
        np.ones(len(pairs), bool),
        num_users=len(vocab) + 1,
        num_rows=3000,
    )
    known = {users[u]: set() for u in range(40)}
    for u, r in pairs:
        known[users[u]].add(f"i{r}")
    item_ids = tf.constant([f"i{r}" for r in range(3000)])
    embeddings = tf.constant(np.vstack([items, np.zeros([1, 16], np.float32)]))
    modules = {
        kind: ServingModule(
            HandBuiltModel(table),
            output,
            Catalogue(item_ids, item_ids, embeddings),
            TrainingFacts(
                np.full(3000, 1 / 3000),
                np.zeros(len(vocab) + 1, np.int64),
                BiasModel(3.0, np.zeros(len(vocab) + 1, np.float32), np.zeros(3001, np.float32)),
            ),
            index_kind=kind,
            top_k=100,
            scann=ScannConfig(num_reordering_candidates=500),
            seen=seen,
        )
        for kind in ("brute_force", "scann")
    }
    return modules, users, known


def assert_same_ranking(ids_a, scores_a, ids_b, scores_b):
    np.testing.assert_allclose(scores_a, scores_b, rtol=1e-5, atol=1e-4)
    tied = np.isclose(scores_a[1:], scores_a[:-1], rtol=1e-5, atol=1e-4)
    for i, (a, b) in enumerate(zip(ids_a, ids_b, strict=True)):
        near_tie = (i > 0 and tied[i - 1]) or (i < len(tied) and tied[i])
        assert a == b or near_tie, (i, a, b, scores_a[i], scores_b[i])
    assert len(set(ids_a) ^ set(ids_b)) <= 2 * int(tied[-1:].sum())  # only a tie at the cut


@pytest.mark.parametrize("k", [100, 450, 600, 2900])
def test_scann_lists_stay_right_at_any_depth(large, k):
    modules, users, known = large
    batch = modules["scann"].retrieve(tf.constant(users), tf.constant(k))
    exact = modules["brute_force"].retrieve(tf.constant(users), tf.constant(k))
    scores = batch[names.SCORES_OUTPUT].numpy()
    assert scores.shape == (40, k) and np.isfinite(scores).all()
    for row, user in enumerate(users):
        got = ids(batch)[row]
        assert len(set(got)) == k  # no duplicated item
        unseen = min(k, 3000 - len(known[user]))
        assert not set(got[:unseen]) & known[user]  # known items only once nothing else is left
        alone = modules["scann"].retrieve(tf.constant([user]), tf.constant(k))
        # The same answer whoever else is in the batch (up to float ties: a batched
        # matmul may round a score a few ulps off a single query's).
        assert_same_ranking(ids(alone)[0], alone[names.SCORES_OUTPUT].numpy()[0], got, scores[row])
        if len(known[user]) + k > 500:  # deeper than ScaNN's reordering: answered exactly
            assert got == ids(exact)[row]
    recall = np.mean(
        [len(set(a) & set(b)) / k for a, b in zip(ids(batch), ids(exact), strict=True)]
    )
    assert recall >= 0.9


def test_scann_search_is_widened_until_it_reaches_the_recall_floor(large):
    modules, users, _ = large
    index = modules["scann"].index
    index.leaves_to_search.assign(1)  # a deliberately narrow search
    ids = [u.encode() for u in users]
    gate = tune_scann(modules, ids[0::2], ids[1::2], k=100, scann=ScannConfig(min_recall=0.95))
    assert gate["passed"] and gate["recall"] >= 0.95 and gate["users"] == 20
    assert 1 < gate["leaves_to_search"] <= gate["num_leaves"]
    recall, _ = scann_recall(modules, ids[1::2], 100, 100)
    assert recall == gate["recall"]
    unmeasured = tune_scann(modules, [], [], k=100, scann=ScannConfig())  # no evaluation user
    assert not unmeasured["passed"] and np.isnan(unmeasured["recall"])  # fails closed
