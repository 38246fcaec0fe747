"""Every data-set preset names an existing schema and builds the same pipeline."""

import os

import pytest
import tensorflow_data_validation as tfdv

from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline
from pipeline.presets import PRESETS

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "schema")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_schema_covers_its_event_types_and_builds(name, tmp_path):
    preset = PRESETS[name]
    schema = tfdv.load_schema_text(os.path.join(SCHEMA_DIR, preset.schema_file))
    [domain] = [d for d in schema.string_domain if d.name == "event_type"]
    assert {log.event_type for log in preset.ingest.logs} == set(domain.value)
    trained = {event for event, _ in preset.model.retrieval_events}
    assert trained <= set(domain.value) and set(preset.gate.retrieval_event_types) <= set(
        domain.value
    )
    config = PipelineConfig(
        pipeline_name=name,
        pipeline_root=str(tmp_path),
        data_root=str(tmp_path),
        schema_path=os.path.join(SCHEMA_DIR, preset.schema_file),
        serving_root=str(tmp_path),
        ingest=preset.ingest,
        model=preset.model,
        gate=preset.gate,
    )
    ids = {c.id for c in create_pipeline(config).components}
    assert {"MultiLogExampleGen", "Transform", "Trainer", "RecommenderPusher"} <= ids
