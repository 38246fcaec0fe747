"""The gate's verdict, and the anomalies gate's message."""

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.anomalies_gate import describe_anomalies
from components.recommender_evaluator.spec import GateConfig, verdict
from models.evaluation import EvalMetrics

GATE = GateConfig(
    max_rmse=0.9, min_top_k_accuracy=0.2, max_rmse_increase=0.01, max_accuracy_decrease=0.01
)


def metrics(rmse, acc):
    return EvalMetrics(rmse=rmse, top_k_accuracy=acc, k=100, num_rated=10, num_retrieval=10)


def test_blessed_without_baseline_when_thresholds_pass():
    assert verdict(GATE, metrics(0.85, 0.25), None) == (True, [])


@pytest.mark.parametrize(
    "candidate,baseline,reason",
    [
        (metrics(0.95, 0.25), None, "rmse 0.9500 > max_rmse 0.9"),
        (metrics(0.85, 0.15), None, "top_100_accuracy 0.1500 < 0.2"),
        (metrics(0.87, 0.25), metrics(0.85, 0.25), "worse than baseline 0.8500"),
        (metrics(0.85, 0.23), metrics(0.85, 0.25), "worse than baseline 0.2500"),
    ],
)
def test_not_blessed_with_reason(candidate, baseline, reason):
    blessed, reasons = verdict(GATE, candidate, baseline)
    assert not blessed
    assert any(reason in r for r in reasons), reasons


def test_small_regressions_within_allowance_are_blessed():
    assert verdict(GATE, metrics(0.855, 0.245), metrics(0.85, 0.25))[0]


def test_gate_config_validates_and_round_trips():
    assert GateConfig.from_json_dict(GATE.to_json_dict()) == GATE
    with pytest.raises(ValueError, match="min_top_k_accuracy"):
        GateConfig(min_top_k_accuracy=1.5)
    with pytest.raises(ValueError, match="unknown GateConfig field"):
        GateConfig.from_json_dict({"max_rmse": 1.0, "oops": 2})


def test_anomalies_are_described_per_split_and_feature():
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info["rating"]
    info.short_description = "Out-of-range values"
    info.description = "Unexpectedly high value: 7.5>5."
    lines = describe_anomalies({"train": anomalies, "eval": anomalies_pb2.Anomalies()})
    assert lines == ["train/rating: Out-of-range values: Unexpectedly high value: 7.5>5."]


@pytest.mark.parametrize(
    "candidate, baseline, reason",
    [
        (metrics(float("nan"), 0.3), None, "candidate rmse is nan"),
        (metrics(0.85, float("nan")), None, "candidate top_k_accuracy is nan"),
        (metrics(float("inf"), 0.3), None, "candidate rmse is inf"),
        (metrics(0.85, 0.3), metrics(float("nan"), 0.3), "baseline rmse is nan"),
    ],
)
def test_non_finite_metrics_never_bless(candidate, baseline, reason):
    blessed, reasons = verdict(GATE, candidate, baseline)
    assert not blessed
    assert any(reason in r for r in reasons), reasons
