"""Which model a Trainer warm-starts from: the last blessed one trained on an earlier window.

The plain latest-blessed-model resolver would hand a re-run over an unchanged
window the model that this very window produced, so the Trainer's inputs, and
its cache key, would change with every run and an unchanged re-run would train
again. Resolving to the newest blessed model whose window ended before the
current one keeps a re-run cached and warm-starts a new window from yesterday's
model.
"""

from __future__ import annotations

import json

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.components.evaluator import constants
from tfx.dsl.components.common import resolver

from contracts.names import EVAL_SPANS_PROPERTY as EVAL_SPANS

MODEL_KEY, BLESSING_KEY, WINDOW_KEY = "model", "model_blessing", "window"
MAX_HOPS = 4
_Event = metadata_store_pb2.Event


def window_span(store: mlmd.MetadataStore, artifact_id: int) -> int | None:
    """The newest span of the temporal window upstream of an artifact (a Model), if any.

    Walks producer executions' inputs (Trainer, then Transform) up to the
    window's Examples, which carry `eval_spans`.
    """
    frontier = [artifact_id]
    for _ in range(MAX_HOPS):
        producers = {
            e.execution_id
            for e in store.get_events_by_artifact_ids(frontier)
            if e.type == _Event.OUTPUT
        }
        if not producers:
            return None
        frontier = [
            e.artifact_id
            for e in store.get_events_by_execution_ids(list(producers))
            if e.type == _Event.INPUT
        ]
        for artifact in store.get_artifacts_by_id(frontier):
            if EVAL_SPANS in artifact.custom_properties:
                return max(json.loads(artifact.custom_properties[EVAL_SPANS].string_value))
    return None


class PreviousWindowModelStrategy(resolver.ResolverStrategy):
    """The newest blessed Model trained on a window that ends before the current window.

    Inputs: `model` and `model_blessing` (every run's), and `window` (the
    temporal window's Examples; the newest is this run's). Outputs `model` and
    `model_blessing`, empty when there is no such model (a cold start), and
    `window`, the current window.
    """

    def resolve_artifacts(
        self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        """Picks the model; see the class docstring."""
        windows = input_dict.get(WINDOW_KEY) or []
        if not windows:
            return {MODEL_KEY: [], BLESSING_KEY: [], WINDOW_KEY: []}
        current = max(windows, key=lambda a: a.id)
        empty = {MODEL_KEY: [], BLESSING_KEY: [], WINDOW_KEY: [current]}
        newest_span = max(json.loads(current.get_string_custom_property(EVAL_SPANS)))
        blessings = {
            b.get_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY): b
            for b in input_dict.get(BLESSING_KEY) or []
            if b.get_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1
        }
        for model in sorted(input_dict.get(MODEL_KEY) or [], key=lambda a: a.id, reverse=True):
            if model.id not in blessings:
                continue
            span = window_span(store, model.id)
            if span is not None and span < newest_span:
                return {
                    MODEL_KEY: [model],
                    BLESSING_KEY: [blessings[model.id]],
                    WINDOW_KEY: [current],
                }
        return empty
