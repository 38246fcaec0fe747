"""The pipeline's one typed, frozen configuration."""

from __future__ import annotations

import dataclasses

from components.multilog_example_gen.spec import IngestSpec
from components.recommender_evaluator.spec import GateConfig
from contracts import jsonable
from models.config import FeatureConfig, ModelConfig, TuningConfig


@dataclasses.dataclass(frozen=True)
class VertexConfig(jsonable.JsonDataclass):
    """Where Vertex AI trains and serves, when the pipeline runs on Google Cloud.

    Attributes:
        project: Google Cloud project id.
        region: Vertex AI region.
        training: Run the Trainer as a Vertex AI custom training job.
        training_machine_type: Machine type of that job.
        training_image_uri: Image of that job (the pipeline image).
        serving: Deploy blessed models to a Vertex AI endpoint instead of a
            filesystem push.
        endpoint_name: Name of that endpoint.
        serving_image_uri: Prediction container (stock TF; it serves the
            brute-force model).
        serving_machine_type: Machine type of the endpoint.
    """

    project: str
    region: str
    training: bool = False
    training_machine_type: str = "n1-standard-8"
    training_image_uri: str = ""
    serving: bool = False
    endpoint_name: str = ""
    serving_image_uri: str = ""
    serving_machine_type: str = "n1-standard-4"

    def __post_init__(self) -> None:
        if not self.project or not self.region:
            raise ValueError(
                f"VertexConfig needs project and region, got {self.project!r}, {self.region!r}"
            )
        if self.training and not self.training_image_uri:
            raise ValueError("VertexConfig.training needs training_image_uri")
        if self.serving and not (self.endpoint_name and self.serving_image_uri):
            raise ValueError(
                "VertexConfig.serving needs endpoint_name and serving_image_uri, got "
                f"{self.endpoint_name!r}, {self.serving_image_uri!r}"
            )

    def training_job_spec(self) -> dict:
        """Returns the Vertex AI CustomJob spec the cloud Trainer submits."""
        return {
            "project": self.project,
            "worker_pool_specs": [
                {
                    "machine_spec": {"machine_type": self.training_machine_type},
                    "replica_count": 1,
                    "container_spec": {"image_uri": self.training_image_uri},
                }
            ],
        }


@dataclasses.dataclass(frozen=True)
class PipelineConfig(jsonable.JsonDataclass):
    """What the pipeline runs on and how; where it runs is the runner's business.

    `pipeline.presets.preset_fields` gives the data-set specific fields
    (ingest, schema, model, gate) of each named data set.

    Attributes:
        pipeline_name: Name in ML Metadata and on the orchestrator.
        pipeline_root: Root of all artifacts (local path or gs://).
        data_root: Directory holding the logs and the catalogue.
        schema_path: Curated schema file (e.g. schema/schema.pbtxt).
        serving_root: Pushed models land in `<serving_root>/<model_name>/<version>/`.
        ingest: Logs, catalogue and split.
        features: Data-set specific features Transform derives.
        model_name: Name of the served model.
        model: Trainer hyperparameters.
        gate: Evaluator thresholds.
        enable_cache: Reuse executions whose inputs did not change.
        beam_pipeline_args: Beam options for the Beam-based components.
        tuning: When set, a Tuner searches loss weights and the DCN shape on a
            slice of the train split and its best values override `model`
            in the Trainer; None (the default) trains `model` as is.
        vertex: Vertex AI Training / endpoint targets; None trains in the
            orchestrator's worker and pushes to `serving_root`.
        ingest_span: With time-partitioned logs, the span ExampleGen ingests
            (a backfill); None ingests the newest span every log holds.
        ingest_only: Build only the ingestion and validation of a span
            (ExampleGen, statistics, validation), as a catch-up of earlier spans does.
        window_from_logs: With spans, ExampleGen re-reads the whole window every
            run and splits it (train: the earlier spans, eval: the newest)
            instead of ingesting one span and resolving the window in ML
            Metadata; for orchestrators without span-range resolution (TFX
            1.16's KubeflowV2DagRunner compiles latest-artifact and
            latest-blessed-model resolvers only). Drift is checked between the
            newest span and the window's earlier spans (eval against train),
            and the Trainer warm-starts from the last blessed model.
        span_runtime_parameter: With spans, ExampleGen's `range_config` is a
            runtime parameter of the compiled spec, `range_config`: empty (the
            default, what schedules pass) ingests the newest span delivered;
            a RangeConfig JSON pins a span (`scripts/submit_pipeline.py --run_date`).
        code_version: Fingerprint of the package code the components run
            (`pipeline.source.source_version`), in the configs of ExampleGen,
            Transform, Tuner and Trainer, so that new code re-runs them instead
            of reusing what the old code cached; the runners set it.
    """

    pipeline_name: str
    pipeline_root: str
    data_root: str
    schema_path: str
    serving_root: str
    ingest: IngestSpec
    features: FeatureConfig = FeatureConfig()
    model_name: str = "recommender"
    model: ModelConfig = ModelConfig()
    gate: GateConfig = GateConfig()
    enable_cache: bool = True
    beam_pipeline_args: tuple[str, ...] = ()
    tuning: TuningConfig | None = None
    vertex: VertexConfig | None = None
    ingest_span: int | None = None
    ingest_only: bool = False
    window_from_logs: bool = False
    span_runtime_parameter: bool = False
    code_version: str = ""

    def __post_init__(self) -> None:
        for name in ("pipeline_name", "pipeline_root", "data_root", "schema_path", "serving_root"):
            if not getattr(self, name):
                raise ValueError(f"PipelineConfig.{name} must be set, got {getattr(self, name)!r}")
        if not self.model_name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(
                f"model_name must be alphanumeric with - or _, got {self.model_name!r}"
            )
        spanned = (
            self.ingest_span is not None,
            self.ingest_only,
            self.window_from_logs,
            self.span_runtime_parameter,
        )
        if self.ingest.spans is None and any(spanned):
            raise ValueError(
                "ingest_span, ingest_only, window_from_logs and span_runtime_parameter need "
                "time-partitioned logs "
                f"(IngestSpec.spans), got {spanned}"
            )
        if self.ingest_span is not None and self.ingest_span < 0:
            raise ValueError(f"ingest_span must be >= 0, got {self.ingest_span}")
