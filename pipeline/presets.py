"""Named data sets the runners can point the same pipeline at: the logs files in configs/.

A preset is what differs between data sets: how the logs are ingested, the
curated schema, which events train and evaluate which task, the data set's
features and the gate. Everything else (components, wiring, code) is shared.
Each preset is a logs file (`pipeline.logs_file`), `configs/<name>.yaml`: the
same kind of file a team writes for its own logs. Both runners build their
`PipelineConfig` through `preset_fields` (or `logs_file.load`), so a preset means
the same locally and on Vertex AI.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator, Mapping
from typing import Any

from components.multilog_example_gen.spec import IngestSpec, SpanConfig
from components.recommender_evaluator.spec import GateConfig
from datagen.partition import span_file_pattern
from models.config import FeatureConfig, ModelConfig
from pipeline import logs_file

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
NAMES = ("movielens", "movielens_spans", "synthetic", "synthetic_spans")


@dataclasses.dataclass(frozen=True)
class Preset:
    """One data set's ingest spec, schema file (under schema/), features, model and gate."""

    ingest: IngestSpec
    schema_file: str
    features: FeatureConfig
    model: ModelConfig
    gate: GateConfig

    @classmethod
    def load(cls, path: str) -> Preset:
        """The preset a logs file describes.

        Raises:
            ValueError: naming the file and key of a mistake.
        """
        fields = logs_file.load(path)
        return cls(
            IngestSpec.from_json_dict(fields["ingest"]),
            os.path.basename(fields["schema_path"]),
            FeatureConfig.from_json_dict(fields["features"]),
            ModelConfig.from_json_dict(fields["model"]),
            GateConfig.from_json_dict(fields["gate"]),
        )


class _Presets(Mapping):
    """The shipped presets by name, each read from its file on first use (not at import)."""

    def __getitem__(self, name: str) -> Preset:
        if name not in NAMES:
            raise KeyError(name)
        return _load(name)

    def __iter__(self) -> Iterator[str]:
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)


@functools.cache
def _load(name: str) -> Preset:
    return Preset.load(os.path.join(CONFIG_DIR, f"{name}.yaml"))


PRESETS: Mapping[str, Preset] = _Presets()


def partitioned(ingest: IngestSpec, spans: SpanConfig | None = None) -> IngestSpec:
    """`ingest` for the same logs laid out by span (`datagen.partition`'s layout).

    Each log `<name>` reads `<name>/span-{SPAN}/<file>`, and the catalogue a
    snapshot per span under its file's stem.
    """
    stem = os.path.splitext(os.path.basename(ingest.catalog.file))[0]
    return dataclasses.replace(
        ingest,
        logs=tuple(
            dataclasses.replace(log, file=span_file_pattern(log.name, os.path.basename(log.file)))
            for log in ingest.logs
        ),
        catalog=dataclasses.replace(
            ingest.catalog, file=span_file_pattern(stem, os.path.basename(ingest.catalog.file))
        ),
        spans=spans or SpanConfig(),
    )


def preset_fields(name: str, schema_dir: str) -> dict[str, Any]:
    """The `PipelineConfig` fields preset `name` sets, as JSON.

    Args:
        name: A key of `PRESETS`.
        schema_dir: Directory holding the curated schema files (the repository's
            schema/ locally, its copy in the pipeline image on the cloud).

    Raises:
        ValueError: on an unknown preset name.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown dataset preset {name!r}; known: {sorted(PRESETS)}")
    fields = logs_file.load(os.path.join(CONFIG_DIR, f"{name}.yaml"))
    return {
        **fields,
        "schema_path": os.path.join(schema_dir, os.path.basename(fields["schema_path"])),
    }


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` applied; nested dicts merge key by key (JSON configs)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def __getattr__(name: str) -> IngestSpec:
    """`MOVIELENS_INGEST` and `SYNTHETIC_INGEST`: the shipped presets' ingest specs."""
    shipped = {"MOVIELENS_INGEST": "movielens", "SYNTHETIC_INGEST": "synthetic"}
    if name in shipped:
        return PRESETS[shipped[name]].ingest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
