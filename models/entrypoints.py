"""TFX entry points, referenced by dotted path: `models.entrypoints.<fn>`.

Each is a thin adapter from TFX's arguments to the shared code; this is the
only module of `models` that knows how TFX hands data over (FnArgs, the order
of the eval splits).
"""

from __future__ import annotations

import dataclasses
import logging
import os

import keras_tuner
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from contracts.layout import warmstart_dir
from contracts.names import (
    FEATURES_CONFIG_KEY,
    MODEL_CONFIG_KEY,
    TRAINER_EVAL_SPLITS,
    TUNING_CONFIG_KEY,
)
from models import export, preprocessing, training, tuning, warmstart
from models.config import FeatureConfig, ModelConfig, TuningConfig


def preprocessing_fn(
    inputs: dict[str, tf.Tensor | tf.SparseTensor], custom_config: dict | None = None
) -> dict[str, tf.Tensor]:
    """Transform's entry point: see `models.preprocessing.transform_features`.

    `custom_config` (Transform's) may hold the `FeatureConfig` under `FEATURES_CONFIG_KEY`.
    """
    features = (custom_config or {}).get(FEATURES_CONFIG_KEY)
    return preprocessing.transform_features(
        inputs, FeatureConfig.from_json_dict(features) if features is not None else None
    )


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trainer's entry point: trains, then exports the brute-force model and its ScaNN twin.

    With a base model (the last blessed one) and `ModelConfig.warm_start`, the
    model starts from the base model's weights (`models.warmstart`) and, with
    `ModelConfig.warm_start_new_events`, fits only the events after the base
    model's; a base model without weights (older, or its files gone) is a
    cold start, logged.

    Raises:
        ValueError: if `custom_config` lacks the model config, or the eval
            splits are not `contracts.names.TRAINER_EVAL_SPLITS`.
    """
    config = tuning.apply_hyperparameters(
        ModelConfig.from_json_dict(_custom(fn_args, MODEL_CONFIG_KEY)[MODEL_CONFIG_KEY]),
        _tuned_values(fn_args.hyperparameters),
    )
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    eval_files, catalog_files = eval_and_catalog_files(fn_args.eval_files)
    base = warm_start_source(fn_args.base_model, config.warm_start)
    model, metrics = training.train(
        config,
        tf_transform_output,
        fn_args.train_files,
        eval_files,
        catalog_files,
        log_dir=fn_args.model_run_dir,
        warm_start_from=base,
    )
    blend = metrics["recommend_blend"] or {}
    config = dataclasses.replace(
        config, recommend=config.recommend.chosen(blend.get("retrieval_weight"))
    )
    export.export_models(
        model,
        config,
        tf_transform_output,
        fn_args.train_files,
        eval_files,
        catalog_files,
        fn_args.serving_model_dir,
    )
    directory = warmstart_dir(fn_args.serving_model_dir)
    warmstart.save(model, warmstart.vocabularies(tf_transform_output), directory)
    warmstart.write_report(directory, base, metrics)


def warm_start_source(base_model: str | None, enabled: bool) -> str | None:
    """The base model's warm-start weights directory, or None for a cold start."""
    if not base_model or not enabled:
        return None
    directory = warmstart_dir(base_model)
    if not tf.io.gfile.exists(os.path.join(directory, warmstart.WEIGHTS_FILE)):
        logging.warning("Cold start: the base model %s has no weights at %s", base_model, directory)
        return None
    return directory


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
    """Tuner's entry point: a random search scored on a holdout of the train split.

    Raises:
        ValueError: if `custom_config` lacks the model or tuning config.
    """
    custom = _custom(fn_args, MODEL_CONFIG_KEY, TUNING_CONFIG_KEY)
    base = ModelConfig.from_json_dict(custom[MODEL_CONFIG_KEY])
    search = TuningConfig.from_json_dict(custom[TUNING_CONFIG_KEY])
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    _, catalog_files = eval_and_catalog_files(fn_args.eval_files)
    setup = training.prepare(
        tf_transform_output, fn_args.train_files, catalog_files, events=base.events
    )
    fit, validation = tuning.tuning_datasets(
        base, search, tf_transform_output, fn_args.train_files, setup
    )
    return tfx.components.TunerFnResult(
        tuner=tuning.build_tuner(base, search, setup, fn_args.working_dir),
        fit_kwargs={"x": fit, "validation_data": validation, "epochs": search.epochs, "verbose": 2},
    )


def eval_and_catalog_files(eval_files: list[str]) -> tuple[list[str], list[str]]:
    """Splits `FnArgs.eval_files` into (eval events, catalogue rows).

    TFX lists the eval splits' file patterns split by split, one per Examples
    artifact, in the order of `EvalArgs.splits` (`TRAINER_EVAL_SPLITS`).

    Raises:
        ValueError: if the patterns cannot be one per split and artifact.
    """
    per_split, rest = divmod(len(eval_files), len(TRAINER_EVAL_SPLITS))
    if rest or not per_split:
        raise ValueError(
            f"expected eval files for the splits {TRAINER_EVAL_SPLITS} (EvalArgs), got {eval_files}"
        )
    return list(eval_files[:per_split]), list(eval_files[per_split:])


def _custom(fn_args: tfx.components.FnArgs, *keys: str) -> dict:
    custom = fn_args.custom_config or {}
    missing = [k for k in keys if k not in custom]
    if missing:
        raise ValueError(f"custom_config must hold {missing}, got {sorted(custom)}")
    return custom


def _tuned_values(hyperparameters: dict | None) -> dict | None:
    """The Tuner's best_hyperparameters (a KerasTuner config), if the Tuner is wired."""
    return (
        keras_tuner.HyperParameters.from_config(hyperparameters).values if hyperparameters else None
    )
