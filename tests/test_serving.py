"""Retrieval indexes, the seen-item filter and the TF Serving client, on tiny inputs."""

import numpy as np
import pytest
import scann  # noqa: F401  (registers ScaNN ops for the reload)
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from models.config import ScannConfig
from models.export import SCANN_SAVE_OPTIONS
from models.index import SeenItems, build_index
from serving import client


def test_seen_items_membership_counts_and_training_rows():
    # user 0 knows rows 1, 3 (3 twice: once in training) and 4 (eval only); user 2 knows
    # row 0; row -1 is off-catalogue.
    seen = SeenItems(
        np.array([0, 0, 0, 0, 2, 2]),
        np.array([1, 3, 3, 4, 0, -1]),
        np.array([True, False, True, False, True, True]),
        num_users=4,
        num_rows=5,
    )
    users = tf.constant([0, 1, 2], tf.int64)
    rows = tf.constant([[1, 4], [1, 3], [0, 4]])
    assert seen.contains(users, rows).numpy().tolist() == [
        [True, True],
        [False, False],
        [True, False],
    ]
    assert seen.contains(users, rows, train_only=True).numpy().tolist() == [
        [True, False],
        [False, False],
        [True, False],
    ]
    assert seen.count(tf.constant([0, 1, 2, 3, 9], tf.int64)).numpy().tolist() == [3, 0, 1, 0, 0]
    train = seen.train_rows(tf.constant([0, 1, 2], tf.int64))
    assert train.to_list() == [[1, 3], [], [0]]


def test_seen_items_rejects_misaligned_arrays():
    with pytest.raises(ValueError, match="must align"):
        SeenItems(np.array([0, 1]), np.array([0]), np.array([True]), num_users=2, num_rows=2)


@pytest.mark.parametrize(
    "n, leaves, search, reorder",
    [(100, 2, 2, 100), (10_000, 100, 32, 1000), (1_000_000, 1000, 127, 1000)],
)
def test_scann_defaults_scale_with_the_catalogue(n, leaves, search, reorder):
    assert ScannConfig().resolved(n, k=100) == {
        "num_leaves": leaves,
        "num_leaves_to_search": search,
        "num_reordering_candidates": reorder,
    }


def test_scann_config_rejects_bad_values():
    with pytest.raises(ValueError, match="num_leaves must be positive"):
        ScannConfig(num_leaves=0)
    with pytest.raises(ValueError, match="exceeds num_leaves 10"):
        ScannConfig(num_leaves=10, num_leaves_to_search=20).resolved(1000, 10)
    with pytest.raises(ValueError, match="index kind"):
        build_index("annoy", tf.zeros([3, 2]), k=1)


@pytest.fixture(scope="module")
def catalogue():
    """Low-rank embeddings plus noise, shaped like a trained tower's output."""
    rng = np.random.default_rng(0)
    factors = rng.normal(size=(8, 16))

    def embed(n):
        return tf.constant(
            (rng.normal(size=(n, 8)) @ factors + 0.3 * rng.normal(size=(n, 16))).astype(np.float32)
        )

    return embed(3000), embed(50)


def test_scann_agrees_with_brute_force_and_is_deterministic(catalogue):
    items, queries = catalogue
    _, exact = build_index("brute_force", items, k=100)(queries, k=100)
    scann_a = build_index("scann", items, k=100)(queries, k=100)[1].numpy()
    scann_b = build_index("scann", items, k=100)(queries, k=100)[1].numpy()
    recall = np.mean(
        [len(set(a) & set(e)) / 100 for a, e in zip(scann_a, exact.numpy(), strict=True)]
    )
    assert recall >= 0.9
    np.testing.assert_array_equal(scann_a, scann_b)


def test_scann_returns_more_than_its_reordering_depth(catalogue):
    items, queries = catalogue
    index = build_index("scann", items, k=10, scann=ScannConfig(num_reordering_candidates=50))
    assert index(queries, k=200)[1].shape == (50, 200)


