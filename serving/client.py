"""TF Serving client: builds PredictRequests for `retrieve`, `rate`, `recommend`, parses responses.

The same request builders write the models' warmup records
(`assets.extra/tf_serving_warmup_requests`), and `predict_in_process` answers a
request with a loaded SavedModel exactly as TF Serving's Predict API would
(request tensors in, response tensors out), which is how the tests exercise the
client without a TF Serving binary.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from contracts import names

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_K = np.iinfo(np.int32).max
"""`k` is an int32 scalar in the signature; the model caps it at the catalogue size."""


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """One retrieved item.

    Attributes:
        item_id: Catalogue id.
        title: Catalogue title.
        score: Retrieval score (higher is better).
    """

    item_id: str
    title: str
    score: float


def _strings(name: str, values: Sequence[str]) -> np.ndarray:
    if isinstance(values, (str, bytes)) or not len(values):
        raise ValueError(f"{name} must be a non-empty list of strings, got {values!r}")
    bad = [v for v in values if not isinstance(v, str)]
    if bad:
        raise ValueError(f"{name} must hold strings, got {bad[:3]!r}")
    return np.array([v.encode() for v in values], dtype=object)


def _request(model_name: str, signature: str, inputs: dict) -> predict_pb2.PredictRequest:
    if not model_name:
        raise ValueError("model_name must be set")
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
    )
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def _depth(k: Any) -> int:
    """`k` as an int in [1, MAX_K]: Python and numpy integers, never a bool or a float.

    Raises:
        ValueError: naming the value.
    """
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral) or not 0 < k <= MAX_K:
        raise ValueError(f"k must be an int in [1, {MAX_K}], got {k!r}")
    return int(k)


def retrieve_request(
    user_ids: Sequence[str],
    k: int,
    model_name: str,
    signature: str = names.RETRIEVE,
    exclude_seen: bool = True,
) -> predict_pb2.PredictRequest:
    """Builds a request for the top-k items of each user.

    `exclude_seen=False` asks `retrieve_with_seen`, which keeps the items the
    user is known to have interacted with.

    Raises:
        ValueError: on an empty or non-string `user_ids`, or a `k` that is not a
            positive int32 (the signature's type: a larger k would wrap around).
    """
    k = _depth(k)
    users = _strings("user_ids", user_ids)
    signature = signature if exclude_seen else names.RETRIEVE_WITH_SEEN
    return _request(model_name, signature, {names.USER_ID_INPUT: users, names.K_INPUT: np.int32(k)})


def rate_request(
    user_ids: Sequence[str], item_ids: Sequence[str], model_name: str
) -> predict_pb2.PredictRequest:
    """Builds a request for the predicted rating of each (user, item) pair.

    Raises:
        ValueError: on empty, non-string or misaligned ids.
    """
    users, items = _strings("user_ids", user_ids), _strings("item_ids", item_ids)
    if len(users) != len(items):
        raise ValueError(f"user_ids ({len(users)}) and item_ids ({len(items)}) must align")
    return _request(
        model_name, names.RATE, {names.USER_ID_INPUT: users, names.ITEM_ID_INPUT: items}
    )


def _padded(name: str, rows: Sequence[Sequence[str]] | None, batch: int) -> np.ndarray:
    """[B, n] string ids ("" pads) of per-user lists; [B, 0] when `rows` is None."""
    rows = [[] for _ in range(batch)] if rows is None else [list(r) for r in rows]
    if len(rows) != batch:
        raise ValueError(f"{name} must give one list per user ({batch}), got {len(rows)}")
    bad = [v for r in rows for v in r if not isinstance(v, str)]
    if bad:
        raise ValueError(f"{name} must hold strings, got {bad[:3]!r}")
    width = max((len(r) for r in rows), default=0)
    return np.array(
        [[v.encode() for v in r] + [b""] * (width - len(r)) for r in rows], dtype=object
    ).reshape(batch, width)


def recommend_request(
    user_ids: Sequence[str],
    k: int,
    model_name: str,
    recent_item_ids: Sequence[Sequence[str]] | None = None,
    exclude_item_ids: Sequence[Sequence[str]] | None = None,
) -> predict_pb2.PredictRequest:
    """Builds a request for each user's top-k re-ranked items.

    Args:
        user_ids: The users (an unknown or new user is fine).
        k: Items per user.
        model_name: The served model's name.
        recent_item_ids: Per user, items consumed since training, oldest first:
            they join the user's history and are not recommended.
        exclude_item_ids: Per user, items never to recommend.

    Raises:
        ValueError: on empty or non-string ids, lists not one per user, or a bad k.
    """
    k = _depth(k)
    users = _strings("user_ids", user_ids)
    inputs = {
        names.USER_ID_INPUT: users,
        names.RECENT_ITEMS_INPUT: _padded("recent_item_ids", recent_item_ids, len(users)),
        names.EXCLUDE_ITEMS_INPUT: _padded("exclude_item_ids", exclude_item_ids, len(users)),
        names.K_INPUT: np.int32(k),
    }
    return _request(model_name, names.RECOMMEND, inputs)


@dataclasses.dataclass(frozen=True)
class Ranked:
    """One recommended item, re-ranked.

    Attributes:
        item_id: Catalogue id.
        title: Catalogue title.
        score: The re-ranking score (predicted rating, plus the blended retrieval score).
        rating: Predicted rating.
        retrieval_score: Retrieval score (the index's).
    """

    item_id: str
    title: str
    score: float
    rating: float
    retrieval_score: float


def parse_recommend_response(response: predict_pb2.PredictResponse) -> list[list[Ranked]]:
    """Returns, per requested user, the re-ranked items best first (empty slots dropped).

    Raises:
        ValueError: if an output is missing.
    """
    columns = [
        _output(response, n)
        for n in (
            names.ITEM_IDS_OUTPUT,
            names.TITLES_OUTPUT,
            names.SCORES_OUTPUT,
            names.RATING_OUTPUT,
            names.RETRIEVAL_SCORES_OUTPUT,
        )
    ]
    return [
        [
            Ranked(i.decode(), t.decode(), float(s), float(r), float(q))
            for i, t, s, r, q in zip(*row, strict=True)
            if i
        ]
        for row in zip(*columns, strict=True)
    ]


def _output(response: predict_pb2.PredictResponse, name: str) -> np.ndarray:
    if name not in response.outputs:
        raise ValueError(f"response has no {name!r} output; it has {sorted(response.outputs)}")
    return tf.make_ndarray(response.outputs[name])


def parse_retrieve_response(response: predict_pb2.PredictResponse) -> list[list[Recommendation]]:
    """Returns, per requested user, the recommendations best first.

    Raises:
        ValueError: if an output is missing.
    """
    ids, titles = _output(response, names.ITEM_IDS_OUTPUT), _output(response, names.TITLES_OUTPUT)
    scores = _output(response, names.SCORES_OUTPUT)
    return [
        [Recommendation(i.decode(), t.decode(), float(s)) for i, t, s in zip(*row, strict=True)]
        for row in zip(ids, titles, scores, strict=True)
    ]


def parse_rate_response(response: predict_pb2.PredictResponse) -> np.ndarray:
    """Returns the predicted ratings, float32 [B].

    Raises:
        ValueError: if the output is missing.
    """
    return _output(response, names.RATING_OUTPUT)


def predict_in_process(
    loaded: tf.Module, request: predict_pb2.PredictRequest
) -> predict_pb2.PredictResponse:
    """Answers `request` with a loaded SavedModel the way TF Serving's Predict does.

    Raises:
        ValueError: if the signature does not exist.
    """
    name = request.model_spec.signature_name or names.SERVING_DEFAULT
    if name not in loaded.signatures:
        raise ValueError(f"no signature {name!r}; the model has {sorted(loaded.signatures)}")
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    outputs = loaded.signatures[name](**inputs)
    response = predict_pb2.PredictResponse(model_spec=request.model_spec)
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
    return response


def write_warmup_requests(
    export_dir: str, user_ids: Sequence[str], item_ids: Sequence[str], model_name: str
) -> str:
    """Writes PredictionLog warmup records for both signatures into a SavedModel.

    TF Serving replays them when it loads the version, so the first real
    request does not pay for graph initialisation.

    Returns:
        The path of the warmup file.
    """
    path = os.path.join(export_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    requests = [
        retrieve_request(user_ids[:1], 10, model_name),
        retrieve_request(user_ids, 100, model_name),
        rate_request(user_ids, item_ids, model_name),
        recommend_request(user_ids, 10, model_name, [list(item_ids[:2])] * len(user_ids)),
    ]
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(export_dir: str) -> list[predict_pb2.PredictRequest]:
    """Parses a SavedModel's warmup records back into PredictRequests."""
    path = os.path.join(export_dir, WARMUP_FILE)
    requests = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        requests.append(log.predict_log.request)
    return requests
