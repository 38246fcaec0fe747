"""TemporalWindow: the last spans as train (the past) and eval (what happened next)."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.temporal_window import executor


class TemporalWindowSpec(ComponentSpec):
    """Accepted spans in; one Examples with train/eval/catalog out."""

    PARAMETERS = {
        executor.WINDOW_KEY: ExecutionParameter(type=int),
        executor.HOLDOUT_KEY: ExecutionParameter(type=int),
    }
    INPUTS = {
        executor.SPANS_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }


class TemporalWindow(base_component.BaseComponent):
    """Turns the recent spans into the splits the rest of the pipeline reads.

    The newest `holdout` spans become `eval` and up to `window` spans before
    them `train`; `catalog` is the newest span's catalogue, so items that first
    appeared in it are retrievable. Only spans that passed validation arrive
    here (`SpanGate`'s accepted spans). The output carries the newest span as
    its `span` and, as custom properties, which spans went where
    (`train_spans`, `eval_spans`).
    """

    SPEC_CLASS = TemporalWindowSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, spans: types.BaseChannel, window: int, holdout: int):
        """Builds the component.

        Args:
            spans: Accepted span Examples (events/catalog), e.g. a rolling range.
            window: Spans to train on.
            holdout: Newest spans to evaluate on.
        """
        super().__init__(
            spec=TemporalWindowSpec(
                spans=spans,
                window=window,
                holdout=holdout,
                examples=types.Channel(type=standard_artifacts.Examples),
            )
        )
