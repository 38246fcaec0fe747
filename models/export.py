"""Serving export, in one place: raw features in, top-K items or ratings out.

`export_models` writes the brute-force model and its ScaNN twin with their
warmup requests; everything it needs (catalogue embeddings, the users' seen
items, the index) is built here from the trained model and Transform's output.

Signatures of each exported SavedModel:
    retrieve(user_id: string[B], k: int32[]) -> item_ids string[B, k'], titles
        string[B, k'], scores float[B, k'] with k' = min(k, catalogue size).
    rate(user_id: string[B], item_id: string[B]) -> rating float[B].
    serving_default = retrieve.
Unknown users map to the OOV bucket (a defined, popularity-like answer); unknown
items in `rate` use the item tower's OOV representation. When the module holds
the users' seen items, `retrieve` never returns an item the user already
interacted with in training unless fewer than k unseen items are left; those
come last with the lowest float score.

The same module is exported twice: with a brute-force index (stock TF ops) and
with a ScaNN index (needs ScaNN's custom ops at load and serve time).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from contracts import names
from contracts.layout import scann_model_dir
from models import features as F
from models.config import ModelConfig
from models.data import CATALOG_BATCH, SCAN_BATCH, read_transformed, user_item_pairs
from models.index import ScannConfig, SeenItems, build_index
from models.model import MultiTaskRecommender
from serving.client import write_warmup_requests

SCANN_SAVE_OPTIONS = tf.saved_model.SaveOptions(namespace_whitelist=["Scann"])


def as_raw_feature(values: tf.Tensor, spec) -> tf.Tensor | tf.SparseTensor:
    """Shapes a [batch] tensor the way the raw feature spec expects it.

    A `FixedLenFeature([1])` becomes [batch, 1]; a `VarLenFeature` becomes a
    [batch, 1] SparseTensor holding every value (empty strings included).
    """
    if isinstance(spec, tf.io.VarLenFeature):
        batch = tf.shape(values, out_type=tf.int64)[0]
        indices = tf.stack([tf.range(batch), tf.zeros([batch], tf.int64)], axis=1)
        return tf.SparseTensor(indices, values, dense_shape=tf.stack([batch, 1]))
    return tf.reshape(values, [-1, *spec.shape])


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


class ServingModule(tf.Module):
    """Wraps a trained model, the Transform layer, the catalogue and its index.

    Args:
        model: The trained recommender.
        tf_transform_output: Transform output whose graph is embedded.
        catalog: The catalogue's embeddings (see `CatalogEmbeddings`).
        index_kind: "brute_force" or "scann".
        default_k: Default depth of the index (requests pass k).
        scann: ScaNN parameters when `index_kind` is "scann".
        seen: Items each known user already has; None disables the filter.
    """

    def __init__(
        self,
        model: MultiTaskRecommender,
        tf_transform_output: tft.TFTransformOutput,
        catalog: CatalogEmbeddings,
        index_kind: str = "brute_force",
        default_k: int = 100,
        scann: ScannConfig | None = None,
        seen: SeenItems | None = None,
    ):
        super().__init__()
        # Only what serving needs: the retrieval task (and its metric's candidate
        # dataset) stays out of the SavedModel.
        self.user_tower = model.user_tower
        self.rating_tower = model.rating_tower
        self.tft_layer = tf_transform_output.transform_features_layer()
        self._raw_spec = tf_transform_output.raw_feature_spec()
        self.num_items = catalog.size
        self.item_ids = tf.Variable(catalog.item_ids, trainable=False, name="item_ids")
        self.titles = tf.Variable(catalog.titles, trainable=False, name="titles")
        self.item_embeddings = tf.Variable(
            catalog.embeddings, trainable=False, name="item_embeddings"
        )
        self.index = build_index(
            index_kind, catalog.embeddings[: self.num_items], k=default_k, scann=scann
        )
        self.seen = seen
        self.item_rows = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                self.item_ids, tf.range(self.num_items, dtype=tf.int64)
            ),
            default_value=self.num_items,
        )

    def _transform(self, user_id: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.tft_layer({F.USER_ID: as_raw_feature(user_id, self._raw_spec[F.USER_ID])})

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name=names.USER_ID_INPUT),
            tf.TensorSpec([], tf.int32, name=names.K_INPUT),
        ]
    )
    def retrieve(self, user_id: tf.Tensor, k: tf.Tensor) -> dict[str, tf.Tensor]:
        """Top-k catalogue items per user, best first (seen items excluded)."""
        tf.debugging.assert_positive(k, message="k must be a positive integer")
        k = tf.minimum(k, self.num_items)
        features = self._transform(user_id)
        queries = self.user_tower(features)
        if self.seen is None:
            scores, rows = self.index(queries, k=k)
        else:
            users = features[F.USER_IDX]
            fetch = tf.minimum(k + self.seen.max_count(users), self.num_items)
            scores, rows = self.index(queries, k=fetch)
            hidden = self.seen.contains(users, rows)
            scores = tf.where(hidden, tf.float32.min, scores)
            top = tf.math.top_k(scores, k=tf.minimum(k, tf.shape(scores)[1]))
            scores, rows = top.values, tf.gather(rows, top.indices, batch_dims=1)
        return {
            names.ITEM_IDS_OUTPUT: tf.gather(self.item_ids, rows),
            names.TITLES_OUTPUT: tf.gather(self.titles, rows),
            names.SCORES_OUTPUT: scores,
        }

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name=names.USER_ID_INPUT),
            tf.TensorSpec([None], tf.string, name=names.ITEM_ID_INPUT),
        ]
    )
    def rate(self, user_id: tf.Tensor, item_id: tf.Tensor) -> dict[str, tf.Tensor]:
        """Predicted rating per (user, item) pair."""
        tf.debugging.assert_equal(
            tf.shape(user_id), tf.shape(item_id), message="user_id and item_id must align"
        )
        items = tf.gather(self.item_embeddings, self.item_rows.lookup(item_id))
        rating = self.rating_tower((self.user_tower(self._transform(user_id)), items))
        return {names.RATING_OUTPUT: tf.reshape(rating, [-1])}


def export_serving_model(module: ServingModule, export_dir: str) -> None:
    """Saves `module` with the retrieve/rate/serving_default signatures.

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
        },
        options=SCANN_SAVE_OPTIONS,
    )


