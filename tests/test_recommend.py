"""History and `recommend`: histories from earlier events only, request-time history, re-ranking."""

import os
import subprocess
import sys

import numpy as np
import pytest
import scann  # noqa: F401  (ScaNN ops)
import tensorflow as tf
from testlib import ITEM_EMB, ITEMS, KNOWN, POPULARITY, QUERIES, DotRating, users_transform

from contracts import names
from models import features as F
from models.baselines import BiasModel
from models.config import RecommendConfig
from models.export import export_serving_model
from models.history import UserHistories, event_histories, histories_before
from models.index import SeenItems
from models.layers import UserTower
from models.serving_module import ServingModule
from models.serving_state import Catalogue, TrainingFacts


def test_an_events_history_is_the_users_earlier_events_only():
    # user 0: (t3, item 11), (t5, item 10), (t5, item 12), (t9, item 13); user 1: (t1, 20), (t2, 21)
    users = np.array([0, 1, 0, 0, 1, 0])
    items = np.array([10, 20, 11, 12, 21, 13])
    times = np.array([5, 1, 3, 5, 2, 9])
    histories = event_histories(users, items, times, length=2)  # item + 1, 0 pads, newest last
    assert histories.tolist() == [
        [0, 12],  # (t5, 10): only 11 is strictly earlier; 12 at the same time is not
        [0, 0],  # user 1's first event
        [0, 0],  # user 0's first event
        [0, 12],  # (t5, 12): the tie with 10 is not history either
        [0, 21],
        [11, 13],  # (t9, 13): the last two before it, 10 then 12
    ]
    stored = UserHistories(users, items, times, length=2)
    before = stored.before(tf.constant([0, 0, 1, 7]), tf.constant([5, 100, 2, 3]))
    assert before.to_list() == [[12], [13, 14], [21], []]
    assert stored.latest(tf.constant([0])).to_list() == [[13, 14]]
    queries = histories_before(users, items, times, np.array([0, 1]), np.array([6, 2]), 3)
    assert queries.tolist() == [[12, 11, 13], [0, 0, 21]]


@pytest.fixture(scope="module")
def output():
    return users_transform(list(QUERIES))


def history_module(output, rating_scale=1.0, kind="brute_force", candidates=4, weight=0.0):
    """The small world with a query = user row + mean of the history's item embeddings.

    u1 trained on i1 (its stored history) and has i3 in eval; u2 and u3 trained on i4.
    Ratings are `rating_scale * <query, item>`; `recommend` orders by rating +
    `weight` * retrieval score.
    """
    vocab = [u.decode() for u in output.vocabulary_by_name(F.USER_VOCAB)]
    tower = UserTower(num_users=len(vocab), dim=2, num_items=4)
    tower({F.USER_IDX: tf.constant([0], tf.int64), F.HISTORY: tf.zeros([1, 1], tf.int64)})
    table = np.zeros([len(vocab) + 1, 2], np.float32)
    for user, query in QUERIES.items():
        table[vocab.index(user)] = query
    tower.embedding.embeddings.assign(table)
    tower.history_embedding.embeddings.assign(np.vstack([[0, 0], ITEM_EMB[:4], [0, 0]]))
    kernel = np.zeros([5, 2], np.float32)
    kernel[0, 0] = kernel[1, 1] = kernel[2, 0] = kernel[3, 1] = 1.0  # user + pooled history
    tower.projection.kernel.assign(kernel)
    tower.projection.bias.assign([0.0, 0.0])

    class Model(tf.Module):
        def __init__(self):
            super().__init__()
            self.user_tower = tower
            self.rating_tower = DotRating(rating_scale, 0.0)

    users = np.array([vocab.index(u) for u, _, _ in KNOWN])
    rows = np.array([r for _, r, _ in KNOWN])
    in_train = np.array([t for _, _, t in KNOWN])
    seen = SeenItems(users, rows, in_train, num_users=len(vocab) + 1, num_rows=4)
    histories = UserHistories(users[in_train], rows[in_train], np.arange(in_train.sum()), 3)
    bias = BiasModel(3.0, np.zeros(len(vocab) + 1, np.float32), np.zeros(5, np.float32))
    return ServingModule(
        Model(),
        output,
        Catalogue(
            tf.constant(ITEMS),
            tf.constant([b"T" + i for i in ITEMS]),
            tf.constant(ITEM_EMB),
            item_idx=tf.constant([0, 1, 2, 3], tf.int64),
        ),
        TrainingFacts(POPULARITY, np.zeros(len(vocab) + 1, np.int64), bias),
        index_kind=kind,
        top_k=2,
        seen=seen,
        histories=histories,
        recommend=RecommendConfig(candidates=candidates, retrieval_weight=weight),
    )


def recommend(module, users, k, recent=None, exclude=None):
    def padded(rows):
        rows = rows or [[] for _ in users]
        width = max(1, max(len(r) for r in rows))
        return tf.constant([[v.encode() for v in r] + [b""] * (width - len(r)) for r in rows])

    out = module.recommend(
        tf.constant([u.encode() for u in users]), padded(recent), padded(exclude), tf.constant(k)
    )
    return [[i.decode() for i in row] for row in out[names.ITEM_IDS_OUTPUT].numpy()], out


