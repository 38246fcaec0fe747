"""TFX Trainer entry point (`run_fn`), referenced as `models.trainer.run_fn`."""

from __future__ import annotations

import keras_tuner
import tensorflow_transform as tft
from tfx import v1 as tfx

from models import training
from models.config import ModelConfig
from models.data import catalog_pattern
from models.tuning import MODEL_CONFIG_KEY, apply_hyperparameters


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains the recommender; writes the brute-force serving model and its ScaNN twin.

    Raises:
        ValueError: if `custom_config` lacks the model config.
    """
    custom = fn_args.custom_config or {}
    if MODEL_CONFIG_KEY not in custom:
        raise ValueError(
            f"Trainer custom_config must hold {MODEL_CONFIG_KEY!r}, got {list(custom)}"
        )
    tuned = fn_args.hyperparameters  # the Tuner's best_hyperparameters, if wired
    config = apply_hyperparameters(
        ModelConfig.from_json_dict(custom[MODEL_CONFIG_KEY]),
        keras_tuner.HyperParameters.from_config(tuned).values if tuned else None,
    )
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    catalog = catalog_pattern(fn_args.train_files[0])
    model, _ = training.train(
        config,
        tf_transform_output,
        fn_args.train_files,
        fn_args.eval_files,
        catalog,
        log_dir=fn_args.model_run_dir,
    )
    training.export(
        model,
        config,
        tf_transform_output,
        fn_args.train_files,
        catalog,
        fn_args.serving_model_dir,
    )