def test_scann_index_survives_save_and_reload(catalogue, tmp_path):
    items, queries = catalogue
    module = tf.Module()
    module.index = build_index("scann", items, k=10)
    module.search = tf.function(
        lambda q: module.index(q, k=10)[1], input_signature=[tf.TensorSpec([None, 16])]
    )
    expected = module.search(queries).numpy()
    tf.saved_model.save(module, str(tmp_path), options=SCANN_SAVE_OPTIONS)
    loaded = tf.saved_model.load(str(tmp_path))
    np.testing.assert_array_equal(loaded.search(queries), expected)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: client.retrieve_request([], 10, "m"), "non-empty list of strings"),
        (lambda: client.retrieve_request("42", 10, "m"), "non-empty list of strings"),
        (lambda: client.retrieve_request([42], 10, "m"), "must hold strings"),
        (lambda: client.retrieve_request(["1"], 0, "m"), r"k must be an int in \[1, 2147483647\]"),
        (lambda: client.retrieve_request(["1"], 2.5, "m"), "k must be an int"),
        (lambda: client.retrieve_request(["1"], 2**32 + 5, "m"), "got 4294967301"),
        (lambda: client.retrieve_request(["1"], 2**31, "m"), "got 2147483648"),
        (lambda: client.retrieve_request(["1"], 10, ""), "model_name"),
        (lambda: client.rate_request(["1", "2"], ["3"], "m"), r"user_ids \(2\) and item_ids \(1\)"),
    ],
)
def test_malformed_requests_fail_clearly(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_numpy_integers_are_a_depth_and_booleans_are_not():
    request = client.retrieve_request(["7"], np.int64(3), "m")
    assert tf.make_ndarray(request.inputs["k"]) == 3
    with pytest.raises(ValueError, match="k must be an int"):
        client.retrieve_request(["7"], np.bool_(True), "m")


def test_requests_and_responses_round_trip():
    request = client.retrieve_request(["7", "8"], 3, "recommender")
    assert request.model_spec.signature_name == "retrieve"
    assert tf.make_ndarray(request.inputs["user_id"]).tolist() == [b"7", b"8"]
    assert int(tf.make_ndarray(request.inputs["k"])) == 3
    assert client.retrieve_request(["7"], 3, "m", exclude_seen=False).model_spec.signature_name == (
        "retrieve_with_seen"
    )
    largest = client.retrieve_request(["7"], 2**31 - 1, "recommender")
    assert int(tf.make_ndarray(largest.inputs["k"])) == 2**31 - 1
    response = predict_pb2.PredictResponse()
    response.outputs["item_ids"].CopyFrom(tf.make_tensor_proto([[b"a", b"b"]]))
    response.outputs["titles"].CopyFrom(tf.make_tensor_proto([[b"A", b"B"]]))
    response.outputs["scores"].CopyFrom(tf.make_tensor_proto(np.array([[2.0, 1.0]], np.float32)))
    assert client.parse_retrieve_response(response) == [
        [client.Recommendation("a", "A", 2.0), client.Recommendation("b", "B", 1.0)]
    ]
    with pytest.raises(ValueError, match="no 'rating' output"):
        client.parse_rate_response(response)


def test_warmup_records_parse_back(tmp_path):
    path = client.write_warmup_requests(str(tmp_path), ["1", "x"], ["10", "20"], "recommender")
    assert path.endswith("assets.extra/tf_serving_warmup_requests")
    requests = client.read_warmup_requests(str(tmp_path))
    names = [r.model_spec.signature_name for r in requests]
    assert names == ["retrieve", "retrieve", "rate", "recommend"]
    assert tf.make_ndarray(requests[2].inputs["item_id"]).tolist() == [b"10", b"20"]
    recent = tf.make_ndarray(requests[3].inputs["recent_item_ids"])
    assert recent.tolist() == [[b"10", b"20"], [b"10", b"20"]]
    assert tf.make_ndarray(requests[3].inputs["exclude_item_ids"]).shape == (2, 0)


def test_recommend_requests_pad_the_lists_and_check_them():
    request = client.recommend_request(["a", "b"], 5, "m", recent_item_ids=[["1"], ["2", "3"]])
    recent = tf.make_ndarray(request.inputs["recent_item_ids"]).tolist()
    assert recent == [[b"1", b""], [b"2", b"3"]]
    assert tf.make_ndarray(request.inputs["k"]) == 5
    with pytest.raises(ValueError, match="one list per user"):
        client.recommend_request(["a", "b"], 5, "m", exclude_item_ids=[["1"]])
    with pytest.raises(ValueError, match="must hold strings"):
        client.recommend_request(["a"], 5, "m", recent_item_ids=[[1]])
    with pytest.raises(ValueError, match="k must be"):
        client.recommend_request(["a"], 0, "m")