def test_a_new_users_recommendations_follow_the_history_given(output):
    module = history_module(output)
    # No trace of the user: the most popular items (i4 2/3, i1 1/3).
    assert recommend(module, ["new"], 2)[0] == [["i4", "i1"]]
    # Query = mean(emb(i4)) = [0, 1]: i3 (.5) is best once i4 itself is left out.
    assert recommend(module, ["new"], 1, recent=[["i4"]])[0] == [["i3"]]
    # Query = emb(i1) = [1, 0]: i2 (.8) is best once i1 is left out.
    assert recommend(module, ["new"], 1, recent=[["i1"]])[0] == [["i2"]]


def test_a_known_users_history_is_stored_plus_what_the_request_adds(output):
    module = history_module(output)
    # u1: row [1, 0] + stored history i1 [1, 0] -> [2, 0]; retrieve excludes known i1, i3.
    assert [
        i.decode()
        for i in module.retrieve(tf.constant([b"u1"]), tf.constant(2))["item_ids"].numpy()[0]
    ] == ["i2", "i4"]
    rating = module.rate(tf.constant([b"u1"]), tf.constant([b"i2"]))["rating"].numpy()[0]
    assert rating == pytest.approx(1.6)  # <[2, 0], [.8, 0]>
    # + recent i4: history mean(i1, i4) = [.5, .5] -> query [1.5, .5]; i4 is consumed now.
    items, out = recommend(module, ["u1"], 1, recent=[["i4"]])
    assert items == [["i2"]]
    assert out["rating"].numpy()[0, 0] == pytest.approx(1.2)  # <[1.5, .5], [.8, 0]>


def test_exclusions_and_known_items_never_come_back(output):
    module = history_module(output)
    items, out = recommend(module, ["u1"], 4, exclude=[["i2"]])
    assert items == [["i4", "", "", ""]]  # i1, i3 known, i2 excluded: only i4 left
    assert out["scores"].numpy()[0, 1] == np.finfo(np.float32).min
    items, _ = recommend(module, ["new"], 2, recent=[["i4"]], exclude=[["i3"]])
    assert "i3" not in items[0] and "i4" not in items[0]


def test_a_blend_left_open_and_never_chosen_is_retrieval_order(output):
    module = history_module(output, rating_scale=-1.0, weight=None)  # no holdout chose it
    assert module.recommend_config.retrieval_weight == max(RecommendConfig().blend_weights)
    retrieved = module.retrieve(tf.constant([b"u2"]), tf.constant(3))["item_ids"].numpy()[0]
    assert recommend(module, ["u2"], 3)[0][0] == [i.decode() for i in retrieved]


@pytest.mark.parametrize("kind", ["brute_force", "scann"])
def test_recommend_orders_the_candidates_by_the_rating_tower(output, kind):
    module = history_module(output, rating_scale=-1.0, kind=kind)  # ratings invert retrieval
    retrieved = module.retrieve(tf.constant([b"u2"]), tf.constant(3))["item_ids"].numpy()[0]
    items, out = recommend(module, ["u2"], 3)
    assert [i.decode() for i in retrieved] == ["i3", "i1", "i2"]  # query [0, 1] + i4
    rated = module.rate(tf.constant([b"u2"] * 3), tf.constant([i.encode() for i in items[0]]))
    ratings = rated["rating"].numpy().tolist()
    assert ratings == sorted(ratings, reverse=True)  # the rating tower's order
    assert items[0][-1] == "i3"  # best retrieved, worst rated
    np.testing.assert_allclose(out["rating"].numpy()[0], ratings)


def test_recommend_survives_a_save_and_a_fresh_process(output, tmp_path):
    for kind in ("brute_force", "scann"):
        export_serving_model(history_module(output, kind=kind), str(tmp_path / kind))
    script = (
        "import scann, tensorflow as tf, sys\n"
        "for kind in ('brute_force', 'scann'):\n"
        "    m = tf.saved_model.load(sys.argv[1] + '/' + kind)\n"
        "    out = m.signatures['recommend'](user_id=tf.constant([b'new']),"
        " recent_item_ids=tf.constant([[b'i1']]), exclude_item_ids=tf.constant([[b'']]),"
        " k=tf.constant(1))\n"
        "    print(kind, out['item_ids'].numpy()[0][0].decode())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=True,
    )
    assert result.stdout.split() == ["brute_force", "i2", "scann", "i2"]


