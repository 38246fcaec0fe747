"""RecommenderPusher: ships the brute-force model and its ScaNN twin, only when blessed."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.recommender_pusher import executor


class RecommenderPusherSpec(types.ComponentSpec):
    """Inputs, outputs and parameters of RecommenderPusher."""

    PARAMETERS = {
        executor.SERVING_ROOT_KEY: ExecutionParameter(type=str),
        executor.MODEL_NAME_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }
    OUTPUTS = {"pushed_model": ChannelParameter(type=standard_artifacts.PushedModel)}


class RecommenderPusher(base_component.BaseComponent):
    """Pushes a blessed model to TF Serving's layout, atomically.

    Layout: `<serving_root>/<model_name>/<version>/` (brute force, stock TF
    Serving) and `<serving_root>/<model_name>_scann/<version>/` (ScaNN ops),
    both with the same version. An unblessed model is never pushed, and a model
    identical to the latest pushed version is not pushed twice.
    """

    SPEC_CLASS = RecommenderPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        model_blessing: types.BaseChannel,
        serving_root: str,
        model_name: str,
    ):
        """Builds the component.

        Args:
            model: Trainer output holding `Format-Serving` and `Format-Serving-ScaNN`.
            model_blessing: The Evaluator's verdict.
            serving_root: Root of the versioned model directories.
            model_name: Name of the brute-force model; the ScaNN one adds "_scann".
        """
        super().__init__(
            spec=RecommenderPusherSpec(
                model=model,
                model_blessing=model_blessing,
                serving_root=serving_root,
                model_name=model_name,
                pushed_model=types.Channel(type=standard_artifacts.PushedModel),
            )
        )
