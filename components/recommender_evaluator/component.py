"""RecommenderEvaluator: RMSE and top-K retrieval accuracy gate with a baseline."""

from __future__ import annotations

import json

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.recommender_evaluator import executor
from components.recommender_evaluator.spec import GateConfig
from models.config import TaskEvents


class RecommenderEvaluatorSpec(types.ComponentSpec):
    """Inputs, outputs and parameters of RecommenderEvaluator."""

    PARAMETERS = {
        executor.GATE_CONFIG_KEY: ExecutionParameter(type=str),
        executor.EVENTS_KEY: ExecutionParameter(type=str),
        executor.K_KEY: ExecutionParameter(type=int),
        executor.SERVED_MODEL_DIR_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
        "model": ChannelParameter(type=standard_artifacts.Model),
        "baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class RecommenderEvaluator(base_component.BaseComponent):
    """Evaluates a recommender through its serving signatures and blesses it or not.

    RMSE is measured on rated eval events of the rating task's types via `rate`;
    top-K accuracy on eval events of the evaluated retrieval types via
    `retrieve` over the full catalogue (see `TaskEvents`). The output `blessing`
    is a standard ModelBlessing the stock Pusher honours.
    """

    SPEC_CLASS = RecommenderEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        schema: types.BaseChannel,
        model: types.BaseChannel,
        gate: GateConfig,
        events: TaskEvents,
        k: int,
        baseline_model: types.BaseChannel | None = None,
        served_model_dir: str = "",
    ):
        """Builds the component.

        Args:
            examples: Raw examples (ExampleGen output) holding `gate.split`.
            schema: The curated schema the raw events are parsed with.
            model: Candidate model (Trainer output).
            gate: Blessing thresholds.
            events: Which events each metric scores (the model config's).
            k: Depth of the top-K accuracy (the model config's `top_k`).
            baseline_model: Last blessed model, typically from a
                LatestBlessedModelStrategy resolver.
            served_model_dir: `<serving_root>/<model_name>`: its newest version
                is the baseline when the last blessed model's files are gone
                ("" when models are not pushed to a filesystem).
        """
        super().__init__(
            spec=RecommenderEvaluatorSpec(
                examples=examples,
                schema=schema,
                model=model,
                baseline_model=baseline_model,
                gate_config=json.dumps(gate.to_json_dict(), sort_keys=True),
                events=json.dumps(events.to_json_dict(), sort_keys=True),
                k=k,
                served_model_dir=served_model_dir,
                evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
                blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            )
        )