def seen_items(
    catalog: CatalogEmbeddings,
    tf_transform_output: tft.TFTransformOutput,
    train_pattern: str | list[str],
) -> SeenItems:
    """Maps the training events' (user, item) pairs to catalogue rows."""
    users, items = user_item_pairs(read_transformed(train_pattern, tf_transform_output, SCAN_BATCH))
    num_items = tf_transform_output.vocabulary_size_by_name(F.ITEM_VOCAB)
    row_of = np.full(num_items + F.OOV_BUCKETS, -1, np.int64)
    row_of[catalog.item_idx.numpy()] = np.arange(catalog.size)
    num_users = tf_transform_output.vocabulary_size_by_name(F.USER_VOCAB) + F.OOV_BUCKETS
    return SeenItems(users, row_of[items], num_users=num_users, num_rows=catalog.size)


def export_models(
    model: MultiTaskRecommender,
    config: ModelConfig,
    tf_transform_output: tft.TFTransformOutput,
    train_pattern: str | list[str],
    catalog_pattern: str | list[str],
    export_dir: str,
    model_name: str = "recommender",
) -> dict[str, str]:
    """Exports the brute-force serving model and its ScaNN twin, with warmup requests.

    Args:
        model: The trained recommender.
        config: Hyperparameters (top_k, exclude_seen, scann).
        tf_transform_output: Transform output embedded in the models.
        train_pattern: Transformed training events (the users' seen items).
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
    seen = seen_items(catalog, tf_transform_output, train_pattern) if config.exclude_seen else None
    users = [u.decode() for u in tf_transform_output.vocabulary_by_name(F.USER_VOCAB)[:3]]
    users.append("warmup-unknown-user")
    items = [i.decode() for i in catalog.item_ids[: len(users)].numpy()]
    dirs = {"brute_force": export_dir, "scann": scann_model_dir(export_dir)}
    for kind, directory in dirs.items():
        module = ServingModule(
            model,
            tf_transform_output,
            catalog,
            index_kind=kind,
            default_k=config.top_k,
            scann=config.scann,
            seen=seen,
        )
        export_serving_model(module, directory)
        write_warmup_requests(directory, users, items[: len(users)], model_name)
    return dirs
