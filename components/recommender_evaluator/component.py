"""RecommenderEvaluator: TFX's Evaluator (TFMA) with the recommender's EvalConfig."""

from __future__ import annotations

from tfx import types
from tfx.components.evaluator.component import Evaluator
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils

from components.recommender_evaluator import executor
from components.recommender_evaluator.spec import GateConfig


class RecommenderEvaluatorSpec(standard_component_specs.EvaluatorSpec):
    """The stock Evaluator's spec, plus where the served model is and the baseline policy."""

    PARAMETERS = {
        **standard_component_specs.EvaluatorSpec.PARAMETERS,
        executor.SERVED_MODEL_DIR_KEY: ExecutionParameter(type=str),
        executor.REQUIRE_BASELINE_KEY: ExecutionParameter(type=int),
    }


class RecommenderEvaluator(Evaluator):
    """The stock Evaluator gating on `GateConfig.eval_config`, robust to a vanished baseline.

    Everything TFMA offers is there: sliced metrics, `tfma.load_eval_result` and
    `tfma.load_validation_result` on the `evaluation` output, value and change
    thresholds, Beam/Dataflow scaling. The executor only adds what happens when
    the last blessed model's files are gone (see `executor`).
    """

    SPEC_CLASS = RecommenderEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        model: types.BaseChannel,
        schema: types.BaseChannel,
        gate: GateConfig,
        k: int,
        baseline_model: types.BaseChannel | None = None,
        served_model_dir: str = "",
    ):
        """Builds the component.

        Args:
            examples: Raw examples (ExampleGen output) holding `gate.split`.
            model: Candidate model (Trainer output) with the `evaluate` signature.
            schema: The curated schema the raw events are parsed with.
            gate: The thresholds.
            k: The gated top-K depth (`ModelConfig.top_k`).
            baseline_model: Last blessed model (LatestBlessedModelStrategy resolver).
            served_model_dir: `<serving_root>/<model_name>`: its newest version
                is the baseline when the last blessed model's files are gone
                ("" when models are not pushed to a filesystem).
        """
        spec = RecommenderEvaluatorSpec(
            examples=examples,
            model=model,
            baseline_model=baseline_model,
            schema=schema,
            eval_config=gate.eval_config(k),
            example_splits=json_utils.dumps([gate.split]),
            fairness_indicator_thresholds=json_utils.dumps(None),
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            **{
                executor.SERVED_MODEL_DIR_KEY: served_model_dir,
                executor.REQUIRE_BASELINE_KEY: int(gate.require_baseline),
            },
        )
        base_component.BaseComponent.__init__(self, spec=spec)
