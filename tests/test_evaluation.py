"""Evaluation of the small hand-built world: in process and through TFX's Evaluator (TFMA).

Eval events and their hand-worked answers (k = 2; ratings = scale * (<u, i> + 3),
the bias baseline = scale * (3 + 0.5 for u1 + 0.25 for i1)):

    event            rank  with seen  popular  rating (scale 1)  bias
    u1 i3 watch      2     3          3        3.5               3.5
    u2 i3 watch      1     2          3        3.5               3.0
    u3 i2 watch      3     4          2        3.16              3.0
    stranger i1 tag  2     2          2        (unrated)

Top-2 hit rate 3/4, with seen items 2/4, most popular unseen 2/4 (lift 0.5).
"""

import json
import math
import os
import shutil

import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from testlib import example, small_world_module, users_transform
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2  # noqa: F401  (registers TFX protos)
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.recommender_evaluator import executor
from components.recommender_evaluator.spec import GateConfig
from contracts import names
from models.evaluation import evaluate_saved_model
from models.export import export_serving_model

SCHEMA_FILE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), os.pardir, "schema", "schema.pbtxt"
)
EASY = (3.6, 3.4, 3.1)  # the model is closer than the bias baseline
HARD = (4.0, 3.0, 3.0)  # the bias baseline is closer


def events(labels, scale=1.0):
    return [
        example("u1", "i3", "watch", labels[0] * scale),
        example("u2", "i3", "watch", labels[1] * scale),
        example("u3", "i2", "watch", labels[2] * scale),
        example("stranger", "i1", "tag"),
    ]


def rmse(predicted, labels):
    return math.sqrt(sum((p - y) ** 2 for p, y in zip(predicted, labels, strict=True)) / 3)


@pytest.fixture(scope="module")
def output():
    return users_transform(["u1", "u2", "u3"])


def save_model(output, directory, scale=1.0):
    module = small_world_module(output, offset=3.0, scale=scale)
    export_serving_model(module, directory)
    return directory


def write_examples(path, records):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in records:
            writer.write(record)


def test_in_process_metrics_are_hand_worked(output, tmp_path):
    model_dir = save_model(output, str(tmp_path / "model"))
    write_examples(str(tmp_path / "eval.gz"), events(EASY))
    metrics = evaluate_saved_model(model_dir, str(tmp_path / "eval.gz"), k=2, batch_size=3)
    assert metrics.top_k_accuracy == pytest.approx(0.75)
    assert metrics.top_k_accuracy_with_seen == pytest.approx(0.5)
    assert metrics.popular_top_k_accuracy == pytest.approx(0.5)
    assert metrics.rmse == pytest.approx(rmse((3.5, 3.5, 3.16), EASY), rel=1e-5)
    assert metrics.bias_rmse == pytest.approx(rmse((3.5, 3.0, 3.0), EASY), rel=1e-5)
    assert (metrics.num_rated, metrics.num_retrieval) == (3, 4)
    with pytest.raises(ValueError, match="no eval examples match"):
        evaluate_saved_model(model_dir, str(tmp_path / "none*"), k=2)


def artifact(kind, uri, **properties):
    a = kind()
    a.uri = str(uri)
    a.id = properties.pop("id", 0)
    for key, value in properties.items():
        setattr(a, key, value)
    return a


