"""SpanExampleValidator: TFX's ExampleValidator, with drift from the previous span (or split)."""

from __future__ import annotations

from tfx import types
from tfx.components.example_validator.component import ExampleValidator
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import json_utils

from components.span_validator import executor


class SpanExampleValidatorSpec(standard_component_specs.ExampleValidatorSpec):
    """The stock spec plus the statistics of earlier spans, or split baselines (optional)."""

    INPUTS = {
        **standard_component_specs.ExampleValidatorSpec.INPUTS,
        executor.BASELINE_STATISTICS_KEY: ChannelParameter(
            type=standard_artifacts.ExampleStatistics, optional=True
        ),
    }
    PARAMETERS = {
        **standard_component_specs.ExampleValidatorSpec.PARAMETERS,
        executor.SPLIT_BASELINES_KEY: ExecutionParameter(type=str, optional=True),
    }


class SpanExampleValidator(ExampleValidator):
    """ExampleValidator that also compares each split with the previous span's.

    The schema's drift comparators (`drift_comparator` on a feature: an
    L-infinity bound for categorical features, a Jensen-Shannon bound for
    numeric ones) are evaluated by TFDV against the newest statistics of a span
    before this one, as `tfdv.validate_statistics(previous_statistics=...)`
    does. Drift anomalies land in the same `anomalies` output, as TFDV's
    `COMPARATOR_*` anomaly types; without an earlier span it validates as the
    stock component.
    """

    SPEC_CLASS = SpanExampleValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        statistics: types.BaseChannel,
        schema: types.BaseChannel,
        baseline_statistics: types.BaseChannel | None = None,
        split_baselines: dict[str, str] | None = None,
    ):
        """Builds the component.

        Args:
            statistics: StatisticsGen's output for the span to validate.
            schema: The curated schema, with drift comparators where drift matters.
            baseline_statistics: Statistics of recent spans (a span-range resolver's
                output); the newest span before `statistics`' is compared with.
            split_baselines: Split -> the split of the same statistics it is
                compared with; used when `baseline_statistics` is not given.

        Raises:
            ValueError: if both baselines are given.
        """
        if baseline_statistics is not None and split_baselines:
            raise ValueError("give baseline_statistics or split_baselines, not both")
        spec = SpanExampleValidatorSpec(
            statistics=statistics,
            schema=schema,
            baseline_statistics=baseline_statistics,
            exclude_splits=json_utils.dumps([]),
            split_baselines=json_utils.dumps(split_baselines or {}),
            anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies),
        )
        base_component.BaseComponent.__init__(self, spec=spec)
