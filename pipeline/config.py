"""The pipeline's one typed, frozen configuration."""

from __future__ import annotations

import dataclasses

from components.multilog_example_gen.spec import MOVIELENS, IngestSpec
from components.recommender_evaluator.spec import GateConfig
from models.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline runs on and how; where it runs is the runner's business.

    Attributes:
        pipeline_name: Name in ML Metadata and on the orchestrator.
        pipeline_root: Root of all artifacts (local path or gs://).
        data_root: Directory holding the logs and the catalogue.
        schema_path: Curated schema file (schema/schema.pbtxt).
        serving_root: Pushed models land in `<serving_root>/<model_name>/<version>/`.
        model_name: Name of the served model.
        ingest: Logs, catalogue and split.
        model: Trainer hyperparameters.
        gate: Evaluator thresholds.
        enable_cache: Reuse executions whose inputs did not change.
        beam_pipeline_args: Beam options for the Beam-based components.
    """

    pipeline_name: str
    pipeline_root: str
    data_root: str
    schema_path: str
    serving_root: str
    model_name: str = "recommender"
    ingest: IngestSpec = MOVIELENS
    model: ModelConfig = ModelConfig()
    gate: GateConfig = GateConfig()
    enable_cache: bool = True
    beam_pipeline_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("pipeline_name", "pipeline_root", "data_root", "schema_path", "serving_root"):
            if not getattr(self, name):
                raise ValueError(f"PipelineConfig.{name} must be set, got {getattr(self, name)!r}")
        if not self.model_name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(
                f"model_name must be alphanumeric with - or _, got {self.model_name!r}"
            )
