"""The gate: when a candidate is blessed, as a TFMA `EvalConfig` with thresholds.

The default gate holds on any data set because its floors are relative to
trivial baselines computed from the same training events and scored on the
same eval events: the candidate's RMSE must be lower than the mean + damped
biases model's by `rmse_margin` (relative), and its top-K hit rate higher than
the most-popular-unseen list's by `top_k_margin` (relative). Against the last
blessed model (TFMA change thresholds) it may lose at most `max_rmse_increase`
RMSE and `max_lift_decrease` top-K lift.

The top-K comparison is on lift, not on raw hit rates: each model ranks with
its own training pairs excluded, so two models trained on different windows
score the same eval event under different exclusions (an item the user met
after the older model's window is a miss for the newer model and may be a hit
for the older one). A model's hit rate and its popular list's share one
exclusion set, so their ratio compares across windows; on one window (same
exclusions, same popular list) a lift change is the hit-rate change divided by
the popular list's hit rate. Absolute floors exist but are off by default: a
number set on one data set is no gate for another.
"""

from __future__ import annotations

import dataclasses
import json

import tensorflow_model_analysis as tfma

from components.recommender_evaluator.metrics import NAME as METRICS_NAME
from contracts import jsonable, names
from contracts.names import EVAL

METRICS_MODULE = "components.recommender_evaluator.metrics"
CANDIDATE, BASELINE = "candidate", "baseline"
SLICE_FEATURES = (
    "event_type",
    names.USER_ACTIVITY_SLICE,
    names.ITEM_POPULARITY_SLICE,
    names.USER_KNOWN_SLICE,
    names.ITEM_KNOWN_SLICE,
)
"""Slices the metrics are also computed on (raw `event_type`, the rest from `eval_features`)."""


@dataclasses.dataclass(frozen=True)
class GateConfig(jsonable.JsonDataclass):
    """When a candidate model is blessed.

    Attributes:
        rmse_margin: The candidate's RMSE must be at least this share below the
            bias baseline's (`rmse_lift = 1 - rmse / bias_rmse >= rmse_margin`).
        top_k_margin: The candidate's top-K hit rate must be at least this share
            above the most-popular-unseen list's (`top_K_lift >= top_k_margin`).
        max_rmse: Optional absolute ceiling on RMSE (None: off).
        min_top_k_accuracy: Optional absolute floor on the top-K hit rate (None: off).
        max_rmse_increase: Allowed RMSE increase over the last blessed model.
        max_lift_decrease: Allowed decrease of `top_K_lift` below the last blessed
            model's (0.05: the candidate's advantage over its popular list may
            shrink by 5% of that list's hit rate).
        split: Examples split evaluated.
        require_baseline: When a blessed baseline exists but neither it nor the
            served model can be evaluated (e.g. its files were deleted), the
            candidate is not blessed (fail closed). False gates on the other
            thresholds alone then, as on a first run.

    Raises:
        ValueError: on a negative allowance or an out-of-range floor.
    """

    rmse_margin: float = 0.01
    top_k_margin: float = 0.05
    max_rmse: float | None = None
    min_top_k_accuracy: float | None = None
    max_rmse_increase: float = 0.01
    max_lift_decrease: float = 0.05
    split: str = EVAL
    require_baseline: bool = True

    def __post_init__(self) -> None:
        if self.max_rmse is not None and self.max_rmse <= 0:
            raise ValueError(f"max_rmse must be positive or None, got {self.max_rmse}")
        if self.min_top_k_accuracy is not None and not 0 <= self.min_top_k_accuracy <= 1:
            raise ValueError(f"min_top_k_accuracy must be in [0, 1], got {self.min_top_k_accuracy}")
        if self.max_rmse_increase < 0 or self.max_lift_decrease < 0:
            raise ValueError(
                "allowed changes must be >= 0, got max_rmse_increase="
                f"{self.max_rmse_increase}, max_lift_decrease={self.max_lift_decrease}"
            )

    def thresholds(self, k: int) -> dict[str, tfma.MetricThreshold]:
        """TFMA thresholds by metric name (value thresholds and change thresholds)."""

        def value(lower=None, upper=None) -> tfma.GenericValueThreshold:
            bounds = {"lower_bound": lower, "upper_bound": upper}
            return tfma.GenericValueThreshold(
                **{key: {"value": v} for key, v in bounds.items() if v is not None}
            )

        out = {
            "rmse_lift": tfma.MetricThreshold(value_threshold=value(lower=self.rmse_margin)),
            f"top_{k}_lift": tfma.MetricThreshold(
                value_threshold=value(lower=self.top_k_margin),
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                    absolute={"value": -self.max_lift_decrease},
                ),
            ),
            "rmse": tfma.MetricThreshold(
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.LOWER_IS_BETTER,
                    absolute={"value": self.max_rmse_increase},
                )
            ),
        }
        if self.max_rmse is not None:
            out["rmse"].value_threshold.CopyFrom(value(upper=self.max_rmse))
        if self.min_top_k_accuracy is not None:
            out[f"top_{k}_hit_rate"] = tfma.MetricThreshold(
                value_threshold=value(lower=self.min_top_k_accuracy)
            )
        return out

    def eval_config(self, k: int) -> tfma.EvalConfig:
        """The `EvalConfig` of the stock Evaluator: models, slices, metrics, thresholds.

        Args:
            k: The gated depth (`ModelConfig.top_k`); top-10 is reported too.
        """
        spec = {
            "signature_name": names.EVALUATE,
            "preprocessing_function_names": [names.EVAL_FEATURES],
        }
        return tfma.EvalConfig(
            model_specs=[
                tfma.ModelSpec(name=CANDIDATE, **spec),
                tfma.ModelSpec(name=BASELINE, is_baseline=True, **spec),
            ],
            slicing_specs=[
                tfma.SlicingSpec(),
                *(tfma.SlicingSpec(feature_keys=[f]) for f in SLICE_FEATURES),
            ],
            metrics_specs=[
                tfma.MetricsSpec(
                    metrics=[
                        tfma.MetricConfig(class_name="ExampleCount"),
                        tfma.MetricConfig(
                            class_name="RecommenderMetrics",
                            module=METRICS_MODULE,
                            config=json.dumps({"ks": sorted({10, k}), "name": METRICS_NAME}),
                        ),
                    ],
                    # On the overall slice only: a slice (e.g. tag events, which carry no
                    # rating) may legitimately have no value for a gated metric.
                    per_slice_thresholds={
                        name: tfma.PerSliceMetricThresholds(
                            thresholds=[
                                tfma.PerSliceMetricThreshold(
                                    slicing_specs=[tfma.SlicingSpec()], threshold=threshold
                                )
                            ]
                        )
                        for name, threshold in self.thresholds(k).items()
                    },
                )
            ],
        )
