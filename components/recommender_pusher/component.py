"""RecommenderPusher: TFX's Pusher, shipping the brute-force model and its ScaNN twin."""

from __future__ import annotations

import os

from tfx import types
from tfx.components.pusher.component import Pusher
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2

from components.recommender_pusher import executor


class RecommenderPusher(Pusher):
    """The stock Pusher with an executor that pushes both serving models under one version.

    Layout (TF Serving's): `<serving_root>/<model_name>/<version>/` (brute force,
    stock TF Serving) and `<serving_root>/<model_name>_scann/<version>/` (ScaNN
    ops). Inputs, output and properties are the stock Pusher's: a model that the
    Evaluator (and the InfraValidator, when wired) did not bless is never pushed,
    and the PushedModel carries `pushed`, `pushed_destination`, `pushed_version`.
    A model identical to the latest pushed version is not pushed again (`pushed` 0).
    """

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        model_blessing: types.BaseChannel,
        serving_root: str,
        model_name: str,
        infra_blessing: types.BaseChannel | None = None,
    ):
        """Builds the component.

        Args:
            model: Trainer output holding `Format-Serving` and `Format-Serving-ScaNN`.
            model_blessing: The Evaluator's verdict.
            serving_root: Root of the versioned model directories.
            model_name: Name of the brute-force model; the ScaNN one adds "_scann".
            infra_blessing: Optional InfraValidator verdict, honoured like the stock Pusher.
        """
        super().__init__(
            model=model,
            model_blessing=model_blessing,
            infra_blessing=infra_blessing,
            push_destination=pusher_pb2.PushDestination(
                filesystem=pusher_pb2.PushDestination.Filesystem(
                    base_directory=os.path.join(serving_root, model_name)
                )
            ),
        )
