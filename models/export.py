"""Serving export, in one place: the brute-force model and its ScaNN twin.

`export_models` builds everything a served model holds from the trained model
and Transform's output (catalogue embeddings, the known (user, item) pairs, the
popularity fallback, the index), saves both SavedModels with the signatures of
`models.serving_module` and writes their TF Serving warmup requests.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from contracts import names
from contracts.layout import scann_model_dir
from models import features as F
from models.config import ModelConfig
from models.data import CATALOG_BATCH, SCAN_BATCH, read_transformed
from models.index import SeenItems
from models.model import MultiTaskRecommender
from models.serving_module import ServingModule
from serving.client import write_warmup_requests

SCANN_SAVE_OPTIONS = tf.saved_model.SaveOptions(namespace_whitelist=["Scann"])


class CatalogEmbeddings:
    """The catalogue's ids, titles and item-tower embeddings, computed once per export.

    Args:
        model: The trained recommender.
        catalog: Batches of transformed catalogue features (with item_id, title).

    Attributes:
        item_ids: [N] string ids; row r of every tensor is catalogue row r.
        titles: [N] strings.
        item_idx: [N] int64 Transform item indices.
        embeddings: [N + 1, d]; the last row is the OOV item's representation.

    Raises:
        ValueError: if the catalogue is empty.
    """

    def __init__(self, model: MultiTaskRecommender, catalog: tf.data.Dataset):
        ids, titles, idx, embeddings = [], [], [], []
        for batch in catalog:
            ids.append(batch[F.ITEM_ID])
            titles.append(batch[F.TITLE])
            idx.append(batch[F.ITEM_IDX])
            embeddings.append(model.item_tower(batch))
        if not ids:
            raise ValueError("the catalogue split is empty: nothing to retrieve")
        oov = model.item_tower(model.item_tower.oov_features())
        self.item_ids = tf.concat(ids, 0)
        self.titles = tf.concat(titles, 0)
        self.item_idx = tf.concat(idx, 0)
        self.embeddings = tf.concat([*embeddings, oov], 0)

    @property
    def size(self) -> int:
        """Number of catalogue items N."""
        return int(self.item_ids.shape[0])

    def rows_of(self, item_idx: np.ndarray, num_items: int) -> np.ndarray:
        """Catalogue row of each Transform item index (-1 for items not in the catalogue)."""
        row_of = np.full(num_items + F.OOV_BUCKETS, -1, np.int64)
        row_of[self.item_idx.numpy()] = np.arange(self.size)
        return row_of[item_idx]


@dataclasses.dataclass(frozen=True)
class Interactions:
    """Every known event's user, item and whether it is a training event (aligned [E])."""

    users: np.ndarray
    items: np.ndarray
    in_train: np.ndarray

    @classmethod
    def read(
        cls,
        tf_transform_output: tft.TFTransformOutput,
        train_pattern: str | list[str],
        other_patterns: str | list[str] = (),
    ) -> Interactions:
        """Reads the (user, item) indices of the training events and of any other events."""
        parts = []
        for pattern, in_train in ((train_pattern, True), (other_patterns, False)):
            if not pattern:
                continue
            for batch in read_transformed(pattern, tf_transform_output, SCAN_BATCH):
                users, items = batch[F.USER_IDX].numpy(), batch[F.ITEM_IDX].numpy()
                parts.append((users, items, np.full(len(users), in_train)))
        if not parts:
            raise ValueError(f"no events in {train_pattern} and {other_patterns}")
        return cls(*(np.concatenate(column) for column in zip(*parts, strict=True)))


def set_unknown_user(model: MultiTaskRecommender, interactions: Interactions, num_users: int):
    """Sets the never-trained OOV user row to the activity-weighted mean user.

    No training event has an unknown user, so the OOV row is still its random
    initialisation; the mean user gives `rate` a defined, average answer.
    """
    table = model.user_tower.embedding.embeddings
    activity = np.bincount(
        interactions.users[interactions.in_train], minlength=num_users + F.OOV_BUCKETS
    )[:num_users]
    mean = (activity[:, None] * table.numpy()[:num_users]).sum(0) / max(activity.sum(), 1)
    table[num_users].assign(mean)


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
            names.RATE: module.rate.get_concrete_function(),
            names.EVALUATE: module.evaluate.get_concrete_function(),
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
    catalog = CatalogEmbeddings(
        model, read_transformed(catalog_pattern, tf_transform_output, CATALOG_BATCH)
    )
    num_users = tf_transform_output.vocabulary_size_by_name(F.USER_VOCAB)
    num_items = tf_transform_output.vocabulary_size_by_name(F.ITEM_VOCAB)
    known = Interactions.read(tf_transform_output, train_pattern, eval_pattern)
    set_unknown_user(model, known, num_users)
    rows = catalog.rows_of(known.items, num_items)
    trained = known.in_train & (rows >= 0)
    popularity = np.bincount(rows[trained], minlength=catalog.size) / max(trained.sum(), 1)
    seen = None
    if config.exclude_seen:
        seen = SeenItems(known.users, rows, known.in_train, num_users + F.OOV_BUCKETS, catalog.size)
    users = [u.decode() for u in tf_transform_output.vocabulary_by_name(F.USER_VOCAB)[:3]]
    users.append("warmup-unknown-user")
    items = [i.decode() for i in catalog.item_ids[: len(users)].numpy()]
    dirs = {"brute_force": export_dir, "scann": scann_model_dir(export_dir)}
    for kind, directory in dirs.items():
        module = ServingModule(
            model,
            tf_transform_output,
            catalog.item_ids,
            catalog.titles,
            catalog.embeddings,
            popularity,
            index_kind=kind,
            top_k=config.top_k,
            scann=config.scann,
            seen=seen,
        )
        export_serving_model(module, directory)
        write_warmup_requests(directory, users, items[: len(users)], model_name)
    return dirs
