"""The gate as TFMA thresholds: what passes, what fails closed; the anomalies gate's message."""

import math

import pytest
import tensorflow_model_analysis as tfma
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_model_analysis.evaluators import metrics_validator
from tensorflow_model_analysis.metrics import metric_specs

from components.anomalies_gate import describe_anomalies
from components.recommender_evaluator.executor import describe_failures, threshold_report
from components.recommender_evaluator.metrics import metric_names
from components.recommender_evaluator.spec import BASELINE, CANDIDATE, GateConfig

K = 100
GOOD = {"rmse": 0.83, "rmse_lift": 0.05, f"top_{K}_hit_rate": 0.34, f"top_{K}_lift": 0.5}


def validate(gate, candidate, baseline=None):
    """TFMA's own validation of candidate (and baseline) metric values against the gate.

    The config goes through the defaults TFX's Evaluator applies; metric values are
    given under the keys TFMA computes (a change threshold reads candidate - baseline).
    """
    config = tfma.utils.update_eval_config_with_defaults(
        gate.eval_config(K), has_baseline=baseline is not None, rubber_stamp=True
    )
    thresholds = metric_specs.metric_thresholds_from_metrics_specs(
        config.metrics_specs, eval_config=config
    )
    metrics = {}
    for key in thresholds:
        if key.model_name == BASELINE or key.name not in candidate:
            continue
        value = candidate[key.name]
        metrics[key] = value - baseline[key.name] if key.is_diff else value
    overall = metrics_validator.validate_metrics(((), metrics), config)
    # Tag events carry no rating: their slice has NaN rating metrics, and is not gated.
    tags = {key: math.nan for key in thresholds if key.model_name != BASELINE}
    assert metrics_validator.validate_metrics(
        ((("event_type", "tag"),), tags), config
    ).validation_ok
    return overall


def test_a_model_beating_the_baselines_passes_first_and_against_a_baseline():
    assert validate(GateConfig(), GOOD).validation_ok
    slightly_worse = {**GOOD, "rmse": 0.835, f"top_{K}_lift": 0.46}
    assert validate(GateConfig(), slightly_worse, baseline=GOOD).validation_ok


def test_champion_challenger_compares_lifts_not_hit_rates_of_different_windows():
    """A newer window excludes more of a user's items: its raw hit rate may be lower
    than the served model's on the same events while its lift over its own popular
    list (same exclusions) is higher. The replay's numbers (synthetic span 8):"""
    served = {"rmse": 0.5117, "rmse_lift": 0.01, f"top_{K}_hit_rate": 0.3227, f"top_{K}_lift": 0.42}
    newer = {"rmse": 0.5056, "rmse_lift": 0.02, f"top_{K}_hit_rate": 0.2624, f"top_{K}_lift": 0.54}
    assert validate(GateConfig(), newer, baseline=served).validation_ok
    assert not validate(GateConfig(), served, baseline=newer).validation_ok  # -0.12 lift


@pytest.mark.parametrize(
    "change, failed",
    [
        ({"rmse_lift": 0.005}, "rmse_lift"),  # under the 1% margin over the bias baseline
        ({f"top_{K}_lift": 0.01}, f"top_{K}_lift"),  # under the 5% margin over popularity
        ({"rmse_lift": math.nan}, "rmse_lift"),  # NaN never passes
        ({f"top_{K}_lift": math.nan}, f"top_{K}_lift"),
    ],
)
def test_value_thresholds_fail_and_fail_closed(change, failed):
    result = validate(GateConfig(), {**GOOD, **change})
    assert not result.validation_ok
    assert [f.metric_key.name for f in result.metric_validations_per_slice[0].failures] == [failed]
    assert failed in describe_failures(result)[0]


@pytest.mark.parametrize(
    "candidate, baseline, failed",
    [
        ({**GOOD, "rmse": 0.85}, GOOD, "rmse"),  # 0.02 worse than the baseline
        ({**GOOD, f"top_{K}_lift": 0.44}, GOOD, f"top_{K}_lift"),  # 0.06 less lift
        ({**GOOD, "rmse": math.nan}, GOOD, "rmse"),  # NaN change never passes
        (
            {**GOOD, f"top_{K}_lift": math.inf},  # both popular lists hit nothing:
            {**GOOD, f"top_{K}_lift": math.inf},  # inf - inf is NaN
            f"top_{K}_lift",
        ),
    ],
)
def test_change_thresholds_against_the_last_blessed_model(candidate, baseline, failed):
    result = validate(GateConfig(), candidate, baseline=baseline)
    assert not result.validation_ok
    [failure] = result.metric_validations_per_slice[0].failures
    assert failure.metric_key.name == failed and failure.metric_key.is_diff
    assert describe_failures(result)[0].startswith(f"{failed} change vs baseline = ")


