"""The recommender pipeline, identical for every runner."""

from __future__ import annotations

import os

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.components.base.base_component import BaseComponent
from tfx.dsl.components.base.base_node import BaseNode
from tfx.dsl.input_resolution import canned_resolver_functions
from tfx.proto import range_config_pb2
from tfx.types import standard_artifacts

from components.anomalies_gate import AnomaliesGate, SpanGate
from components.multilog_example_gen.component import MultiLogExampleGen
from components.recommender_evaluator.component import RecommenderEvaluator
from components.recommender_pusher.component import RecommenderPusher
from components.span_validator.component import SpanExampleValidator
from components.temporal_window.component import TemporalWindow
from contracts.names import (
    CATALOG,
    CODE_VERSION_KEY,
    EVAL,
    FEATURES_CONFIG_KEY,
    MODEL_CONFIG_KEY,
    TRAIN,
    TRAINER_EVAL_SPLITS,
    TUNING_CONFIG_KEY,
)
from pipeline.config import PipelineConfig
from pipeline.warm_start import PreviousWindowModelStrategy

SPAN_VERSION_ORDER = ("mlmd_artifact.create_time_since_epoch", "id")
"""Of several artifacts of one span (a re-ingested span), the newest wins."""
RANGE_CONFIG_PARAMETER = "range_config"
"""Runtime parameter of a compiled spec pinning the span ExampleGen ingests ("" = newest)."""
RECENT_STATISTICS = 8
"""Latest statistics the drift check looks among for the previous span's."""
PREPROCESSING_FN = "models.entrypoints.preprocessing_fn"
RUN_FN = "models.entrypoints.run_fn"
TUNER_FN = "models.entrypoints.tuner_fn"


