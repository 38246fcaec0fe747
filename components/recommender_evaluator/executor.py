"""Executor of RecommenderEvaluator: TFX's Evaluator, robust to a vanished baseline.

Before TFMA runs, the last blessed model (the resolver's baseline) is checked:
when its files were deleted, or it predates the `evaluate` signature, the
newest served version that can be evaluated stands in for it (the model in
production is what a candidate must not regress from). With neither, the
evaluation runs without a baseline and, under `GateConfig.require_baseline`,
the candidate is not blessed (fail closed). After TFMA, the blessing carries a
readable `blessing_message` listing every failed threshold, and the evaluation
output a `gate.json` with it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.proto import validation_result_pb2
from tfx import types
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import io_utils, path_utils, proto_utils

from components.recommender_evaluator.spec import CANDIDATE
from contracts import names

SERVED_MODEL_DIR_KEY = "served_model_dir"
REQUIRE_BASELINE_KEY = "require_baseline"
GATE_REPORT = "gate.json"
MESSAGE_KEY = constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY
EVALUATE_OUTPUTS = (
    names.RANK_OUTPUT,
    names.RANK_WITH_SEEN_OUTPUT,
    names.POPULAR_RANK_OUTPUT,
    names.RATING_OUTPUT,
    names.BIAS_RATING_OUTPUT,
    names.RATING_LABEL_OUTPUT,
    names.RATING_WEIGHT_OUTPUT,
    names.RETRIEVAL_WEIGHT_OUTPUT,
)


def evaluation_problem(model_dir: str) -> str | None:
    """Why the SavedModel at `model_dir` cannot be evaluated, or None if it can."""
    if not tf.saved_model.contains_saved_model(model_dir):
        return f"no SavedModel at {model_dir} (its files were deleted?)"
    try:
        signatures = tf.saved_model.load(model_dir).signatures
    except (OSError, ValueError, tf.errors.OpError) as e:
        return f"it does not load: {str(e).splitlines()[0][:300]}"
    if names.EVALUATE not in signatures or names.EVAL_FEATURES not in signatures:
        return f"it has no {names.EVALUATE!r}/{names.EVAL_FEATURES!r} signatures (an older export)"
    missing = sorted(set(EVALUATE_OUTPUTS) - set(signatures[names.EVALUATE].structured_outputs))
    return f"its {names.EVALUATE!r} signature lacks {missing}" if missing else None


def latest_served_model(served_model_dir: str) -> tuple[str | None, list[str]]:
    """The newest version under `<serving_root>/<model_name>` that can be evaluated, and notes."""
    if not served_model_dir or not fileio.isdir(served_model_dir):
        return None, [f"no served model under {served_model_dir!r}"]
    notes = []
    entries = (n.rstrip("/") for n in fileio.listdir(served_model_dir))
    for version in sorted((int(n) for n in entries if n.isdigit()), reverse=True):
        path = os.path.join(served_model_dir, str(version))
        problem = evaluation_problem(path)
        if problem is None:
            return path, notes
        notes.append(f"served version {version} cannot be evaluated: {problem}")
    return None, [*notes, f"no served model under {served_model_dir!r} can be evaluated"]


def describe_failures(result: validation_result_pb2.ValidationResult) -> list[str]:
    """One line per failed threshold: metric, value, threshold and slice."""
    lines = []
    for per_slice in result.metric_validations_per_slice:
        where = (
            ", ".join(
                f"{c.column}={c.bytes_value.decode() or c.int64_value or c.float_value}"
                for c in per_slice.slice_key.single_slice_keys
            )
            or "overall"
        )
        for failure in per_slice.failures:
            key, threshold = failure.metric_key, failure.metric_threshold
            name = key.name + (" change vs baseline" if key.is_diff else "")
            bound = (
                threshold.change_threshold
                if threshold.HasField("change_threshold")
                else threshold.value_threshold
            )
            bound_text = " ".join(str(bound).split())
            lines.append(
                f"{name} = {failure.metric_value.double_value.value:.4f} fails {{{bound_text}}}"
                f" ({where})"
            )
    if result.missing_slices:
        lines.append(f"missing slices: {list(result.missing_slices)}")
    return lines


def threshold_report(
    eval_config: tfma.EvalConfig,
    metrics: dict[tuple[str, bool], float],
    result: validation_result_pb2.ValidationResult,
) -> list[dict]:
    """Every gated threshold on the overall slice: name, bound, the candidate's value, passed.

    Args:
        eval_config: The Evaluator's config (its per-slice thresholds).
        metrics: The candidate's overall figures by (metric name, is a change vs
            the baseline).
        result: TFMA's validation result (which thresholds failed).

    A threshold passes only if TFMA did not fail it and its value is a finite
    number: a missing or NaN figure never shows as passed. A change against a
    baseline when no baseline was evaluated (a first run) is `passed: None`.
    """
    failed = {
        (f.metric_key.name, f.metric_key.is_diff)
        for per_slice in result.metric_validations_per_slice
        if not per_slice.slice_key.single_slice_keys
        for f in per_slice.failures
    }
    out = []
    for spec in eval_config.metrics_specs:
        for name, per_slice in sorted(spec.per_slice_thresholds.items()):
            for entry in per_slice.thresholds:
                threshold = entry.threshold
                kinds = []
                if threshold.HasField("value_threshold"):
                    bound = threshold.value_threshold
                    text = " and ".join(
                        f"{op} {getattr(bound, field).value:g}"
                        for field, op in (("lower_bound", ">="), ("upper_bound", "<="))
                        if bound.HasField(field)
                    )
                    kinds.append((False, text))
                if threshold.HasField("change_threshold"):
                    change = threshold.change_threshold
                    higher = change.direction == tfma.MetricDirection.HIGHER_IS_BETTER
                    limit = change.absolute.value
                    text = f"change vs baseline {'>=' if higher else '<='} {limit:g}"
                    kinds.append((True, text))
                for is_diff, text in kinds:
                    value = metrics.get((name, is_diff))
                    finite = value is not None and math.isfinite(value)
                    passed = finite and (name, is_diff) not in failed
                    if is_diff and value is None:
                        passed = None  # no baseline was evaluated: not checked
                    out.append(
                        {
                            "metric": name + (" change vs baseline" if is_diff else ""),
                            "bound": text,
                            "value": value if finite else None,
                            "passed": passed,
                        }
                    )
    return out


def overall_figures(evaluation: str) -> dict[tuple[str, bool], float]:
    """The candidate's overall figures of an evaluation, by (name, is a change vs baseline)."""
    figures = {}
    for per_slice in tfma.load_metrics(evaluation):
        if per_slice.slice_key.single_slice_keys:
            continue
        for entry in per_slice.metric_keys_and_values:
            key = entry.key
            if key.model_name == CANDIDATE and entry.value.HasField("double_value"):
                figures[(key.name, key.is_diff)] = entry.value.double_value.value
    return figures


