"""Serving export, in one place: the brute-force model and its ScaNN twin.

`export_models` builds everything a served model holds from the trained model
and Transform's output (catalogue embeddings, the known (user, item) pairs, the
popularity fallback, the index), saves both SavedModels with the signatures of
`models.serving_module` and writes their TF Serving warmup requests.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_metadata.proto.v0 import schema_pb2

from contracts import names
from contracts.layout import scann_gate_path, scann_model_dir
from models import features as F
from models.baselines import fit_bias_model
from models.config import ModelConfig, ScannConfig, TaskEvents
from models.data import CATALOG_BATCH, SCAN_BATCH, read_transformed
from models.history import UserHistories
from models.index import SeenItems
from models.model import MultiTaskRecommender
from models.serving_module import ServingModule
from models.serving_state import Catalogue, TrainingFacts, rating_range
from serving.client import write_warmup_requests

SCANN_SAVE_OPTIONS = tf.saved_model.SaveOptions(namespace_whitelist=["Scann"])
SCANN_GATE_USERS = 2000
"""Evaluation users ScaNN's search is tuned and gated on (half each, evenly sampled)."""


def embed_catalogue(
    model: MultiTaskRecommender, catalog: tf.data.Dataset
) -> tuple[Catalogue, np.ndarray]:
    """The catalogue's ids, titles and item-tower embeddings, and each row's item index.

    Raises:
        ValueError: if the catalogue is empty.
    """
    ids, titles, idx, embeddings = [], [], [], []
    for batch in catalog:
        ids.append(batch[F.ITEM_ID])
        titles.append(batch[F.TITLE])
        idx.append(batch[F.ITEM_IDX])
        embeddings.append(model.item_tower(batch))
    if not ids:
        raise ValueError("the catalogue split is empty: nothing to retrieve")
    oov = model.item_tower(model.item_tower.oov_features())
    item_idx = tf.concat(idx, 0)
    catalogue = Catalogue(
        tf.concat(ids, 0), tf.concat(titles, 0), tf.concat([*embeddings, oov], 0), item_idx
    )
    return catalogue, item_idx.numpy()


@dataclasses.dataclass(frozen=True)
class Interactions:
    """Every known event, aligned [E] arrays.

    Attributes:
        users: User index.
        items: Item index.
        in_train: Whether it is a training event.
        event_types: Event type (bytes).
        ratings: Rating (0 where absent).
        rated: Whether it carries a rating.
        timestamps: Event time (0 where Transform passed none).
        user_ids: Raw user id (bytes).
    """

    users: np.ndarray
    items: np.ndarray
    in_train: np.ndarray
    event_types: np.ndarray
    ratings: np.ndarray
    rated: np.ndarray
    timestamps: np.ndarray
    user_ids: np.ndarray

    @classmethod
    def read(
        cls,
        tf_transform_output: tft.TFTransformOutput,
        train_pattern: str | list[str],
        other_patterns: str | list[str] = (),
    ) -> Interactions:
        """Reads the training events and any other known events (e.g. the eval split).

        Raises:
            ValueError: if no event is found.
        """
        parts = []
        for pattern, in_train in ((train_pattern, True), (other_patterns, False)):
            if not pattern:
                continue
            for batch in read_transformed(pattern, tf_transform_output, SCAN_BATCH):
                n = int(batch[F.USER_IDX].shape[0])
                parts.append(
                    (
                        batch[F.USER_IDX].numpy(),
                        batch[F.ITEM_IDX].numpy(),
                        np.full(n, in_train),
                        batch[F.EVENT_TYPE].numpy(),
                        batch[F.RATING].numpy(),
                        batch[F.RATING_MASK].numpy() > 0,
                        batch[F.TIMESTAMP].numpy()
                        if F.TIMESTAMP in batch
                        else np.zeros(n, np.int64),
                        batch[F.USER_ID].numpy(),
                    )
                )
        if not parts:
            raise ValueError(f"no events in {train_pattern} and {other_patterns}")
        return cls(*(np.concatenate(column) for column in zip(*parts, strict=True)))


def set_unknown_user(model: MultiTaskRecommender, interactions: Interactions, num_users: int):
    """Sets the never-trained OOV user row to the activity-weighted mean user.

    Without user dropout (`ModelConfig.user_dropout`) no training event has an
    unknown user, so the OOV row is still its random initialisation; the mean
    user gives `rate` a defined, average answer. With it, the row is trained
    and kept.
    """
    table = model.user_tower.embedding.embeddings
    activity = np.bincount(
        interactions.users[interactions.in_train], minlength=num_users + F.OOV_BUCKETS
    )[:num_users]
    mean = (activity[:, None] * table.numpy()[:num_users]).sum(0) / max(activity.sum(), 1)
    table[num_users].assign(mean)


