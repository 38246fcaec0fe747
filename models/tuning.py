"""KerasTuner search over loss weights and the DCN shape, for the TFX Tuner.

Trials are scored on a validation slice held out of the *training* split (the
pair hash of `contracts.hashing`, as in ExampleGen), never on the eval split the
Evaluator gates on. The objective is `val RMSE - val top-K accuracy`: both have a
fixed scale whatever the loss weights, unlike the weighted loss. The best values
reach the Trainer as `best_hyperparameters`, which `apply_hyperparameters` folds
into the `ModelConfig`. The entry point is `models.entrypoints.tuner_fn`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras_tuner
import tensorflow as tf
import tensorflow_transform as tft

from contracts.names import top_k_metric
from models.config import ModelConfig, TuningConfig
from models.inputs import training_inputs
from models.training import TrainingSetup, new_model

RMSE = "val_rmse"
OBJECTIVE = keras_tuner.Objective("rmse_minus_top_k", "min")


def _set_dcn(config: ModelConfig, **changes) -> ModelConfig:
    return dataclasses.replace(config, dcn=dataclasses.replace(config.dcn, **changes))


HYPERPARAMETERS: dict[
    str, tuple[Callable[[TuningConfig], tuple], Callable[[ModelConfig, Any], ModelConfig]]
] = {
    "retrieval_weight": (
        lambda t: t.retrieval_weights,
        lambda c, v: dataclasses.replace(c, retrieval_weight=float(v)),
    ),
    "rating_weight": (
        lambda t: t.rating_weights,
        lambda c, v: dataclasses.replace(c, rating_weight=float(v)),
    ),
    "dcn_structure": (lambda t: t.dcn_structures, lambda c, v: _set_dcn(c, structure=v)),
    "dcn_num_cross_layers": (
        lambda t: t.dcn_cross_layers,
        lambda c, v: _set_dcn(c, num_cross_layers=int(v)),
    ),
    "dcn_projection_dim": (
        lambda t: t.dcn_projection_dims,
        lambda c, v: _set_dcn(c, projection_dim=int(v) or None),
    ),
    "embedding_dim": (
        lambda t: t.embedding_dims,
        lambda c, v: dataclasses.replace(c, embedding_dim=int(v)),
    ),
    "learning_rate": (
        lambda t: t.learning_rates,
        lambda c, v: dataclasses.replace(c, learning_rate=float(v)),
    ),
    "history_length": (
        lambda t: t.history_lengths,
        lambda c, v: dataclasses.replace(c, history_length=int(v)),
    ),
    "history_decay": (
        lambda t: t.history_decays,
        lambda c, v: dataclasses.replace(c, history_decay=float(v)),
    ),
    "rate_from_history": (
        lambda t: t.rate_from_history,
        lambda c, v: dataclasses.replace(c, rate_from_history=bool(v)),
    ),
}
"""Each tuned hyperparameter: its candidates in a `TuningConfig`, and how a value
is applied to a `ModelConfig` (a projection dim of 0 means full rank)."""


class RecommenderTuner(keras_tuner.RandomSearch):
    """Random search whose trials build and fit the TFRS model directly.

    KerasTuner 1.4 checks built models against Keras 3's `Model`, while TFRS
    0.7 models are tf-keras (Keras 2) models; overriding `run_trial` keeps the
    search, the oracle and the best-hyperparameters bookkeeping without that check.

    Args:
        build: Returns a compiled model for a dict of hyperparameter values.
        top_k: The K of the objective's top-K accuracy.
        **kwargs: `keras_tuner.RandomSearch` arguments (no hypermodel).
    """

    def __init__(self, build: Callable[[dict[str, Any]], tf.keras.Model], top_k: int, **kwargs):
        super().__init__(hypermodel=None, **kwargs)
        self._build = build
        self.top_k_metric = top_k_metric(top_k, prefix="val_")

    def run_trial(self, trial, x, validation_data, epochs: int = 1, verbose: int = 2, **kwargs):
        """Fits one configuration; returns the objective and its two parts."""
        model = self._build(trial.hyperparameters.values)
        history = model.fit(x, validation_data=validation_data, epochs=epochs, verbose=verbose)
        rmse, top_k = history.history[RMSE][-1], history.history[self.top_k_metric][-1]
        return {OBJECTIVE.name: rmse - top_k, RMSE: rmse, self.top_k_metric: top_k}


def search_space(tuning: TuningConfig) -> keras_tuner.HyperParameters:
    """The KerasTuner hyperparameters, named as `apply_hyperparameters` reads them."""
    hp = keras_tuner.HyperParameters()
    for name, (candidates, _) in HYPERPARAMETERS.items():
        hp.Choice(name, list(candidates(tuning)))
    return hp


def apply_hyperparameters(config: ModelConfig, values: dict[str, Any] | None) -> ModelConfig:
    """Returns `config` with tuned values applied (None or {} leaves it unchanged).

    Raises:
        ValueError: on an unknown hyperparameter name, or a value the config rejects.
    """
    if not values:
        return config
    unknown = sorted(set(values) - set(HYPERPARAMETERS))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown}; known: {sorted(HYPERPARAMETERS)}")
    for name, value in values.items():
        config = HYPERPARAMETERS[name][1](config, value)
    return config


def build_tuner(
    base: ModelConfig,
    tuning: TuningConfig,
    setup: TrainingSetup,
    directory: str,
) -> RecommenderTuner:
    """The random search over `tuning`'s space around `base`, models built from `setup`."""
    return RecommenderTuner(
        build=lambda values: new_model(apply_hyperparameters(base, values), setup),
        top_k=base.top_k,
        objective=OBJECTIVE,
        max_trials=tuning.max_trials,
        hyperparameters=search_space(tuning),
        seed=tuning.seed,
        directory=directory,
        project_name="recommender_tuning",
    )


def tuning_datasets(
    config: ModelConfig,
    tuning: TuningConfig,
    tf_transform_output: tft.TFTransformOutput,
    train_pattern: str | list[str],
    setup: TrainingSetup,
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Training events split into (fit, validation) datasets by the pair hash.

    The Trainer's own inputs (`models.inputs`, histories included), with the
    holdout sized by `tuning.validation_percent`: trials never see the eval split.
    """
    inputs = training_inputs(
        dataclasses.replace(
            config, early_stopping=True, holdout_percent=tuning.validation_percent, seed=tuning.seed
        ),
        tf_transform_output,
        train_pattern,
        train_pattern,
        setup.stats.item_probabilities,
    )
    return inputs.fit, inputs.holdout
