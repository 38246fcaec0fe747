"""Executor of RecommenderEvaluator: metrics through the serving signatures, then a blessing."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable
from typing import Any

import tensorflow as tf
from tfx import types
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components.recommender_evaluator.spec import GateConfig, verdict
from models.config import TaskEvents
from models.evaluation import EvalMetrics, evaluate_saved_model, event_feature_spec

GATE_CONFIG_KEY = "gate_config"
EVENTS_KEY = "events"
K_KEY = "k"
SERVED_MODEL_DIR_KEY = "served_model_dir"
METRICS_FILE = "metrics.json"


def latest_served_model(served_model_dir: str) -> str | None:
    """The newest version under `<serving_root>/<model_name>` holding a SavedModel, if any."""
    if not served_model_dir or not fileio.isdir(served_model_dir):
        return None
    names = (n.rstrip("/") for n in fileio.listdir(served_model_dir))
    for version in sorted((int(n) for n in names if n.isdigit()), reverse=True):
        path = os.path.join(served_model_dir, str(version))
        if tf.saved_model.contains_saved_model(path):
            return path
    return None


def evaluate_baseline(
    evaluate: Callable[[str], EvalMetrics],
    baseline: types.Artifact | None,
    served_model_dir: str,
) -> tuple[EvalMetrics | None, str, list[str]]:
    """Evaluates the last blessed model, or the served model when it is gone.

    Returns:
        (metrics or None, what was evaluated, notes). None with no notes is a
        first run (no blessed model yet); None with notes means a baseline
        exists but neither it nor a served model could be evaluated.
    """
    if baseline is None:
        return None, "", []
    path = path_utils.serving_model_path(baseline.uri)
    notes = []
    try:
        return evaluate(path), path, []
    except (ValueError, OSError, tf.errors.OpError) as e:
        notes.append(
            f"the last blessed model (artifact {baseline.id}, {baseline.uri}) cannot be "
            f"evaluated: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        )
    served = latest_served_model(served_model_dir)
    if served is None:
        notes.append(f"and no served model was found under {served_model_dir!r}")
        return None, "", notes
    try:
        notes.append(f"compared with the served model {served} instead")
        return evaluate(served), served, notes
    except (ValueError, OSError, tf.errors.OpError) as e:
        notes.append(f"which cannot be evaluated either: {str(e).splitlines()[0][:300]}")
        return None, "", notes


class Executor(base_executor.BaseExecutor):
    """Evaluates candidate and baseline on the same split and writes a ModelBlessing.

    The blessing carries the same custom properties as TFX's Evaluator
    (`blessed`, `current_model(_id)`, `baseline_model(_id)`), so the stock
    Pusher and `LatestBlessedModelStrategy` work with it unchanged.
    """

    def Do(  # noqa: N802
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Computes metrics, decides the blessing and records both."""
        self._log_startup(input_dict, output_dict, exec_properties)
        gate = GateConfig.from_json_dict(json.loads(exec_properties[GATE_CONFIG_KEY]))
        events = TaskEvents.from_json_dict(json.loads(exec_properties[EVENTS_KEY]))
        k = int(exec_properties[K_KEY])
        schema = io_utils.SchemaReader().read(
            io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(input_dict["schema"]))
        )
        feature_spec = event_feature_spec(schema)
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        splits = artifact_utils.decode_split_names(examples.split_names)
        if gate.split not in splits:
            raise ValueError(f"examples have no split {gate.split!r}; they have {splits}")
        pattern = os.path.join(artifact_utils.get_split_uri([examples], gate.split), "*")

        def evaluate(model_dir: str) -> EvalMetrics:
            return evaluate_saved_model(
                model_dir, pattern, k=k, events=events, feature_spec=feature_spec
            )

        model = artifact_utils.get_single_instance(input_dict["model"])
        baseline_model = (input_dict.get("baseline_model") or [None])[0]
        candidate = evaluate(path_utils.serving_model_path(model.uri))
        baseline, baseline_dir, notes = evaluate_baseline(
            evaluate, baseline_model, exec_properties.get(SERVED_MODEL_DIR_KEY) or ""
        )
        for note in notes:
            logging.warning("Baseline: %s", note)
        blessed, reasons = verdict(gate, candidate, baseline)
        if baseline is None and notes and gate.require_baseline:
            blessed = False
            reasons.append(
                "no baseline to compare with: "
                + "; ".join(notes)
                + ". Restore the artifact, or set GateConfig.require_baseline=False to "
                "gate on the thresholds alone"
            )
        logging.info(
            "Candidate %s, baseline %s: blessed=%s %s", candidate, baseline, blessed, reasons
        )

        evaluation = artifact_utils.get_single_instance(output_dict["evaluation"])
        report = {
            "candidate": dataclasses.asdict(candidate),
            "baseline": dataclasses.asdict(baseline) if baseline else None,
            "baseline_model_dir": baseline_dir,
            "baseline_notes": notes,
            "gate": gate.to_json_dict(),
            "events": events.to_json_dict(),
            "blessed": blessed,
            "reasons": reasons,
        }
        io_utils.write_string_file(
            os.path.join(evaluation.uri, METRICS_FILE), json.dumps(report, indent=2)
        )

        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        blessing.set_string_custom_property(
            constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri
        )
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
        if baseline_model is not None:
            blessing.set_string_custom_property(
                constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline_model.uri
            )
            blessing.set_int_custom_property(
                constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline_model.id
            )
        blessing.set_string_custom_property(
            constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY, "; ".join(reasons) or "passed"
        )
        name = constants.BLESSED_FILE_NAME if blessed else constants.NOT_BLESSED_FILE_NAME
        io_utils.write_string_file(os.path.join(blessing.uri, name), "")
        blessing.set_int_custom_property(
            constants.ARTIFACT_PROPERTY_BLESSED_KEY,
            constants.BLESSED_VALUE if blessed else constants.NOT_BLESSED_VALUE,
        )
