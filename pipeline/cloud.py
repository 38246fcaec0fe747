"""Configuration of a Kubeflow Pipelines v2 / Vertex AI deployment of the pipeline.

A `CloudConfig` is read from a JSON file and/or command-line flags (never from
code edits) and validated up front. It holds only what is cloud-specific
(project, image, Dataflow, Vertex AI Training and endpoints); what the pipeline
runs is a data-set preset plus `pipeline` overrides of any `PipelineConfig`
field, merged into the same `PipelineConfig` the local runner builds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

from contracts import jsonable
from pipeline import logs_file
from pipeline.config import PipelineConfig, VertexConfig
from pipeline.presets import merge, preset_fields

IMAGE_SCHEMA_DIR = "/pipeline/schema"
"""Where the Dockerfile puts the curated schemas inside the pipeline image."""

_REQUIRED = ("project", "region", "image_uri")
_GCS_PATHS = ("pipeline_root", "data_root", "serving_root")


@dataclasses.dataclass(frozen=True)
class DataflowConfig(jsonable.JsonDataclass):
    """Dataflow workers for the Beam-based components (ExampleGen, statistics, Transform).

    Attributes:
        machine_type: Worker machine type.
        max_num_workers: Autoscaling ceiling.
        disk_size_gb: Worker boot disk size.
    """

    machine_type: str = "e2-standard-8"
    max_num_workers: int = 10
    disk_size_gb: int = 50

    def __post_init__(self) -> None:
        if self.max_num_workers <= 0 or self.disk_size_gb <= 0:
            raise ValueError(
                "dataflow max_num_workers and disk_size_gb must be positive, got "
                f"{self.max_num_workers}, {self.disk_size_gb}"
            )


@dataclasses.dataclass(frozen=True)
class CloudConfig(jsonable.JsonDataclass):
    """Everything a Kubeflow / Vertex AI run needs beyond the pipeline itself.

    Attributes:
        project: Google Cloud project id (required).
        region: Region of Dataflow, Vertex AI Pipelines, Training and endpoints (required).
        image_uri: Pipeline image (see Dockerfile) every component runs in; also
            the Dataflow SDK container, so workers import the same code (required).
        dataset: The data-set preset (`pipeline.presets.PRESETS`) the pipeline
            starts from: ingest spec, schema, model and gate.
        logs: A logs file (`pipeline.logs_file`) to start from instead of a
            preset, read when the spec is compiled; its schema must be one of the
            repository's schema/ files, which the image holds.
        pipeline: `PipelineConfig` fields, as JSON, merged over the preset's
            (nested configs key by key). `pipeline_root`, `data_root` and
            `serving_root` are required and must be gs:// URIs.
        use_dataflow: Run Beam on Dataflow (else DirectRunner inside the pod).
        dataflow: Dataflow worker settings.
        vertex_training: Train on Vertex AI Training instead of in the pod.
        training_machine_type: Vertex AI Training machine type.
        vertex_serving: Deploy the blessed model to a Vertex AI endpoint
            instead of copying it to `serving_root`.
        endpoint_name: Vertex AI endpoint name (defaults to the pipeline name).
        serving_image_uri: Vertex AI prediction container for the stock model.

    Raises:
        ValueError: naming every missing required value, a non-gs:// root, an
            unknown preset or an invalid pipeline field.
    """

    project: str = ""
    region: str = ""
    image_uri: str = ""
    dataset: str = "movielens"
    logs: str = ""
    pipeline: dict[str, Any] = dataclasses.field(default_factory=dict)
    use_dataflow: bool = True
    dataflow: DataflowConfig = DataflowConfig()
    vertex_training: bool = False
    training_machine_type: str = "n1-standard-8"
    vertex_serving: bool = False
    endpoint_name: str = ""
    serving_image_uri: str = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-16:latest"

    def __post_init__(self) -> None:
        missing = [name for name in _REQUIRED if not getattr(self, name)]
        missing += [f"pipeline.{name}" for name in _GCS_PATHS if not self.pipeline.get(name)]
        if missing:
            raise ValueError(f"CloudConfig is missing required value(s): {', '.join(missing)}")
        bad = [f"{n}={self.pipeline[n]!r}" for n in _GCS_PATHS if not _is_gcs(self.pipeline[n])]
        if bad:
            raise ValueError(
                f"CloudConfig paths must be gs://bucket/... URIs, got {', '.join(bad)}"
            )
        self.pipeline_config()  # validates the merged pipeline fields now

    def beam_pipeline_args(self) -> tuple[str, ...]:
        """Returns Beam options: Dataflow (runner v2, pipeline image) or in-pod DirectRunner."""
        if not self.use_dataflow:
            return ("--direct_running_mode=multi_processing", "--direct_num_workers=0")
        return (
            "--runner=DataflowRunner",
            f"--project={self.project}",
            f"--region={self.region}",
            f"--temp_location={self.pipeline['pipeline_root'].rstrip('/')}/tmp",
            f"--machine_type={self.dataflow.machine_type}",
            f"--max_num_workers={self.dataflow.max_num_workers}",
            f"--disk_size_gb={self.dataflow.disk_size_gb}",
            "--experiments=use_runner_v2",
            f"--sdk_container_image={self.image_uri}",
        )

    def pipeline_config(self) -> PipelineConfig:
        """Returns the runner-agnostic configuration `create_pipeline` takes.

        Raises:
            ValueError: on an unknown preset or an invalid pipeline field.
        """
        if self.logs:
            loaded = logs_file.load(self.logs)
            schema = os.path.join(IMAGE_SCHEMA_DIR, os.path.basename(loaded["schema_path"]))
            base = {**loaded, "schema_path": schema}
        else:
            base = preset_fields(self.dataset, IMAGE_SCHEMA_DIR)
        fields = merge(base, self.pipeline)
        name = fields["pipeline_name"]
        vertex = None
        if self.vertex_training or self.vertex_serving:
            vertex = VertexConfig(
                project=self.project,
                region=self.region,
                training=self.vertex_training,
                training_machine_type=self.training_machine_type,
                training_image_uri=self.image_uri,
                serving=self.vertex_serving,
                endpoint_name=self.endpoint_name or name,
                serving_image_uri=self.serving_image_uri,
            )
        config = PipelineConfig.from_json_dict(
            {
                **fields,
                "beam_pipeline_args": self.beam_pipeline_args(),
                "window_from_logs": fields["ingest"].get("spans") is not None,
                "span_runtime_parameter": fields["ingest"].get("spans") is not None,
            }
        )
        return dataclasses.replace(config, vertex=vertex)


def _is_gcs(path: str) -> bool:
    return path.startswith("gs://") and len(path) > len("gs://") and not path[5:].startswith("/")


def parse_args(argv: Sequence[str] | None = None) -> tuple[CloudConfig, str]:
    """Reads a `CloudConfig` from `--config` (JSON) overridden by flags.

    Args:
        argv: Command-line arguments (without the program name).

    Returns:
        The validated config and the path the compiled pipeline spec goes to.

    Raises:
        ValueError: on a missing required value, a non-gs:// path, an unknown
            key in the file, or an unreadable file.
    """
    parser = argparse.ArgumentParser(description="Compile the pipeline for KFP v2 / Vertex AI.")
    parser.add_argument("--config", help="JSON file with CloudConfig fields")
    parser.add_argument("--output", default="recommender_pipeline.json", help="spec file")
    for name in (*_REQUIRED, "dataset", "logs", "endpoint_name"):
        parser.add_argument(f"--{name}")
    for name in (*_GCS_PATHS, "pipeline_name"):
        parser.add_argument(f"--{name}", help=f"sets pipeline.{name}")
    for name in ("use_dataflow", "vertex_training", "vertex_serving"):
        parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    if args.config:
        if not os.path.isfile(args.config):
            raise ValueError(f"--config file {args.config!r} does not exist")
        with open(args.config) as f:
            values = json.load(f)
    flags = {k: v for k, v in vars(args).items() if v is not None and k not in ("config", "output")}
    pipeline = {k: flags.pop(k) for k in (*_GCS_PATHS, "pipeline_name") if k in flags}
    values.update(flags)
    values["pipeline"] = merge(values.get("pipeline") or {}, pipeline)
    return CloudConfig.from_json_dict(values), args.output