def create_pipeline(
    config: PipelineConfig,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
) -> tfx.dsl.Pipeline:
    """Builds the pipeline: ingest, validate, transform, train, evaluate, push.

    A snapshot of logs is split by the pair hash. Time-partitioned logs
    (`IngestSpec.spans`) are ingested a span per run and validated against the
    schema and the previous span (drift); the rolling window of validated
    spans (TFX span-range resolution) trains, the newest span evaluates, and the
    Trainer warm-starts from the last blessed model. With `window_from_logs`
    (the Kubeflow spec) ExampleGen reads the whole window every run, drift is
    the newest span's against the window's earlier spans, and the warm start's
    base is the latest blessed model.

    Args:
        config: What to run and with which settings.
        metadata_connection_config: ML Metadata store; None lets the orchestrator
            provide it (Kubeflow / Vertex).

    Returns:
        The TFX pipeline.
    """
    by_span = config.ingest.spans is not None and not config.window_from_logs
    spans = config.ingest.spans if by_span else None
    example_gen = MultiLogExampleGen(
        input_base=config.data_root,
        ingest=config.ingest,
        range_config=_range(config),
        read_window=config.window_from_logs,
        code_version=config.code_version,
    )
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=config.schema_path)
    statistics = statistics_gen.outputs["statistics"]
    schema = schema_gen.outputs["schema"]
    examples = example_gen.outputs["examples"]
    if spans is None:
        gate_args = {}  # a snapshot's gate keeps its default (blocking) exec properties
        if config.window_from_logs:
            example_validator = SpanExampleValidator(
                statistics=statistics, schema=schema, split_baselines={EVAL: TRAIN}
            ).with_id("ExampleValidator")
            gate_args["drift_blocks"] = int(config.ingest.spans.drift_blocks)
        else:
            example_validator = tfx.components.ExampleValidator(
                statistics=statistics, schema=schema
            )
        gate = AnomaliesGate(
            anomalies=example_validator.outputs["anomalies"],
            schema_path=config.schema_path,
            **gate_args,
        )
    else:
        example_validator = SpanExampleValidator(
            statistics=statistics,
            schema=schema,
            baseline_statistics=canned_resolver_functions.latest_created(
                _every_run(standard_artifacts.ExampleStatistics, statistics_gen, "statistics"),
                n=RECENT_STATISTICS,
            ),
        ).with_id("ExampleValidator")
        gate = SpanGate(
            examples=examples,
            anomalies=example_validator.outputs["anomalies"],
            schema_path=config.schema_path,
            drift_blocks=int(spans.drift_blocks),
        )
    ingestion = [example_gen, statistics_gen, schema_gen, example_validator, gate]
    if config.ingest_only:
        return _pipeline(config, ingestion, metadata_connection_config)

    windowing = []
    if spans is not None:
        window = TemporalWindow(
            spans=canned_resolver_functions.rolling_range(
                _every_run(standard_artifacts.Examples, gate, "accepted"),
                num_spans=spans.window + spans.holdout,
                min_spans=1,
                version_sort_keys=SPAN_VERSION_ORDER,
            ),
            window=spans.window,
            holdout=spans.holdout,
        )
        window.add_upstream_node(gate)
        examples = window.outputs["examples"]
        windowing = [window]
    transform = tfx.components.Transform(
        examples=examples,
        schema=schema,
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={
            FEATURES_CONFIG_KEY: config.features.to_json_dict(),
            CODE_VERSION_KEY: config.code_version,
        },
        splits_config=tfx.proto.SplitsConfig(
            analyze=[TRAIN, CATALOG], transform=[TRAIN, EVAL, CATALOG]
        ),
    )
    transform.add_upstream_node(gate)
    baseline_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    tuner = _tuner(config, transform) if config.tuning is not None else None
    base_model = None
    if config.window_from_logs and config.model.warm_start:
        base_model = baseline_resolver.outputs["model"]
    elif spans is not None and config.model.warm_start:
        warm_start_resolver = tfx.dsl.Resolver(
            strategy_class=PreviousWindowModelStrategy,
            model=tfx.dsl.Channel(type=standard_artifacts.Model),
            model_blessing=tfx.dsl.Channel(type=standard_artifacts.ModelBlessing),
            window=_every_run(standard_artifacts.Examples, window, "examples"),
        ).with_id("warm_start_model_resolver")
        warm_start_resolver.add_upstream_node(window)
        base_model = warm_start_resolver.outputs["model"]
        windowing.append(warm_start_resolver)
    trainer = _trainer(
        config,
        run_fn=RUN_FN,
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        base_model=base_model,
        train_args=tfx.proto.TrainArgs(splits=[TRAIN]),
        eval_args=tfx.proto.EvalArgs(splits=list(TRAINER_EVAL_SPLITS)),
    )
    evaluator = RecommenderEvaluator(
        examples=examples,
        schema=schema,
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
    components = [
        *ingestion,
        *windowing,
        transform,
        *([tuner] if tuner else []),
        trainer,
        baseline_resolver,
        evaluator,
        pusher,
    ]
    return _pipeline(config, components, metadata_connection_config)


def _pipeline(config: PipelineConfig, components: list, connection) -> tfx.dsl.Pipeline:
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=connection,
        beam_pipeline_args=list(config.beam_pipeline_args),
    )


def _range(config: PipelineConfig):
    """ExampleGen's range: the runtime parameter, a pinned span, or None for the newest.

    A static range pins the span to ingest (a catch-up or backfill); the runtime
    parameter `range_config` lets each run of a compiled spec decide.
    """
    if config.span_runtime_parameter:
        return tfx.dsl.experimental.RuntimeParameter(
            name=RANGE_CONFIG_PARAMETER, ptype=str, default=""
        )
    if config.ingest_span is None:
        return None
    span = config.ingest_span
    return range_config_pb2.RangeConfig(
        static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
    )


def _every_run(kind, producer: BaseNode, output_key: str) -> tfx.dsl.Channel:
    """A channel of what `producer` wrote under `output_key` in any run of the pipeline.

    A resolver function over it reaches back in time (over a component's
    output channel it would see this run's artifact only); the consumer must
    `add_upstream_node(producer)` to run after it in a run.
    """
    return tfx.dsl.Channel(type=kind, producer_component_id=producer.id, output_key=output_key)


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
        CODE_VERSION_KEY: config.code_version,
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
    custom_config = {
        MODEL_CONFIG_KEY: config.model.to_json_dict(),
        CODE_VERSION_KEY: config.code_version,
    }
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
