"""Blessing thresholds of the recommender evaluator, and the verdict they give."""

from __future__ import annotations

import dataclasses

from models import jsonable
from models.evaluation import EvalMetrics


@dataclasses.dataclass(frozen=True)
class GateConfig(jsonable.JsonDataclass):
    """When a candidate model is blessed.

    A candidate is blessed if its absolute metrics pass and, when a previously
    blessed baseline exists, it is not worse than the baseline by more than the
    allowed change.

    Attributes:
        max_rmse: Highest acceptable RMSE on rated eval events; the default is
            the product's quality floor (a mean + regularised biases baseline
            reaches 0.875 on the embedded data).
        min_top_k_accuracy: Lowest acceptable top-K accuracy on retrieval events;
            the default is the product's floor (the 100 most-rated unseen
            movies reach 0.221, or 0.155 without excluding seen ones).
        k: The K of the retrieval accuracy.
        max_rmse_increase: Allowed RMSE increase over the baseline.
        max_accuracy_decrease: Allowed top-K accuracy decrease below the baseline.
        retrieval_event_types: Eval event types scored for top-K accuracy.
        split: Examples split evaluated.
    """

    max_rmse: float = 0.86
    min_top_k_accuracy: float = 0.25
    k: int = 100
    max_rmse_increase: float = 0.01
    max_accuracy_decrease: float = 0.01
    retrieval_event_types: tuple[str, ...] = ("watch",)
    split: str = "eval"

    def __post_init__(self) -> None:
        if self.max_rmse <= 0:
            raise ValueError(f"max_rmse must be positive, got {self.max_rmse}")
        if not 0 <= self.min_top_k_accuracy <= 1:
            raise ValueError(f"min_top_k_accuracy must be in [0, 1], got {self.min_top_k_accuracy}")
        if self.k <= 0:
            raise ValueError(f"k must be positive, got {self.k}")
        if self.max_rmse_increase < 0 or self.max_accuracy_decrease < 0:
            raise ValueError(
                "allowed changes must be >= 0, got "
                f"{self.max_rmse_increase}, {self.max_accuracy_decrease}"
            )
        if not self.retrieval_event_types:
            raise ValueError("retrieval_event_types must name at least one event type")


def verdict(
    gate: GateConfig, candidate: EvalMetrics, baseline: EvalMetrics | None
) -> tuple[bool, list[str]]:
    """Returns (blessed, reasons the candidate failed); no reasons means blessed."""
    reasons = []
    if candidate.rmse > gate.max_rmse:
        reasons.append(f"rmse {candidate.rmse:.4f} > max_rmse {gate.max_rmse}")
    if candidate.top_k_accuracy < gate.min_top_k_accuracy:
        reasons.append(
            f"top_{gate.k}_accuracy {candidate.top_k_accuracy:.4f} < {gate.min_top_k_accuracy}"
        )
    if baseline is not None:
        if candidate.rmse > baseline.rmse + gate.max_rmse_increase:
            reasons.append(
                f"rmse {candidate.rmse:.4f} worse than baseline {baseline.rmse:.4f} "
                f"by more than {gate.max_rmse_increase}"
            )
        if candidate.top_k_accuracy < baseline.top_k_accuracy - gate.max_accuracy_decrease:
            reasons.append(
                f"top_{gate.k}_accuracy {candidate.top_k_accuracy:.4f} worse than baseline "
                f"{baseline.top_k_accuracy:.4f} by more than {gate.max_accuracy_decrease}"
            )
    return not reasons, reasons
