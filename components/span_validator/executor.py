"""Executor of SpanExampleValidator: TFDV validation against an earlier span or split."""

from __future__ import annotations

import logging
import os
from typing import Any

import tensorflow_data_validation as tfdv
from tfx import types
from tfx.components.example_validator import executor as validator_executor
from tfx.components.example_validator import labels
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.components.util import value_utils
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import json_utils, writer_utils

BASELINE_STATISTICS_KEY = "baseline_statistics"
SPLIT_BASELINES_KEY = "split_baselines"
SPLIT_PREFIX = "Split-"
"""TFX names a split's directory `Split-<name>` (the output path `_Validate` is given)."""


def previous_span(candidates: list[types.Artifact], span: int) -> types.Artifact | None:
    """The newest statistics of the latest span before `span` (the newest version wins)."""
    earlier = [a for a in candidates if a.span < span]
    return max(earlier, key=lambda a: (a.span, a.id)) if earlier else None


def split_baseline_map(exec_properties: dict[str, Any], statistics: types.Artifact) -> dict:
    """The `split_baselines` property, checked against the statistics' splits.

    Raises:
        ValueError: naming a split the statistics do not have.
    """
    raw = exec_properties.get(SPLIT_BASELINES_KEY)
    pairs = json_utils.loads(raw) if raw else {}
    splits = artifact_utils.decode_split_names(statistics.split_names)
    for split in {*pairs, *pairs.values()}:
        if split not in splits:
            raise ValueError(
                f"split_baselines names split {split!r}, but the statistics at "
                f"{statistics.uri} have {splits}"
            )
    return pairs


class Executor(validator_executor.Executor):
    """TFX's ExampleValidator executor, passing TFDV the previous span's statistics."""

    def __init__(self, context=None):
        super().__init__(context)
        self._previous: dict[str, Any] = {}

    def Do(  # noqa: N802
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ):
        """Validates every split against the schema and the previous span's split."""
        current = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.STATISTICS_KEY]
        )
        previous = previous_span(input_dict.get(BASELINE_STATISTICS_KEY) or [], current.span)
        self._previous = {}
        split_baselines = split_baseline_map(exec_properties, current)
        if previous is None and split_baselines:
            for split, baseline in split_baselines.items():
                logging.info("Drift of split %s checked against split %s", split, baseline)
                self._previous[split] = stats_artifact_utils.load_statistics(
                    current, baseline
                ).proto()
        elif previous is None:
            logging.info("No span before span %s: no drift check", current.span)
        else:
            logging.info("Drift of span %s checked against span %s", current.span, previous.span)
            previous_splits = artifact_utils.decode_split_names(previous.split_names)
            for split in artifact_utils.decode_split_names(current.split_names):
                if split in previous_splits:
                    self._previous[split] = stats_artifact_utils.load_statistics(
                        previous, split
                    ).proto()
        return super().Do(input_dict, output_dict, exec_properties)

    def _Validate(self, inputs: dict[str, Any], outputs: dict[str, Any]):  # noqa: N802
        """`tfdv.validate_statistics` with `previous_statistics` when there is an earlier span."""
        path = value_utils.GetSoleValue(outputs, labels.SCHEMA_DIFF_PATH)
        split = os.path.basename(path.rstrip("/")).removeprefix(SPLIT_PREFIX)
        anomalies = tfdv.validate_statistics(
            statistics=value_utils.GetSoleValue(inputs, standard_component_specs.STATISTICS_KEY),
            schema=value_utils.GetSoleValue(inputs, standard_component_specs.SCHEMA_KEY),
            previous_statistics=self._previous.get(split),
            custom_validation_config=value_utils.GetSoleValue(
                inputs, standard_component_specs.CUSTOM_VALIDATION_CONFIG_KEY
            ),
        )
        writer_utils.write_anomalies(
            os.path.join(path, validator_executor.DEFAULT_FILE_NAME), anomalies
        )
        return anomalies
