"""Training and export, shared by the Trainer's `run_fn` and the benchmarks."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models import features as F
from models.config import ModelConfig
from models.data import (
    EventStatistics,
    event_statistics,
    read_transformed,
    user_item_pairs,
    with_item_probability,
    with_task_events,
)
from models.export import CatalogEmbeddings, ServingModule, export_serving_model
from models.index import SeenItems
from models.model import MultiTaskRecommender, build_model
from serving.client import write_warmup_requests

CATALOG_BATCH = 2048
EVAL_BATCH = 4096
SCANN_DIR_NAME = "Format-Serving-ScaNN"
EventMap = Callable[[dict[str, tf.Tensor]], dict[str, tf.Tensor]]


def require_legacy_keras() -> None:
    """Fails fast unless tf.keras is Keras 2 (tf-keras), which TFRS 0.7 needs.

    Raises:
        RuntimeError: if TF_USE_LEGACY_KERAS=1 was not set before TensorFlow loaded.
    """
    if not tf.keras.__name__.startswith("tf_keras") and not tf.keras.__version__.startswith("2."):
        raise RuntimeError(
            f"tf.keras is Keras {tf.keras.__version__}; set TF_USE_LEGACY_KERAS=1 "
            "before TensorFlow is imported (the runners and tests do)"
        )


def vocabulary_sizes(tf_transform_output: tft.TFTransformOutput) -> dict[str, int]:
    """Returns the user, item, genre and title-token vocabulary sizes computed by Transform."""
    return {
        name: tf_transform_output.vocabulary_size_by_name(name)
        for name in (F.USER_VOCAB, F.ITEM_VOCAB, F.GENRE_VOCAB, F.TITLE_VOCAB)
    }


def token_vocab_sizes(sizes: dict[str, int]) -> dict[str, int]:
    """Vocabulary size of each item id-list feature (see `models.layers.ItemTower`)."""
    return {
        F.GENRE_IDS: sizes[F.GENRE_VOCAB],
        F.TITLE_TOKENS: sizes[F.TITLE_VOCAB],
        F.YEAR_BUCKET: F.YEAR_BUCKETS,
    }


@dataclasses.dataclass(frozen=True)
class TrainingSetup:
    """What every model of one Transform output is built from.

    Attributes:
        sizes: Vocabulary sizes by vocabulary name.
        stats: Item sampling probabilities and mean rating of the training events.
        catalog: Batched transformed catalogue rows (the retrieval candidates).
    """

    sizes: dict[str, int]
    stats: EventStatistics
    catalog: tf.data.Dataset


def prepare(
    tf_transform_output: tft.TFTransformOutput,
    train_pattern: str | list[str],
    catalog_pattern: str | list[str],
    map_events: EventMap | None = None,
) -> TrainingSetup:
    """Reads vocabulary sizes and training statistics once, for training or tuning.

    `map_events`, if given, rewrites every batch of training events first (the
    benchmarks use it to hide ratings).
    """
    require_legacy_keras()
    sizes = vocabulary_sizes(tf_transform_output)
    logging.info("Vocabulary sizes: %s", sizes)
    events = read_transformed(train_pattern, tf_transform_output, EVAL_BATCH)
    stats = event_statistics(events.map(map_events) if map_events else events, sizes[F.ITEM_VOCAB])
    catalog = read_transformed(catalog_pattern, tf_transform_output, CATALOG_BATCH)
    return TrainingSetup(sizes, stats, catalog)


def new_model(config: ModelConfig, setup: TrainingSetup) -> MultiTaskRecommender:
    """Builds and compiles a fresh model for `config`."""
    model = build_model(
        config,
        num_users=setup.sizes[F.USER_VOCAB],
        num_items=setup.sizes[F.ITEM_VOCAB],
        token_vocab_sizes=token_vocab_sizes(setup.sizes),
        candidates=setup.catalog,
        rating_prior=setup.stats.mean_rating,
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
    return model


def train(
    config: ModelConfig,
    tf_transform_output: tft.TFTransformOutput,
    train_pattern: str | list[str],
    eval_pattern: str | list[str],
    catalog_pattern: str | list[str],
    log_dir: str | None = None,
    map_events: EventMap | None = None,
) -> tuple[MultiTaskRecommender, dict[str, float]]:
    """Fits the model and returns it with its final validation metrics.

    Args:
        config: Hyperparameters.
        tf_transform_output: Transform output (vocabularies, feature spec).
        train_pattern: Transformed training events.
        eval_pattern: Transformed validation events (Keras validation only; the
            pipeline's gate is the Evaluator component).
        catalog_pattern: Transformed catalogue rows (retrieval candidates).
        log_dir: TensorBoard directory, if any.
        map_events: Rewrites each batch of training events (see `prepare`).
    """
    setup = prepare(tf_transform_output, train_pattern, catalog_pattern, map_events)
    model = new_model(config, setup)
    train_ds = read_transformed(
        train_pattern, tf_transform_output, config.batch_size, config.shuffle_buffer, config.seed
    )
    if map_events:
        train_ds = train_ds.map(map_events)
    train_ds = with_task_events(train_ds, config.retrieval_events, config.rating_events)
    train_ds = with_item_probability(train_ds, setup.stats.item_probabilities)
    eval_ds = read_transformed(eval_pattern, tf_transform_output, EVAL_BATCH)
    meter = TrainingThroughput(int(round(setup.stats.num_events)))
    callbacks = [meter]
    if log_dir:
        callbacks.append(tf.keras.callbacks.TensorBoard(log_dir, update_freq="epoch"))
    history = model.fit(
        train_ds, validation_data=eval_ds, epochs=config.epochs, callbacks=callbacks, verbose=2
    )
    final = {k: float(v[-1]) for k, v in history.history.items()}
    final["train_examples_per_second"] = meter.examples_per_second()
    logging.info("Final metrics: %s", final)
    return model, final


class TrainingThroughput(tf.keras.callbacks.Callback):
    """Training examples/s of the fit phase of each epoch (validation excluded).

    Args:
        examples_per_epoch: Events in one pass over the training data.
    """

    def __init__(self, examples_per_epoch: int):
        super().__init__()
        self.examples_per_epoch = examples_per_epoch
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):  # noqa: D102
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):  # noqa: D102
        if len(self.seconds) < self.params.get("epochs", 0):
            self.seconds.append(time.perf_counter() - self._start)

    def on_epoch_end(self, epoch, logs=None):  # noqa: D102
        if len(self.seconds) < epoch + 1:  # no validation this epoch
            self.seconds.append(time.perf_counter() - self._start)

    def examples_per_second(self) -> float:
        """Median over epochs after the first (which also traces the graph), if any."""
        steady = self.seconds[1:] or self.seconds
        return self.examples_per_epoch / float(np.median(steady)) if steady else 0.0


def scann_model_dir(serving_model_dir: str) -> str:
    """Where the ScaNN twin of a serving model lives: a sibling `Format-Serving-ScaNN`."""
    return os.path.join(os.path.dirname(serving_model_dir.rstrip("/")), SCANN_DIR_NAME)


def seen_items(
    catalog: CatalogEmbeddings,
    tf_transform_output: tft.TFTransformOutput,
    train_pattern: str | list[str],
) -> SeenItems:
    """Maps the training events' (user, item) pairs to catalogue rows."""
    users, items = user_item_pairs(read_transformed(train_pattern, tf_transform_output, EVAL_BATCH))
    num_items = tf_transform_output.vocabulary_size_by_name(F.ITEM_VOCAB)
    row_of = np.full(num_items + F.OOV_BUCKETS, -1, np.int64)
    row_of[catalog.item_idx.numpy()] = np.arange(catalog.size)
    num_users = tf_transform_output.vocabulary_size_by_name(F.USER_VOCAB) + F.OOV_BUCKETS
    return SeenItems(users, row_of[items], num_users=num_users, num_rows=catalog.size)


def export(
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
        config: Hyperparameters (serving_k, exclude_seen, scann).
        tf_transform_output: Transform output embedded in the models.
        train_pattern: Transformed training events (the users' seen items).
        catalog_pattern: Transformed catalogue rows.
        export_dir: Directory of the brute-force model; the ScaNN model goes to
            `scann_model_dir(export_dir)`.
        model_name: Model name written into the warmup requests.

    Returns:
        The two export directories, keyed "brute_force" and "scann".
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
            default_k=config.serving_k,
            scann=config.scann,
            seen=seen,
        )
        export_serving_model(module, directory)
        write_warmup_requests(directory, users, items[: len(users)], model_name)
    return dirs