def test_a_missing_metric_fails():
    result = validate(GateConfig(), {k: v for k, v in GOOD.items() if k != "rmse_lift"})
    assert not result.validation_ok


def test_absolute_floors_are_off_by_default_and_available():
    poor = {**GOOD, "rmse": 1.4, f"top_{K}_hit_rate": 0.01}
    assert validate(GateConfig(), poor).validation_ok  # relative gate only
    assert not validate(GateConfig(max_rmse=1.0), poor).validation_ok
    assert not validate(GateConfig(min_top_k_accuracy=0.05), poor).validation_ok


def test_eval_config_wires_the_signatures_slices_and_metrics():
    config = GateConfig().eval_config(K)
    candidate, baseline = config.model_specs
    assert (candidate.name, baseline.name, baseline.is_baseline) == (CANDIDATE, BASELINE, True)
    assert candidate.signature_name == "evaluate"
    assert list(candidate.preprocessing_function_names) == ["eval_features"]
    assert [list(s.feature_keys) for s in config.slicing_specs] == [
        [],
        ["event_type"],
        ["user_activity"],
        ["item_popularity"],
        ["user_known"],
        ["item_known"],
    ]
    gated = config.metrics_specs[0].per_slice_thresholds
    assert set(gated) == {"rmse", "rmse_lift", f"top_{K}_lift"}
    assert set(
        GateConfig(min_top_k_accuracy=0.1).eval_config(K).metrics_specs[0].per_slice_thresholds
    ) == {
        *gated,
        f"top_{K}_hit_rate",
    }
    assert set(gated) <= set(metric_names((10, K)))
    for per_slice in gated.values():  # the overall slice only
        assert [list(t.slicing_specs) for t in per_slice.thresholds] == [[tfma.SlicingSpec()]]


def test_gate_config_validates_and_round_trips():
    gate = GateConfig(rmse_margin=0.02, max_rmse=1.2)
    assert GateConfig.from_json_dict(gate.to_json_dict()) == gate
    with pytest.raises(ValueError, match="min_top_k_accuracy"):
        GateConfig(min_top_k_accuracy=1.5)
    with pytest.raises(ValueError, match="max_lift_decrease=-0.1"):
        GateConfig(max_lift_decrease=-0.1)
    with pytest.raises(ValueError, match="unknown GateConfig field"):
        GateConfig.from_json_dict({"max_rmse": 1.0, "oops": 2})


def test_anomalies_are_described_per_split_and_feature():
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info["rating"]
    info.short_description = "Out-of-range values"
    info.description = "Unexpectedly high value: 7.5>5."
    lines = describe_anomalies({"train": anomalies, "eval": anomalies_pb2.Anomalies()})
    assert lines == ["train/rating: Out-of-range values: Unexpectedly high value: 7.5>5."]


def _figures(candidate, baseline=None):
    figures = {(name, False): value for name, value in candidate.items()}
    if baseline:
        figures.update({(n, True): v - baseline[n] for n, v in candidate.items()})
    return figures


def test_the_gate_report_lists_every_threshold_with_its_value():
    gate = GateConfig(max_rmse=0.9)
    report = threshold_report(gate.eval_config(K), _figures(GOOD), validate(gate, GOOD))
    assert {(r["metric"], r["bound"], r["value"], r["passed"]) for r in report} == {
        ("rmse", "<= 0.9", 0.83, True),
        ("rmse change vs baseline", "change vs baseline <= 0.01", None, None),  # first run
        ("rmse_lift", ">= 0.01", 0.05, True),
        (f"top_{K}_lift", ">= 0.05", 0.5, True),
        (f"top_{K}_lift change vs baseline", "change vs baseline >= -0.05", None, None),
    }
    worse = {**GOOD, "rmse": 0.85, "rmse_lift": math.nan}
    result = validate(gate, worse, baseline=GOOD)
    rows = {
        r["metric"]: r for r in threshold_report(gate.eval_config(K), _figures(worse, GOOD), result)
    }
    assert rows["rmse change vs baseline"]["passed"] is False
    assert rows["rmse change vs baseline"]["value"] == pytest.approx(0.02)
    assert rows["rmse_lift"] == {
        "metric": "rmse_lift",
        "bound": ">= 0.01",
        "value": None,
        "passed": False,
    }
    assert rows[f"top_{K}_lift change vs baseline"]["passed"] is True