def run_evaluator(tmp_path, model_dir, records, gate, baseline=None, served_dir="", k=2):
    """Runs RecommenderEvaluator's executor (TFX's Evaluator + TFMA) on real artifacts."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_examples(str(tmp_path / "examples" / "Split-eval" / "data.gz"), records)
    os.makedirs(tmp_path / "schema", exist_ok=True)
    shutil.copy(SCHEMA_FILE, tmp_path / "schema" / "schema.pbtxt")
    candidate = artifact(standard_artifacts.Model, tmp_path / "candidate", id=7)
    shutil.copytree(model_dir, tmp_path / "candidate" / "Format-Serving")
    inputs = {
        standard_component_specs.EXAMPLES_KEY: [
            artifact(standard_artifacts.Examples, tmp_path / "examples", split_names='["eval"]')
        ],
        standard_component_specs.SCHEMA_KEY: [
            artifact(standard_artifacts.Schema, tmp_path / "schema")
        ],
        standard_component_specs.MODEL_KEY: [candidate],
    }
    if baseline is not None:
        inputs[standard_component_specs.BASELINE_MODEL_KEY] = [
            artifact(standard_artifacts.Model, baseline, id=3)
        ]
    outputs = {
        standard_component_specs.EVALUATION_KEY: [
            artifact(standard_artifacts.ModelEvaluation, tmp_path / "evaluation")
        ],
        standard_component_specs.BLESSING_KEY: [
            artifact(standard_artifacts.ModelBlessing, tmp_path / "blessing")
        ],
    }
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=[], unique_id="evaluator", tmp_dir=str(tmp_path / "executor_tmp")
    )
    executor.Executor(context).Do(
        inputs,
        outputs,
        {
            standard_component_specs.EVAL_CONFIG_KEY: proto_utils.proto_to_json(
                gate.eval_config(k)
            ),
            standard_component_specs.EXAMPLE_SPLITS_KEY: json.dumps(["eval"]),
            executor.SERVED_MODEL_DIR_KEY: str(served_dir),
            executor.REQUIRE_BASELINE_KEY: int(gate.require_baseline),
        },
    )
    blessing = outputs[standard_component_specs.BLESSING_KEY][0]
    with open(tmp_path / "evaluation" / executor.GATE_REPORT) as f:
        report = json.load(f)
    return blessing, report, str(tmp_path / "evaluation")


def overall_metrics(evaluation_dir, model=None):
    """Overall metrics; without a baseline, TFX names the only model "" (model=None)."""
    result = tfma.load_eval_result(evaluation_dir, model_name=model)
    [overall] = [m for key, m in result.slicing_metrics if key == ()]
    return {name: value["doubleValue"] for name, value in overall[""][""].items()}


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_tfma_metrics_are_hand_worked_and_the_gate_is_scale_free(output, tmp_path, scale):
    """Ratings on a 1-5 and a 2-10 scale: the relative gate blesses the model that beats
    the baselines on both, while an absolute RMSE ceiling set for one would fail the other."""
    model_dir = save_model(output, str(tmp_path / "model"), scale)
    blessing, report, evaluation = run_evaluator(
        tmp_path / "run", model_dir, events(EASY, scale), GateConfig()
    )
    metrics = overall_metrics(evaluation)
    model_rmse = rmse([scale * r for r in (3.5, 3.5, 3.16)], [scale * y for y in EASY])
    bias_rmse = rmse([scale * r for r in (3.5, 3.0, 3.0)], [scale * y for y in EASY])
    assert metrics["rmse"] == pytest.approx(model_rmse, rel=1e-5)
    assert metrics["bias_rmse"] == pytest.approx(bias_rmse, rel=1e-5)
    assert metrics["rmse_lift"] == pytest.approx(1 - model_rmse / bias_rmse, rel=1e-5)
    assert metrics["top_2_hit_rate"] == pytest.approx(0.75)
    assert metrics["top_2_hit_rate_with_seen"] == pytest.approx(0.5)
    assert metrics["popular_top_2_hit_rate"] == pytest.approx(0.5)
    assert metrics["top_2_lift"] == pytest.approx(0.5)
    assert metrics["top_10_hit_rate"] == pytest.approx(1.0)
    assert (metrics["rated_events"], metrics["retrieval_events"]) == (3, 4)
    assert blessing.get_int_custom_property("blessed") == 1, report
    assert report["failures"] == []
    absolute = GateConfig(max_rmse=0.15)
    blessing, report, _ = run_evaluator(
        tmp_path / "absolute", model_dir, events(EASY, scale), absolute
    )
    assert blessing.get_int_custom_property("blessed") == int(scale == 1.0), report


def test_a_model_that_does_not_beat_the_bias_baseline_is_not_blessed(output, tmp_path):
    model_dir = save_model(output, str(tmp_path / "model"))
    blessing, report, evaluation = run_evaluator(
        tmp_path / "run", model_dir, events(HARD), GateConfig()
    )
    assert overall_metrics(evaluation)["rmse_lift"] < 0
    assert blessing.get_int_custom_property("blessed") == 0
    assert any(f.startswith("rmse_lift = ") and "(overall)" in f for f in report["failures"])
    message = blessing.get_string_custom_property("blessing_message")
    assert "rmse_lift" in message and "lower_bound" in message


def test_slices_are_computed(output, tmp_path):
    model_dir = save_model(output, str(tmp_path / "model"))
    _, _, evaluation = run_evaluator(tmp_path / "run", model_dir, events(EASY), GateConfig())
    result = tfma.load_eval_result(evaluation)
    keys = {key for key, _ in result.slicing_metrics}
    assert (("event_type", "tag"),) in keys and (("event_type", "watch"),) in keys
    assert ((names.USER_KNOWN_SLICE, "new"),) in keys
    assert ((names.ITEM_POPULARITY_SLICE, "head"),) not in keys  # no eval event on i4
    watch = dict(result.slicing_metrics)[(("event_type", "watch"),)][""][""]
    assert watch["retrieval_events"]["doubleValue"] == 3


@pytest.mark.parametrize(
    "served, require, blessed, says",
    [
        (True, True, 1, "compared with the served model"),
        (False, True, 0, "Restore the artifact, or set GateConfig.require_baseline=False"),
        (False, False, 1, "no served model under"),
    ],
)
def test_a_vanished_baseline_is_replaced_by_the_served_model_or_fails_closed(
    output, tmp_path, served, require, blessed, says
):
    model_dir = save_model(output, str(tmp_path / "model"))
    served_dir = tmp_path / "serving" / "rec"
    if served:
        shutil.copytree(model_dir, served_dir / "1700000000")
    blessing, report, _ = run_evaluator(
        tmp_path / "run",
        model_dir,
        events(EASY),
        GateConfig(require_baseline=require),
        baseline=tmp_path / "deleted-baseline",
        served_dir=served_dir,
    )
    assert blessing.get_int_custom_property("blessed") == blessed, report
    text = " ".join(report["baseline_notes"] + report["failures"])
    assert "the last blessed model (artifact 3" in text and says in text


def test_a_worse_candidate_fails_the_change_threshold(output, tmp_path):
    good = save_model(output, str(tmp_path / "good"))
    baseline = tmp_path / "baseline"
    shutil.copytree(good, baseline / "Format-Serving")
    worse = small_world_module(output, offset=3.3)  # every rating 0.3 too high
    export_serving_model(worse, str(tmp_path / "worse"))
    blessing, report, _ = run_evaluator(
        tmp_path / "run", str(tmp_path / "worse"), events(EASY), GateConfig(), baseline=baseline
    )
    assert blessing.get_int_custom_property("blessed") == 0
    assert any(f.startswith("rmse change vs baseline") for f in report["failures"]), report
