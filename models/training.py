"""Training, shared by the Trainer's `run_fn`, the Tuner and the benchmarks."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models import features as F
from models.blend import choose_retrieval_weight
from models.config import ModelConfig, TaskEvents
from models.data import (
    CATALOG_BATCH,
    SCAN_BATCH,
    EventStatistics,
    event_statistics,
    item_index_features,
    read_columns,
    read_transformed,
    with_task_events,
)
from models.inputs import TrainingInputs, training_inputs
from models.model import MultiTaskRecommender, build_model
from models.serving_state import rating_range
from models.warmstart import trained_through, vocabularies, warm_start

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
    """Returns the size of every vocabulary Transform computed, by vocabulary name."""
    names = (F.USER_VOCAB, F.ITEM_VOCAB, *F.ITEM_TOKEN_VOCABULARIES.values())
    return {name: tf_transform_output.vocabulary_size_by_name(name) for name in names}


def token_vocab_sizes(sizes: dict[str, int], transformed: dict | None = None) -> dict[str, int]:
    """Vocabulary size of each item id-list feature (see `models.layers.ItemTower`).

    Args:
        sizes: Vocabulary sizes by vocabulary name.
        transformed: The transformed feature spec; the year buckets are there only
            when the data set's `FeatureConfig.title_year` is on (None: assume so).
    """
    vocabs = {feature: sizes[vocab] for feature, vocab in F.ITEM_TOKEN_VOCABULARIES.items()}
    if transformed is None or F.YEAR_BUCKET in transformed:
        vocabs[F.YEAR_BUCKET] = F.YEAR_BUCKETS
    return vocabs


@dataclasses.dataclass(frozen=True)
class TrainingSetup:
    """What every model of one Transform output is built from.

    Attributes:
        sizes: Vocabulary sizes by vocabulary name.
        stats: Item sampling probabilities and mean rating of the training events.
        catalog: Batched transformed catalogue rows (the retrieval candidates).
        token_sizes: Vocabulary size of each item id-list feature the data has.
    """

    sizes: dict[str, int]
    stats: EventStatistics
    catalog: tf.data.Dataset
    token_sizes: dict[str, int]


def prepare(
    tf_transform_output: tft.TFTransformOutput,
    train_pattern: str | list[str],
    catalog_pattern: str | list[str],
    map_events: EventMap | None = None,
    events: TaskEvents | None = None,
) -> TrainingSetup:
    """Reads vocabulary sizes and training statistics once, for training or tuning.

    `map_events`, if given, rewrites every batch of training events first (the
    benchmarks use it to hide ratings); `events` selects the rated events the
    statistics and the bias prior count (the rating task's).
    """
    require_legacy_keras()
    sizes = vocabulary_sizes(tf_transform_output)
    logging.info("Vocabulary sizes: %s", sizes)
    scan = read_transformed(train_pattern, tf_transform_output, SCAN_BATCH)
    if map_events:
        scan = scan.map(map_events)
    scan = with_task_events(scan, dataclasses.replace(events or TaskEvents(), retrieval=()))
    stats = event_statistics(scan, sizes[F.ITEM_VOCAB], sizes[F.USER_VOCAB])
    catalog = read_transformed(catalog_pattern, tf_transform_output, CATALOG_BATCH)
    tokens = token_vocab_sizes(sizes, tf_transform_output.transformed_feature_spec())
    return TrainingSetup(sizes, stats, catalog, tokens)


def learning_rate(
    config: ModelConfig, steps: int
) -> tf.keras.optimizers.schedules.LearningRateSchedule:
    """Cosine decay from `config.learning_rate` to `final_learning_share` of it over `steps`."""
    return tf.keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=max(1, steps), alpha=config.final_learning_share
    )


def warm_settings(config: ModelConfig) -> ModelConfig:
    """`config` as a warm-started training runs it.

    At most `warm_start_epochs`, from `warm_start_learning_share` of the
    learning rate: the base model's weights need adjusting, not learning again.
    """
    return dataclasses.replace(
        config,
        epochs=config.warm_start_epochs,
        learning_rate=config.warm_start_learning_share * config.learning_rate,
    )


def new_model(
    config: ModelConfig, setup: TrainingSetup, steps: int | None = None
) -> MultiTaskRecommender:
    """Builds and compiles a fresh model for `config`.

    Args:
        config: Hyperparameters.
        setup: Vocabulary sizes, statistics and candidates.
        steps: Training steps the learning rate decays over; None keeps it constant.
    """
    num_items = setup.sizes[F.ITEM_VOCAB]
    catalogue = None
    if config.retrieval_negatives == "catalogue":
        catalogue = item_index_features(setup.catalog, num_items, sorted(setup.token_sizes))
    model = build_model(
        config,
        num_users=setup.sizes[F.USER_VOCAB],
        num_items=num_items,
        token_vocab_sizes=setup.token_sizes,
        candidates=setup.catalog,
        rating_prior=setup.stats.bias if config.rating_baseline else setup.stats.mean_rating,
        catalogue=catalogue,
    )
    rate = config.learning_rate if steps is None else learning_rate(config, steps)
    model.compile(optimizer=tf.keras.optimizers.Adam(rate))
    return model


def train(
    config: ModelConfig,
    tf_transform_output: tft.TFTransformOutput,
    train_pattern: str | list[str],
    eval_pattern: str | list[str],
    catalog_pattern: str | list[str],
    log_dir: str | None = None,
    map_events: EventMap | None = None,
    warm_start_from: str | None = None,
    track_eval: bool = False,
) -> tuple[MultiTaskRecommender, dict[str, Any]]:
    """Fits the model and returns it with its final validation metrics.

    The metrics also hold `fit_events` (per epoch), `epochs` (run) and
    `max_epochs`, `fit_seconds` (the fit phases, validation excluded),
    `trained_through` (the latest training event's time), `fit_after` (None
    when every training event was fitted), `learning_rate` (the first step's),
    `epoch_seconds`, the Keras `history`, `eval` (the evaluation split's metrics
    after training) and `warm_start` (what `models.warmstart.warm_start` did to
    each weight; empty for a cold start).

    Args:
        config: Hyperparameters.
        tf_transform_output: Transform output (vocabularies, feature spec).
        train_pattern: Transformed training events.
        eval_pattern: Transformed evaluation events, scored once after training
            (`eval` in the metrics; the pipeline's gate is the Evaluator).
        catalog_pattern: Transformed catalogue rows (retrieval candidates).
        log_dir: TensorBoard directory, if any.
        map_events: Rewrites each batch of training events (see `prepare`).
        warm_start_from: Directory of a base model's warm-start weights
            (`models.warmstart`); training then runs with `warm_settings` and,
            with `config.warm_start_new_events`, fits only the events after the
            base model's latest (its report's `trained_through`; see
            `models.inputs.training_inputs`).
        track_eval: Also score the evaluation split after every epoch
            (`eval_by_epoch` in the metrics; benchmarks).

    Early stopping (`config.early_stopping`) watches the loss on a holdout of
    the training events and keeps the best epoch's weights.
    """
    fit_after = None
    if warm_start_from and config.warm_start_new_events:
        fit_after = trained_through(warm_start_from)
    fitting = warm_settings(config) if warm_start_from else config
    setup = prepare(tf_transform_output, train_pattern, catalog_pattern, map_events, config.events)
    inputs = training_inputs(
        config,
        tf_transform_output,
        train_pattern,
        eval_pattern,
        setup.stats.item_probabilities,
        map_events,
        fit_after,
    )
    epochs = fitting.epochs
    steps = epochs * -(-inputs.fit_events // config.batch_size)
    model = new_model(fitting, setup, steps)
    build_variables(model, inputs)
    started_from = {}
    if warm_start_from:
        started_from = warm_start(model, vocabularies(tf_transform_output), warm_start_from)
    first_rate = float(model.optimizer.learning_rate.numpy())
    meter = TrainingThroughput(inputs.fit_events)
    callbacks = [meter, FailOnNonFiniteLoss()]
    if inputs.holdout is not None:
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(
                monitor="val_total_loss", patience=config.patience, restore_best_weights=True
            )
        )
    if log_dir:
        callbacks.append(tf.keras.callbacks.TensorBoard(log_dir, update_freq="epoch"))
    tracked = EvaluateEachEpoch(inputs.evaluation) if track_eval else None
    if tracked:
        callbacks.insert(1, tracked)
    history = model.fit(
        inputs.fit, validation_data=inputs.holdout, epochs=epochs, callbacks=callbacks, verbose=2
    )
    final = {k: float(v[-1]) for k, v in history.history.items()}
    final["train_examples_per_second"] = meter.examples_per_second()
    final["fit_events"] = float(inputs.fit_events)
    final["learning_rate"] = first_rate
    final["fit_after"] = inputs.fit_after
    final["trained_through"] = inputs.trained_through
    final["epochs"] = float(len(history.epoch))
    final["max_epochs"] = float(epochs)
    final["fit_seconds"] = float(sum(meter.seconds))
    final["epoch_seconds"] = [float(s) for s in meter.seconds]
    final["history"] = {k: [float(x) for x in v] for k, v in history.history.items()}
    final["eval"] = {
        k: float(v)
        for k, v in model.evaluate(inputs.evaluation, return_dict=True, verbose=0).items()
    }
    if tracked:
        final["eval_by_epoch"] = tracked.results
    final["recommend_blend"] = recommend_blend(model, config, setup, inputs, tf_transform_output)
    logging.info("Final metrics: %s", final)
    return model, {**final, "warm_start": started_from}


def recommend_blend(
    model: MultiTaskRecommender,
    config: ModelConfig,
    setup: TrainingSetup,
    inputs: TrainingInputs,
    tf_transform_output: tft.TFTransformOutput,
) -> dict | None:
    """`recommend`'s retrieval weight chosen on the holdout (`models.blend`), if it is left open.

    None when `RecommendConfig.retrieval_weight` is set or there is no holdout.
    """
    if config.recommend.retrieval_weight is not None or inputs.holdout is None:
        return None
    num_items = setup.sizes[F.ITEM_VOCAB]
    rows = read_columns(setup.catalog, (F.ITEM_IDX,))[F.ITEM_IDX].astype(np.int64)
    chosen = choose_retrieval_weight(
        model,
        inputs.holdout,
        item_index_features(setup.catalog, num_items, sorted(setup.token_sizes)),
        rows[rows < num_items],
        inputs.known,
        config.recommend.candidates,
        evaluated=config.events.evaluated_retrieval_events(),
        rating_range=rating_range(tf_transform_output.raw_metadata.schema),
        weights=config.recommend.blend_weights,
    )
    logging.info("recommend's blend on the holdout: %s", chosen)
    return chosen


def build_variables(model: MultiTaskRecommender, inputs: TrainingInputs) -> None:
    """Creates the model's and its optimizer's variables before `fit`.

    Why: a first training step that creates Adam's slots is traced twice (once
    creating variables, once without), a cost every training paid again. The
    batch is the first of an unshuffled dataset (the holdout, else the
    evaluation split), so the order `fit` draws its shuffled batches in, and
    with it the trained model, is unchanged.
    """
    for dataset in (inputs.holdout, inputs.evaluation, inputs.fit):
        batch = None if dataset is None else next(iter(dataset.take(1)), None)
        if batch is not None:
            break
    model(batch)
    model.optimizer.build(model.trainable_variables)


class FailOnNonFiniteLoss(tf.keras.callbacks.Callback):
    """Stops training with a clear error as soon as the loss is NaN or infinite.

    A diverged model would otherwise train to the end and fail later, far from
    the cause (e.g. inside the ScaNN index build).

    Raises:
        ValueError: naming the epoch, batch and loss.
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):  # noqa: D102
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):  # noqa: D102
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            raise ValueError(
                f"training diverged: loss is {loss} at epoch {self._epoch + 1}, batch "
                f"{batch + 1}; check the ratings for extreme values, or lower "
                "ModelConfig.learning_rate"
            )


class EvaluateEachEpoch(tf.keras.callbacks.Callback):
    """Scores a dataset at the end of every epoch (its metrics by epoch in `results`)."""

    def __init__(self, dataset: tf.data.Dataset):
        super().__init__()
        self.dataset, self.results = dataset, []

    def on_epoch_end(self, epoch, logs=None):  # noqa: D102
        scores = self.model.evaluate(self.dataset, return_dict=True, verbose=0)
        self.results.append({k: float(v) for k, v in scores.items()})


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