def served_seen_items(
    known: Interactions, rows: np.ndarray, num_users: int, num_rows: int
) -> SeenItems:
    """The known items a served model excludes, per user.

    Users outside the training vocabulary (new users of an evaluation span,
    or users all of whose pairs the hash put in the evaluation split) share the
    model's OOV index, so they are kept by raw id (`SeenItems.index_of`): each
    is denied what they consumed, and nobody else's.

    Args:
        known: Training and evaluation events.
        rows: [E] catalogue row of each event's item (-1 if not in the catalogue).
        num_users: User vocabulary size (the OOV index is `num_users`).
        num_rows: Catalogue size.
    """
    users = known.users.astype(np.int64)
    outside = users >= num_users
    ids, position = np.unique(known.user_ids[outside], return_inverse=True)
    users[outside] = num_users + F.OOV_BUCKETS + position.reshape(-1)
    return SeenItems(
        users, rows, known.in_train, num_users + F.OOV_BUCKETS, num_rows, outside_users=ids
    )


def training_facts(
    known: Interactions,
    rows: np.ndarray,
    events: TaskEvents,
    num_users: int,
    num_rows: int,
    schema: schema_pb2.Schema,
) -> TrainingFacts:
    """Popularity, user activity and the bias baseline of the training events.

    Args:
        known: Every known event.
        rows: [E] each event's catalogue row (-1 when the item is not in it).
        events: Which events train retrieval (popularity) and rating (biases).
        num_users: User vocabulary size (the OOV index is `num_users`).
        num_rows: Catalogue size N.
        schema: The curated schema (the rating range).
    """
    train = known.in_train
    retrieval = np.ones_like(train)
    trained_types = [e.encode() for e, w in events.retrieval if w > 0]
    if trained_types:
        retrieval = np.isin(known.event_types, trained_types)
    counted = train & retrieval & (rows >= 0)
    popularity = np.bincount(rows[counted], minlength=num_rows) / max(counted.sum(), 1)
    activity = np.bincount(known.users[train], minlength=num_users + F.OOV_BUCKETS)
    rated = train & known.rated
    if events.rating:
        rated &= np.isin(known.event_types, [e.encode() for e in events.rating])
    item_rows = np.where(rows >= 0, rows, num_rows)  # off-catalogue items: the OOV row
    bias = fit_bias_model(
        known.users[rated],
        item_rows[rated],
        known.ratings[rated],
        num_users + F.OOV_BUCKETS,
        num_rows + 1,
    )
    return TrainingFacts(popularity, activity, bias, rating_range(schema))


def export_serving_model(module: ServingModule, export_dir: str) -> None:
    """Saves `module` with every signature of `contracts.names.SIGNATURES`.

    A ScaNN module is saved with the "Scann" op namespace allowed; loading it
    needs `import scann` first.
    """
    retrieve = module.retrieve.get_concrete_function()
    tf.saved_model.save(
        module,
        export_dir,
        signatures={
            names.SERVING_DEFAULT: retrieve,
            names.RETRIEVE: retrieve,
            names.RETRIEVE_WITH_SEEN: module.retrieve_with_seen.get_concrete_function(),
            names.RATE: module.rate.get_concrete_function(),
            names.RECOMMEND: module.recommend.get_concrete_function(),
            names.EVALUATE: module.evaluate.get_concrete_function(),
            names.EVAL_FEATURES: module.eval_features.get_concrete_function(),
        },
        options=SCANN_SAVE_OPTIONS,
    )


