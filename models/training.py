"""Training and export, shared by the Trainer's `run_fn` and the benchmarks."""

from __future__ import annotations

import logging

import tensorflow as tf
import tensorflow_transform as tft

from models import features as F
from models.config import ModelConfig
from models.data import event_statistics, read_transformed, with_item_probability
from models.export import ServingModule, export_serving_model
from models.model import MultiTaskRecommender, build_model

CATALOG_BATCH = 2048
EVAL_BATCH = 4096


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
    """Returns the user, item and genre vocabulary sizes computed by Transform."""
    return {
        name: tf_transform_output.vocabulary_size_by_name(name)
        for name in (F.USER_VOCAB, F.ITEM_VOCAB, F.GENRE_VOCAB)
    }


def train(
    config: ModelConfig,
    tf_transform_output: tft.TFTransformOutput,
    train_pattern: str | list[str],
    eval_pattern: str | list[str],
    catalog_pattern: str | list[str],
    log_dir: str | None = None,
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
    """
    require_legacy_keras()
    sizes = vocabulary_sizes(tf_transform_output)
    logging.info("Vocabulary sizes: %s", sizes)
    stats = event_statistics(
        read_transformed(train_pattern, tf_transform_output, EVAL_BATCH), sizes[F.ITEM_VOCAB]
    )
    catalog = read_transformed(catalog_pattern, tf_transform_output, CATALOG_BATCH)
    model = build_model(
        config,
        num_users=sizes[F.USER_VOCAB],
        num_items=sizes[F.ITEM_VOCAB],
        num_genres=sizes[F.GENRE_VOCAB],
        candidates=catalog,
        rating_prior=stats.mean_rating,
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
    train_ds = read_transformed(
        train_pattern, tf_transform_output, config.batch_size, config.shuffle_buffer, config.seed
    )
    train_ds = with_item_probability(train_ds, stats.item_probabilities)
    eval_ds = read_transformed(eval_pattern, tf_transform_output, EVAL_BATCH)
    callbacks = [tf.keras.callbacks.TensorBoard(log_dir, update_freq="epoch")] if log_dir else []
    history = model.fit(
        train_ds, validation_data=eval_ds, epochs=config.epochs, callbacks=callbacks, verbose=2
    )
    final = {k: float(v[-1]) for k, v in history.history.items()}
    logging.info("Final metrics: %s", final)
    return model, final


def export(
    model: MultiTaskRecommender,
    config: ModelConfig,
    tf_transform_output: tft.TFTransformOutput,
    catalog_pattern: str | list[str],
    export_dir: str,
) -> None:
    """Exports the serving SavedModel (see models.export) to `export_dir`."""
    catalog = read_transformed(catalog_pattern, tf_transform_output, CATALOG_BATCH)
    module = ServingModule(model, tf_transform_output, catalog, default_k=config.serving_k)
    export_serving_model(module, export_dir)
