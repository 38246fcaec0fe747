"""TFX Tuner entry point (`tuner_fn`): KerasTuner over loss weights and the DCN shape.

Referenced as `models.tuning.tuner_fn`. Trials are scored on a validation slice
held out of the *training* split (a seeded hash of user and item), never on the
eval split the Evaluator gates on. The objective is `val RMSE - val top-100
accuracy`: both have a fixed scale whatever the loss weights, unlike the
weighted loss. The best values reach the Trainer as `best_hyperparameters`,
which `apply_hyperparameters` folds into the `ModelConfig`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras_tuner
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from models import features as F
from models.config import DCNConfig, ModelConfig, TuningConfig
from models.data import (
    catalog_pattern,
    read_transformed,
    with_item_probability,
    with_task_events,
)
from models.training import EVAL_BATCH, TrainingSetup, new_model, prepare

TUNING_CONFIG_KEY = "tuning"
MODEL_CONFIG_KEY = "model"
"""custom_config keys of the Trainer and Tuner (the Trainer reads the model config only)."""


RMSE = "val_rmse"
TOP_100 = "val_factorized_top_k/top_100_categorical_accuracy"
OBJECTIVE = keras_tuner.Objective("rmse_minus_top_100", "min")


class RecommenderTuner(keras_tuner.RandomSearch):
    """Random search whose trials build and fit the TFRS model directly.

    KerasTuner 1.4 checks built models against Keras 3's `Model`, while TFRS
    0.7 models are tf-keras (Keras 2) models; overriding `run_trial` keeps the
    search, the oracle and the best-hyperparameters bookkeeping without that check.

    Args:
        build: Returns a compiled model for a dict of hyperparameter values.
        **kwargs: `keras_tuner.RandomSearch` arguments (no hypermodel).
    """

    def __init__(self, build: Callable[[dict[str, Any]], tf.keras.Model], **kwargs):
        super().__init__(hypermodel=None, **kwargs)
        self._build = build

    def run_trial(self, trial, x, validation_data, epochs: int = 1, verbose: int = 2, **kwargs):
        """Fits one configuration; returns the objective and its two parts."""
        model = self._build(trial.hyperparameters.values)
        history = model.fit(x, validation_data=validation_data, epochs=epochs, verbose=verbose)
        rmse, top_100 = history.history[RMSE][-1], history.history[TOP_100][-1]
        return {OBJECTIVE.name: rmse - top_100, RMSE: rmse, TOP_100: top_100}


def search_space(tuning: TuningConfig) -> keras_tuner.HyperParameters:
    """The KerasTuner hyperparameters, named as `apply_hyperparameters` reads them."""
    hp = keras_tuner.HyperParameters()
    hp.Choice("retrieval_weight", list(tuning.retrieval_weights))
    hp.Choice("rating_weight", list(tuning.rating_weights))
    hp.Choice("dcn_structure", list(tuning.dcn_structures))
    hp.Choice("dcn_num_cross_layers", list(tuning.dcn_cross_layers))
    hp.Choice("dcn_projection_dim", list(tuning.dcn_projection_dims))
    return hp


def apply_hyperparameters(config: ModelConfig, values: dict[str, Any] | None) -> ModelConfig:
    """Returns `config` with tuned values applied (None or {} leaves it unchanged).

    Raises:
        ValueError: on an unknown hyperparameter name.
    """
    if not values:
        return config
    known = {
        "retrieval_weight",
        "rating_weight",
        "dcn_structure",
        "dcn_num_cross_layers",
        "dcn_projection_dim",
    }
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown}; known: {sorted(known)}")
    dcn = config.dcn
    dcn = DCNConfig(
        structure=values.get("dcn_structure", dcn.structure),
        num_cross_layers=int(values.get("dcn_num_cross_layers", dcn.num_cross_layers)),
        projection_dim=int(values["dcn_projection_dim"]) or None
        if "dcn_projection_dim" in values
        else dcn.projection_dim,
        deep_layers=dcn.deep_layers,
    )
    return dataclasses.replace(
        config,
        retrieval_weight=float(values.get("retrieval_weight", config.retrieval_weight)),
        rating_weight=float(values.get("rating_weight", config.rating_weight)),
        dcn=dcn,
    )


def holdout(dataset: tf.data.Dataset, percent: int, keep: bool, batch_size: int) -> tf.data.Dataset:
    """Keeps (or drops) the events whose (user, item) hash falls in the first `percent`%.

    A pair-level hash, so a held-out pair never also trains (as in ExampleGen).
    """

    def in_holdout(features):
        key = (
            tf.strings.as_string(features[F.USER_IDX])
            + "|"
            + tf.strings.as_string(features[F.ITEM_IDX])
        )
        return tf.strings.to_hash_bucket_fast(key, 100) < percent

    return (
        dataset.unbatch()
        .filter(lambda f: tf.equal(in_holdout(f), keep))
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
    """Builds the KerasTuner search the TFX Tuner component runs.

    Raises:
        ValueError: if `custom_config` lacks the model or tuning config.
    """
    custom = fn_args.custom_config or {}
    missing = [k for k in (MODEL_CONFIG_KEY, TUNING_CONFIG_KEY) if k not in custom]
    if missing:
        raise ValueError(f"Tuner custom_config must hold {missing}, got {list(custom)}")
    base = ModelConfig.from_json_dict(custom[MODEL_CONFIG_KEY])
    tuning = TuningConfig.from_json_dict(custom[TUNING_CONFIG_KEY])
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    setup = prepare(
        tf_transform_output, fn_args.train_files, catalog_pattern(fn_args.train_files[0])
    )
    train, validation = tuning_datasets(
        base, tuning, tf_transform_output, fn_args.train_files, setup
    )
    tuner = RecommenderTuner(
        build=lambda values: new_model(apply_hyperparameters(base, values), setup),
        objective=OBJECTIVE,
        max_trials=tuning.max_trials,
        hyperparameters=search_space(tuning),
        seed=tuning.seed,
        directory=fn_args.working_dir,
        project_name="recommender_tuning",
    )
    return tfx.components.TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "x": train,
            "validation_data": validation,
            "epochs": tuning.epochs,
            "verbose": 2,
        },
    )


def tuning_datasets(
    config: ModelConfig,
    tuning: TuningConfig,
    tf_transform_output: tft.TFTransformOutput,
    train_pattern: str | list[str],
    setup: TrainingSetup,
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Training events split into (fit, validation) datasets by the pair hash."""
    events = read_transformed(
        train_pattern, tf_transform_output, EVAL_BATCH, config.shuffle_buffer, config.seed
    )
    fit = holdout(events, tuning.validation_percent, keep=False, batch_size=config.batch_size)
    fit = with_task_events(fit, config.retrieval_events, config.rating_events)
    fit = with_item_probability(fit, setup.stats.item_probabilities)
    validation = holdout(events, tuning.validation_percent, keep=True, batch_size=EVAL_BATCH)
    validation = with_task_events(validation, (), config.rating_events)
    return fit, validation
