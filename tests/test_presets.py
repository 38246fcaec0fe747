"""Every data-set preset names an existing schema and builds the same pipeline."""

import os

import pytest
import tensorflow_data_validation as tfdv

from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline
from pipeline.presets import PRESETS, merge, preset_fields

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "schema")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_schema_covers_its_event_types_and_builds(name, tmp_path):
    preset = PRESETS[name]
    schema = tfdv.load_schema_text(os.path.join(SCHEMA_DIR, preset.schema_file))
    [domain] = [d for d in schema.string_domain if d.name == "event_type"]
    assert {log.event_type for log in preset.ingest.logs} == set(domain.value)
    events = preset.model.events
    trained = {event for event, _ in events.retrieval}
    assert trained <= set(domain.value)
    assert set(events.rating) | set(events.evaluated_retrieval_events()) <= set(domain.value)
    config = PipelineConfig.from_json_dict(
        {
            **preset_fields(name, SCHEMA_DIR),
            "pipeline_root": str(tmp_path),
            "data_root": str(tmp_path),
            "serving_root": str(tmp_path),
        }
    )
    assert (config.ingest, config.model, config.gate) == (preset.ingest, preset.model, preset.gate)
    ids = {c.id for c in create_pipeline(config).components}
    assert {"MultiLogExampleGen", "Transform", "Trainer", "RecommenderPusher"} <= ids


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match=r"unknown dataset preset 'imdb'; known: \['movielens'"):
        preset_fields("imdb", SCHEMA_DIR)


def test_merge_overrides_nested_keys_only():
    base = {"model": {"epochs": 3, "events": {"rating": ["purchase"]}}, "name": "a"}
    merged = merge(base, {"model": {"epochs": 5}, "enable_cache": False})
    assert merged == {
        "model": {"epochs": 5, "events": {"rating": ["purchase"]}},
        "name": "a",
        "enable_cache": False,
    }
    assert base["model"]["epochs"] == 3  # inputs are not modified