def test_early_stopping_returns_the_best_holdout_epoch_and_never_fits_the_holdout(tmp_path):
    import testlib

    from models import training
    from models.config import ModelConfig
    from models.inputs import training_inputs

    rows = [
        testlib.event_row(
            f"u{u}", f"i{(u * 3 + k) % 9}", rating=float(1 + (u + k) % 5), timestamp=k + 1
        )
        for u in range(40)
        for k in range(5)
    ]
    transformed, output = testlib.run_transform(rows)
    path = testlib.write_transformed(transformed, output, str(tmp_path / "events.gz"))
    config = ModelConfig(
        epochs=8, batch_size=16, embedding_dim=8, shuffle_buffer=256, holdout_percent=30,
        learning_rate=0.2, patience=1, history_length=2,
    )  # fmt: skip
    probabilities = np.full(output.vocabulary_size_by_name(F.ITEM_VOCAB) + 1, 0.1, np.float32)
    inputs = training_inputs(config, output, path, path, probabilities)

    def pairs(dataset):
        return {
            (int(u), int(i))
            for b in dataset
            for u, i in zip(b[F.USER_IDX].numpy(), b[F.ITEM_IDX].numpy(), strict=True)
        }

    held = pairs(inputs.holdout)
    assert held and not held & pairs(inputs.fit.map(lambda *b: b[0]))
    assert inputs.fit_events + sum(int(tf.shape(b[F.USER_IDX])[0]) for b in inputs.holdout) == 200

    model, final = training.train(config, output, path, path, path)
    losses = final["history"]["val_total_loss"]
    best = model.evaluate(inputs.holdout, return_dict=True, verbose=0)["total_loss"]
    # The best epoch's weights are what training returns: its holdout loss is no worse
    # than the best epoch's (5% slack: Keras' epoch-end figure and a fresh evaluate differ).
    assert best <= min(losses) * 1.05
    if final["epochs"] < config.epochs:  # stopped: the last epoch was worse, and is gone
        assert losses[-1] > min(losses) and best < losses[-1]


def test_users_outside_the_vocabulary_keep_their_own_known_items():
    from models.export import Interactions, served_seen_items

    # Users 0 and 1 are in the vocabulary (size 2); index 2 is the OOV user, to whom
    # every evaluation event of a user absent from training maps: here "c" and "d".
    users = np.array([0, 0, 1, 2, 2, 2])
    known = Interactions(
        users=users,
        items=np.array([10, 11, 10, 12, 13, 12]),
        in_train=np.array([True, False, True, False, False, False]),
        event_types=np.array([b"watch"] * 6, dtype=object),
        ratings=np.zeros(6),
        rated=np.zeros(6, bool),
        timestamps=np.arange(6),
        user_ids=np.array([b"a", b"a", b"b", b"d", b"d", b"c"], dtype=object),
    )
    seen = served_seen_items(known, np.array([0, 1, 0, 2, 3, 2]), num_users=2, num_rows=4)
    oov = tf.constant([2, 2, 2, 0], tf.int64)
    index = seen.index_of(oov, tf.constant([b"c", b"d", b"new", b"a"])).numpy().tolist()
    assert index == [3, 4, 2, 0]  # c, d past the OOV index; an unknown id stays OOV
    assert seen.count(tf.constant([0, 1, 2, 3, 4], tf.int64)).numpy().tolist() == [2, 1, 0, 1, 2]
    rows = tf.constant([[0, 1, 2, 3]] * 3, tf.int64)
    found = seen.contains(tf.constant([2, 3, 4], tf.int64), rows).numpy().tolist()
    assert found == [[False] * 4, [False, False, True, False], [False, False, True, True]]


def _dynamic_rank3_tensors(concrete) -> list[str]:
    """Tensors of the graph with 3+ dimensions all unknown until a request (B x K x X)."""
    out = []
    for op in concrete.graph.get_operations():
        for tensor in op.outputs:
            shape = tensor.shape
            if shape.rank is not None and shape.rank >= 3:
                if sum(d is None for d in shape.as_list()) >= 3:
                    out.append(f"{op.type} {tensor.name} {shape}")
    return out


@pytest.mark.parametrize("kind", ["brute_force", "scann"])
def test_request_memory_is_linear_in_batch_times_candidates_and_exclusions(output, kind):
    """No tensor of `recommend` or `retrieve` is batch x candidates x exclusions: an
    exclusion is found by a sorted search per request, and a cold user's popular list
    is only as deep as it must be."""
    module = history_module(output, kind=kind)
    for signature in (module.recommend, module.retrieve):
        assert _dynamic_rank3_tensors(signature.get_concrete_function()) == []


def test_excluded_rows_are_found_by_a_sorted_search():
    from models.search import row_in

    rows = tf.constant([[3, 0, 7], [1, 2, 5]], tf.int64)
    given = tf.constant([[7, -1, 3], [-1, -1, -1]], tf.int64)
    np.testing.assert_array_equal(row_in(rows, given).numpy(), [[1, 0, 1], [0, 0, 0]])
    empty = tf.zeros([2, 0], tf.int64)
    assert not row_in(rows, empty).numpy().any()
    # A large request: 64 queries x 5,000 candidates x 2,000 exclusions would be 640M
    # booleans as a broadcast; the sorted search holds 64 x 7,000 values.
    many = tf.random.uniform([64, 2000], 0, 10_000, tf.int64, seed=1)
    candidates = tf.tile(tf.range(5000, dtype=tf.int64)[None, :], [64, 1])
    found = row_in(candidates, many).numpy()
    expected = np.array([np.isin(np.arange(5000), m) for m in many.numpy()])
    np.testing.assert_array_equal(found, expected)
