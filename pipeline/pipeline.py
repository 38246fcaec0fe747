"""The recommender pipeline, identical for every runner."""

from __future__ import annotations

import os

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.components.base.base_component import BaseComponent

from components.anomalies_gate import AnomaliesGate
from components.multilog_example_gen.component import MultiLogExampleGen
from components.recommender_evaluator.component import RecommenderEvaluator
from components.recommender_pusher.component import RecommenderPusher
from contracts.names import (
    CATALOG,
    EVAL,
    MODEL_CONFIG_KEY,
    TRAIN,
    TRAINER_EVAL_SPLITS,
    TUNING_CONFIG_KEY,
)
from pipeline.config import PipelineConfig

PREPROCESSING_FN = "models.entrypoints.preprocessing_fn"
RUN_FN = "models.entrypoints.run_fn"
TUNER_FN = "models.entrypoints.tuner_fn"


def create_pipeline(
    config: PipelineConfig,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
) -> tfx.dsl.Pipeline:
    """Builds the pipeline: ingest, validate, transform, train, evaluate, push.

    Args:
        config: What to run and with which settings.
        metadata_connection_config: ML Metadata store; None lets the orchestrator
            provide it (Kubeflow / Vertex).

    Returns:
        The TFX pipeline.
    """
    example_gen = MultiLogExampleGen(input_base=config.data_root, ingest=config.ingest)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=config.schema_path)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    anomalies_gate = AnomaliesGate(
        anomalies=example_validator.outputs["anomalies"], schema_path=config.schema_path
    )
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        splits_config=tfx.proto.SplitsConfig(
            analyze=[TRAIN, CATALOG], transform=[TRAIN, EVAL, CATALOG]
        ),
    )
    transform.add_upstream_node(anomalies_gate)
    tuner = _tuner(config, transform) if config.tuning is not None else None
    trainer = _trainer(
        config,
        run_fn=RUN_FN,
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=[TRAIN]),
        eval_args=tfx.proto.EvalArgs(splits=list(TRAINER_EVAL_SPLITS)),
    )
    baseline_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    evaluator = RecommenderEvaluator(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"],
        gate=config.gate,
        k=config.model.top_k,
        served_model_dir=""
        if config.vertex is not None and config.vertex.serving
        else os.path.join(config.serving_root, config.model_name),
    )
    pusher = _pusher(
        config, model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"]
    )
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[
            example_gen,
            statistics_gen,
            schema_gen,
            example_validator,
            anomalies_gate,
            transform,
            *([tuner] if tuner else []),
            trainer,
            baseline_resolver,
            evaluator,
            pusher,
        ],
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_pipeline_args),
    )


def _vertex_training(config: PipelineConfig) -> bool:
    return config.vertex is not None and config.vertex.training


def _vertex_keys(config: PipelineConfig) -> dict:
    """custom_config entries every Vertex AI extension component needs."""
    cloud = tfx.extensions.google_cloud_ai_platform
    return {cloud.ENABLE_VERTEX_KEY: True, cloud.VERTEX_REGION_KEY: config.vertex.region}


def _tuner(config: PipelineConfig, transform: BaseComponent) -> BaseComponent:
    """KerasTuner over loss weights and DCN shape, on a slice of the train split only."""
    custom_config = {
        MODEL_CONFIG_KEY: config.model.to_json_dict(),
        TUNING_CONFIG_KEY: config.tuning.to_json_dict(),
    }
    kwargs = dict(
        tuner_fn=TUNER_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        train_args=tfx.proto.TrainArgs(splits=[TRAIN]),
        eval_args=tfx.proto.EvalArgs(splits=list(TRAINER_EVAL_SPLITS)),
    )
    if not _vertex_training(config):
        return tfx.components.Tuner(custom_config=custom_config, **kwargs)
    cloud = tfx.extensions.google_cloud_ai_platform
    custom_config.update(
        {
            **_vertex_keys(config),
            cloud.experimental.TUNING_ARGS_KEY: config.vertex.training_job_spec(),
            cloud.experimental.REMOTE_TRIALS_WORKING_DIR_KEY: os.path.join(
                config.pipeline_root, "tuning_trials"
            ),
        }
    )
    return cloud.Tuner(
        custom_config=custom_config, tune_args=tfx.proto.TuneArgs(num_parallel_trials=2), **kwargs
    )


def _trainer(config: PipelineConfig, **kwargs) -> tfx.components.Trainer:
    """The Trainer, in the orchestrator's worker or as a Vertex AI Training job."""
    custom_config = {MODEL_CONFIG_KEY: config.model.to_json_dict()}
    if not _vertex_training(config):
        return tfx.components.Trainer(custom_config=custom_config, **kwargs)
    cloud = tfx.extensions.google_cloud_ai_platform
    custom_config.update(
        {
            **_vertex_keys(config),
            cloud.TRAINING_ARGS_KEY: config.vertex.training_job_spec(),
        }
    )
    return cloud.Trainer(custom_config=custom_config, **kwargs)


def _pusher(config: PipelineConfig, **kwargs) -> BaseComponent:
    """Versioned, atomic push of both models, or deployment to a Vertex AI endpoint."""
    if config.vertex is None or not config.vertex.serving:
        return RecommenderPusher(
            serving_root=config.serving_root, model_name=config.model_name, **kwargs
        )
    cloud = tfx.extensions.google_cloud_ai_platform
    vertex = config.vertex
    return cloud.Pusher(
        custom_config={
            **_vertex_keys(config),
            cloud.VERTEX_CONTAINER_IMAGE_URI_KEY: vertex.serving_image_uri,
            cloud.SERVING_ARGS_KEY: {
                "project_id": vertex.project,
                "endpoint_name": vertex.endpoint_name,
                "machine_type": vertex.serving_machine_type,
            },
        },
        **kwargs,
    )
