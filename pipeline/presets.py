"""Named data sets the runners can point the same pipeline at.

A preset is what differs between data sets: how the logs are ingested, the
curated schema, which events train and evaluate which task, and the gate.
Everything else (components, wiring, code) is shared. Both runners build their
`PipelineConfig` through `preset_fields`, so a preset means the same locally and
on Vertex AI.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from components.multilog_example_gen.spec import CatalogSpec, IngestSpec, LogSpec, SpanConfig
from components.recommender_evaluator.spec import GateConfig
from contracts import jsonable
from datagen.partition import span_file_pattern
from datagen.synthetic import FILES, FUNNEL
from models.config import ModelConfig, TaskEvents

MOVIELENS_INGEST = IngestSpec(
    logs=(
        LogSpec(name="ratings", file="ratings.csv", event_type="watch", rating_column="rating"),
        LogSpec(name="tags", file="tags.csv", event_type="tag"),
    ),
    catalog=CatalogSpec(file="movies.csv"),
)
"""The embedded MovieLens data: a rating is a watch event carrying its rating."""

SYNTHETIC_INGEST = IngestSpec(
    logs=tuple(
        LogSpec(
            name=f"{event}s",
            file=FILES[event],
            event_type=event,
            user_column="user_id",
            item_column="item_id",
            rating_column="rating" if event == "purchase" else None,
        )
        for event in FUNNEL
    ),
    catalog=CatalogSpec(file="items.csv", item_column="item_id", empty_genres=""),
)
"""How the pipeline ingests `datagen.synthetic`'s output."""


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


@dataclasses.dataclass(frozen=True)
class Preset:
    """One data set's ingest spec, schema file (under schema/), model and gate."""

    ingest: IngestSpec
    schema_file: str
    model: ModelConfig
    gate: GateConfig


PRESETS = {
    # Tags train retrieval too; the gate scores watch events (each carries a rating).
    "movielens": Preset(
        MOVIELENS_INGEST,
        "schema.pbtxt",
        ModelConfig(events=TaskEvents(retrieval_eval=("watch",))),
        GateConfig(),
    ),
    # The same MovieLens logs cut into spans (`python -m datagen.partition`): trained on
    # the last 14 spans, evaluated on the newest.
    "movielens_spans": Preset(
        partitioned(MOVIELENS_INGEST),
        "schema.pbtxt",
        ModelConfig(events=TaskEvents(retrieval_eval=("watch",))),
        GateConfig(),
    ),
    # Synthetic funnel: every behaviour trains retrieval (purchases count most),
    # ratings on purchases train the rating task; the gate is a sanity gate on
    # purchases (the sparse target) since quality depends on the generator's knobs.
    "synthetic": Preset(
        SYNTHETIC_INGEST,
        "synthetic.pbtxt",
        ModelConfig(
            events=TaskEvents(
                retrieval=(("view", 1.0), ("click", 2.0), ("cart", 3.0), ("purchase", 4.0)),
                rating=("purchase",),
                retrieval_eval=("purchase",),
            )
        ),
        GateConfig(max_rmse=1.5, min_top_k_accuracy=0.05),
    ),
}
# The synthetic funnel over days (`python -m datagen.timeline`): trained on the last 14
# days, evaluated on the newest; the relative gate only (no absolute floor).
PRESETS["synthetic_spans"] = dataclasses.replace(
    PRESETS["synthetic"], ingest=partitioned(SYNTHETIC_INGEST), gate=GateConfig()
)


def preset_fields(name: str, schema_dir: str) -> dict[str, Any]:
    """The `PipelineConfig` fields preset `name` sets, as JSON (ingest, schema, model, gate).

    Args:
        name: A key of `PRESETS`.
        schema_dir: Directory holding the curated schema files (the repository's
            schema/ locally, its copy in the pipeline image on the cloud).

    Raises:
        ValueError: on an unknown preset name.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown dataset preset {name!r}; known: {sorted(PRESETS)}")
    preset = PRESETS[name]
    return {
        "pipeline_name": f"recommender-{name.replace('_', '-')}",
        "ingest": jsonable.to_json_dict(preset.ingest),
        "schema_path": os.path.join(schema_dir, preset.schema_file),
        "model": jsonable.to_json_dict(preset.model),
        "gate": jsonable.to_json_dict(preset.gate),
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
