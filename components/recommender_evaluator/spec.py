"""Blessing thresholds of the recommender evaluator, and the verdict they give."""

from __future__ import annotations

import dataclasses
import math

from contracts import jsonable
from contracts.names import EVAL
from models.evaluation import EvalMetrics


@dataclasses.dataclass(frozen=True)
class GateConfig(jsonable.JsonDataclass):
    """When a candidate model is blessed.

    A candidate is blessed if its absolute metrics pass and, when a previously
    blessed baseline exists, it is not worse than the baseline by more than the
    allowed change. Which events are scored, and at which K, come from the
    model's `TaskEvents` and `top_k`.

    Attributes:
        max_rmse: Highest acceptable RMSE on rated eval events; the default is
            the product's quality floor (a mean + regularised biases baseline
            reaches 0.875 on the embedded data).
        min_top_k_accuracy: Lowest acceptable top-K accuracy on retrieval events;
            the default is the product's floor (the 100 most-rated unseen
            movies reach 0.221, or 0.155 without excluding seen ones).
        max_rmse_increase: Allowed RMSE increase over the baseline.
        max_accuracy_decrease: Allowed top-K accuracy decrease below the baseline.
        split: Examples split evaluated.
        require_baseline: When a blessed baseline exists but neither it nor the
            served model can be evaluated (e.g. its files were deleted), the
            candidate is not blessed (fail closed). False gates on the
            thresholds alone then, as on a first run.
    """

    max_rmse: float = 0.86
    min_top_k_accuracy: float = 0.25
    max_rmse_increase: float = 0.01
    max_accuracy_decrease: float = 0.01
    split: str = EVAL
    require_baseline: bool = True

    def __post_init__(self) -> None:
        if self.max_rmse <= 0:
            raise ValueError(f"max_rmse must be positive, got {self.max_rmse}")
        if not 0 <= self.min_top_k_accuracy <= 1:
            raise ValueError(f"min_top_k_accuracy must be in [0, 1], got {self.min_top_k_accuracy}")
        if self.max_rmse_increase < 0 or self.max_accuracy_decrease < 0:
            raise ValueError(
                "allowed changes must be >= 0, got "
                f"{self.max_rmse_increase}, {self.max_accuracy_decrease}"
            )


def verdict(
    gate: GateConfig, candidate: EvalMetrics, baseline: EvalMetrics | None
) -> tuple[bool, list[str]]:
    """Returns (blessed, reasons the candidate failed); no reasons means blessed.

    Fails closed: a metric of the candidate or of the baseline that is not a
    finite number (NaN, inf) is a reason, never a pass.
    """
    reasons = []
    k = candidate.k
    for who, metrics in (("candidate", candidate), ("baseline", baseline)):
        for name in ("rmse", "top_k_accuracy"):
            value = getattr(metrics, name) if metrics is not None else 0.0
            if not math.isfinite(value):
                reasons.append(f"{who} {name} is {value}: not a finite number")
    if reasons:
        return False, reasons
    if candidate.rmse > gate.max_rmse:
        reasons.append(f"rmse {candidate.rmse:.4f} > max_rmse {gate.max_rmse}")
    if candidate.top_k_accuracy < gate.min_top_k_accuracy:
        reasons.append(
            f"top_{k}_accuracy {candidate.top_k_accuracy:.4f} < {gate.min_top_k_accuracy}"
        )
    if baseline is not None:
        if candidate.rmse > baseline.rmse + gate.max_rmse_increase:
            reasons.append(
                f"rmse {candidate.rmse:.4f} worse than baseline {baseline.rmse:.4f} "
                f"by more than {gate.max_rmse_increase}"
            )
        if candidate.top_k_accuracy < baseline.top_k_accuracy - gate.max_accuracy_decrease:
            reasons.append(
                f"top_{k}_accuracy {candidate.top_k_accuracy:.4f} worse than baseline "
                f"{baseline.top_k_accuracy:.4f} by more than {gate.max_accuracy_decrease}"
            )
    return not reasons, reasons