class Executor(evaluator_executor.Executor):
    """TFX's Evaluator executor with a baseline that can always be evaluated, or none."""

    def Do(  # noqa: N802
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Checks the baseline, runs TFMA, and explains the blessing."""
        baseline_key = standard_component_specs.BASELINE_MODEL_KEY
        baseline = (input_dict.get(baseline_key) or [None])[0]
        notes, dropped = [], False
        if baseline is not None:
            problem = evaluation_problem(path_utils.serving_model_path(baseline.uri))
            if problem:
                notes.append(
                    f"the last blessed model (artifact {baseline.id}, {baseline.uri}) "
                    f"cannot be evaluated: {problem}"
                )
                served, served_notes = latest_served_model(
                    exec_properties.get(SERVED_MODEL_DIR_KEY) or ""
                )
                notes.extend(served_notes)
                input_dict = dict(input_dict)
                if served is None:
                    del input_dict[baseline_key]
                    dropped = True
                else:
                    notes.append(f"compared with the served model {served} instead")
                    stand_in = standard_artifacts.Model()
                    stand_in.uri = os.path.join(self._get_tmp_dir(), "served_baseline")
                    io_utils.copy_dir(served, path_utils.serving_model_path(stand_in.uri))
                    stand_in.id = baseline.id
                    input_dict[baseline_key] = [stand_in]
            for note in notes:
                logging.warning("Baseline: %s", note)
        super().Do(input_dict, output_dict, exec_properties)
        eval_config = tfma.EvalConfig()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.EVAL_CONFIG_KEY], eval_config
        )
        self._explain(
            output_dict,
            notes,
            dropped and bool(exec_properties.get(REQUIRE_BASELINE_KEY)),
            eval_config,
        )

    def _explain(
        self, output_dict, notes: list[str], fail_closed: bool, eval_config: tfma.EvalConfig
    ) -> None:
        evaluation = artifact_utils.get_single_uri(output_dict[constants.EVALUATION_KEY])
        blessing = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.BLESSING_KEY]
        )
        result = tfma.load_validation_result(evaluation)
        failures = describe_failures(result)
        if fail_closed:
            failures.append(
                "no baseline to compare with: " + "; ".join(notes) + ". Restore the "
                "artifact, or set GateConfig.require_baseline=False to gate on the other "
                "thresholds alone"
            )
            for name in (constants.BLESSED_FILE_NAME, constants.NOT_BLESSED_FILE_NAME):
                path = os.path.join(blessing.uri, name)
                if fileio.exists(path):
                    fileio.remove(path)
            io_utils.write_string_file(
                os.path.join(blessing.uri, constants.NOT_BLESSED_FILE_NAME), ""
            )
            blessing.set_int_custom_property(
                constants.ARTIFACT_PROPERTY_BLESSED_KEY, constants.NOT_BLESSED_VALUE
            )
        blessed = blessing.get_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY)
        message = "; ".join(failures) or "passed"
        blessing.set_string_custom_property(MESSAGE_KEY, message)
        if notes:
            blessing.set_string_custom_property("baseline_notes", "; ".join(notes))
        report = {
            "blessed": bool(blessed),
            "thresholds": threshold_report(eval_config, overall_figures(evaluation), result),
            "failures": failures,
            "baseline_notes": notes,
        }
        io_utils.write_string_file(
            os.path.join(evaluation, GATE_REPORT), json.dumps(report, indent=2)
        )
        logging.info("Blessed: %s. %s", bool(blessed), message)