def export_models(
    model: MultiTaskRecommender,
    config: ModelConfig,
    tf_transform_output: tft.TFTransformOutput,
    train_pattern: str | list[str],
    eval_pattern: str | list[str],
    catalog_pattern: str | list[str],
    export_dir: str,
    model_name: str = "recommender",
) -> dict[str, str]:
    """Exports the brute-force serving model and its ScaNN twin, with warmup requests.

    Args:
        model: The trained recommender (its OOV user row is set, see `set_unknown_user`).
        config: Hyperparameters (top_k, exclude_seen, scann).
        tf_transform_output: Transform output embedded in the models.
        train_pattern: Transformed training events: popularity, and the pairs
            the evaluation excludes.
        eval_pattern: Transformed evaluation events: known pairs a served
            model excludes too.
        catalog_pattern: Transformed catalogue rows.
        export_dir: Directory of the brute-force model; the ScaNN model goes to
            `contracts.layout.scann_model_dir(export_dir)`.
        model_name: Model name written into the warmup requests.

    Returns:
        The two export directories, keyed by index kind ("brute_force", "scann").
    """
    catalogue, item_idx = embed_catalogue(
        model, read_transformed(catalog_pattern, tf_transform_output, CATALOG_BATCH)
    )
    num_rows = int(catalogue.item_ids.shape[0])
    num_users = tf_transform_output.vocabulary_size_by_name(F.USER_VOCAB)
    num_items = tf_transform_output.vocabulary_size_by_name(F.ITEM_VOCAB)
    known = Interactions.read(tf_transform_output, train_pattern, eval_pattern)
    if not config.user_dropout:
        set_unknown_user(model, known, num_users)
    row_of = np.full(num_items + F.OOV_BUCKETS, -1, np.int64)
    row_of[item_idx] = np.arange(num_rows)
    rows = row_of[known.items]
    facts = training_facts(
        known, rows, config.events, num_users, num_rows, tf_transform_output.raw_metadata.schema
    )
    seen = served_seen_items(known, rows, num_users, num_rows) if config.exclude_seen else None
    users = [u.decode() for u in tf_transform_output.vocabulary_by_name(F.USER_VOCAB)[:3]]
    users.append("warmup-unknown-user")
    items = [i.decode() for i in catalogue.item_ids[: len(users)].numpy()]
    histories = None
    if config.history_length:
        train = known.in_train
        histories = UserHistories(
            known.users[train], known.items[train], known.timestamps[train], config.history_length
        )
    dirs = {"brute_force": export_dir, "scann": scann_model_dir(export_dir)}
    modules = {}
    for kind in dirs:
        modules[kind] = ServingModule(
            model,
            tf_transform_output,
            catalogue,
            facts,
            events=config.events,
            index_kind=kind,
            top_k=config.top_k,
            scann=config.scann,
            seen=seen,
            histories=histories,
            recommend=config.recommend,
        )
    vocabulary = tf_transform_output.vocabulary_by_name(F.USER_VOCAB)
    eval_users = np.unique(known.users[~known.in_train & (known.users < num_users)])
    user_ids = [vocabulary[u] for u in eval_users]
    gate = tune_scann(modules, user_ids[0::2], user_ids[1::2], config.top_k, config.scann)
    for kind, directory in dirs.items():
        export_serving_model(modules[kind], directory)
        write_warmup_requests(directory, users, items[: len(users)], model_name)
    with tf.io.gfile.GFile(scann_gate_path(export_dir), "w") as f:
        f.write(json.dumps(gate, indent=2))
    return dirs


def scann_recall(
    modules: dict[str, ServingModule], user_ids: list[bytes], k: int, max_users: int
) -> tuple[float, int]:
    """ScaNN's recall@k against the exact search on up to `max_users` users (evenly taken).

    Returns:
        (recall, users measured); NaN recall when there is no user.
    """
    chosen = user_ids[:: max(1, -(-len(user_ids) // max_users))] if user_ids else []
    overlap = []
    for start in range(0, len(chosen), 256):
        batch = tf.constant(chosen[start : start + 256])
        exact, approx = (
            modules[kind].retrieve(batch, tf.constant(k))[names.ITEM_IDS_OUTPUT].numpy()
            for kind in ("brute_force", "scann")
        )
        overlap += [len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact, strict=True)]
    return (float(np.mean(overlap)) if overlap else float("nan")), len(chosen)


def tune_scann(
    modules: dict[str, ServingModule],
    tuning_users: list[bytes],
    gate_users: list[bytes],
    k: int,
    scann: ScannConfig,
    max_users: int = SCANN_GATE_USERS,
) -> dict:
    """Widens ScaNN's search until its recall@k reaches `scann.min_recall`, then gates it.

    The breadth (`leaves_to_search`) grows by half each step, up to every leaf,
    measured on `tuning_users`; the verdict is measured on the other users
    (`gate_users`), so the gate does not grade its own tuning.

    Returns:
        The verdict written to `scann_gate.json`: recall, floor, k, users,
        leaves searched of all leaves, and whether the twin may be pushed.
    """
    index = modules["scann"].index
    if index is None:  # a small catalogue is searched exactly
        return {"recall": 1.0, "min_recall": scann.min_recall, "k": k, "users": 0, "passed": True}
    recall, _ = scann_recall(modules, tuning_users, k, max_users // 2)
    while not recall >= scann.min_recall and int(index.leaves_to_search) < index.num_leaves:
        wider = min(index.num_leaves, int(index.leaves_to_search) * 3 // 2 + 1)
        index.leaves_to_search.assign(wider)
        recall, _ = scann_recall(modules, tuning_users, k, max_users // 2)
    recall, measured = scann_recall(modules, gate_users, k, max_users // 2)
    passed = bool(recall >= scann.min_recall)
    leaves = int(index.leaves_to_search)
    logging.info(
        "ScaNN recall@%d on %d users: %.4f searching %d of %d leaves (floor %.2f)",
        k,
        measured,
        recall,
        leaves,
        index.num_leaves,
        scann.min_recall,
    )
    return {
        "recall": recall,
        "min_recall": scann.min_recall,
        "k": k,
        "users": measured,
        "leaves_to_search": leaves,
        "num_leaves": index.num_leaves,
        "passed": passed,
    }
