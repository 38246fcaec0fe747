"""TFMA metrics of the recommender, computed from its `evaluate` signature's outputs.

TFMA has no top-K retrieval metric for a model whose catalogue lives inside
it; the model's `evaluate` signature gives each event's rank instead, and
`RecommenderMetrics` turns ranks and ratings into the gate's metrics, for the
model and the trivial baselines it carries, in one pass:

- `rmse`, `bias_rmse` (mean + damped biases), `rmse_lift` = 1 - rmse / bias_rmse;
- for each K: `top_<K>_hit_rate` (training items excluded, as served),
  `top_<K>_hit_rate_with_seen` (not excluded), `popular_top_<K>_hit_rate`
  (most popular unseen items) and `top_<K>_lift` = hit rate / popular - 1;
- `rated_events`, `retrieval_events`: the events behind each task's metrics.

An empty task gives NaN metrics, which fail every threshold (the gate fails
closed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types

from contracts import names

NAME = "recommender"
_COUNTS = ("sq", "bias_sq", "rated", "retrieval")


def metric_names(ks: Sequence[int]) -> list[str]:
    """Every metric name `RecommenderMetrics(ks)` emits."""
    per_k = [
        f"{prefix}top_{k}_{suffix}"
        for k in ks
        for prefix, suffix in (
            ("", "hit_rate"),
            ("", "hit_rate_with_seen"),
            ("popular_", "hit_rate"),
            ("", "lift"),
        )
    ]
    return ["rmse", "bias_rmse", "rmse_lift", *per_k, "rated_events", "retrieval_events"]


class RecommenderMetrics(metric_types.Metric):
    """The recommender's rating and top-K metrics, model and baselines (see module doc).

    Args:
        ks: The depths of the top-K metrics.
        name: Metric name (unused in the emitted keys, which are fixed).
    """

    def __init__(self, ks: Sequence[int] = (10, names.RETRIEVAL_K), name: str = NAME):
        super().__init__(_computations, ks=tuple(int(k) for k in ks), name=name)


metric_types.register_metric(RecommenderMetrics)


def _computations(
    ks: tuple[int, ...],
    name: str = NAME,
    eval_config=None,
    model_names: Iterable[str] | None = None,
    output_names: Iterable[str] | None = None,
) -> metric_types.MetricComputations:
    # Keys carry example_weighted=None, as TFMA keys the thresholds of a
    # MetricsSpec's `thresholds`/`per_slice_thresholds` maps (events are counted,
    # never weighted).
    del name, eval_config, output_names
    computations = []
    for model_name in model_names or [""]:
        keys = {
            m: metric_types.MetricKey(name=m, model_name=model_name, example_weighted=None)
            for m in metric_names(ks)
        }
        computations.append(
            metric_types.MetricComputation(
                keys=list(keys.values()),
                preprocessors=None,
                combiner=_Combiner(keys, model_name, ks),
            )
        )
    return computations


class _Combiner(beam.CombineFn):
    """Sums squared errors and hits per event; divides at the end."""

    def __init__(self, keys: dict[str, metric_types.MetricKey], model_name: str, ks):
        self._keys = keys
        self._model_name = model_name
        self._ks = ks

    def create_accumulator(self) -> dict[str, float]:
        acc = dict.fromkeys(_COUNTS, 0.0)
        for k in self._ks:
            acc.update({f"hits{k}": 0.0, f"seen{k}": 0.0, f"popular{k}": 0.0})
        return acc

    def add_input(self, acc: dict[str, float], element) -> dict[str, float]:
        predictions = element.get_predictions(model_name=self._model_name)

        def value(output: str) -> float:
            return float(np.asarray(predictions[output]).reshape(-1)[0])

        if value(names.RATING_WEIGHT_OUTPUT) > 0:
            label = value(names.RATING_LABEL_OUTPUT)
            acc["sq"] += (value(names.RATING_OUTPUT) - label) ** 2
            acc["bias_sq"] += (value(names.BIAS_RATING_OUTPUT) - label) ** 2
            acc["rated"] += 1
        if value(names.RETRIEVAL_WEIGHT_OUTPUT) > 0:
            acc["retrieval"] += 1
            rank = value(names.RANK_OUTPUT)
            rank_with_seen = value(names.RANK_WITH_SEEN_OUTPUT)
            popular = value(names.POPULAR_RANK_OUTPUT)
            for k in self._ks:
                acc[f"hits{k}"] += rank <= k
                acc[f"seen{k}"] += rank_with_seen <= k
                acc[f"popular{k}"] += popular <= k
        return acc

    def merge_accumulators(self, accumulators: Iterable[dict[str, float]]) -> dict[str, float]:
        merged = self.create_accumulator()
        for acc in accumulators:
            for key, count in acc.items():
                merged[key] += count
        return merged

    def extract_output(self, acc: dict[str, float]) -> dict[metric_types.MetricKey, float]:
        def ratio(a: float, b: float) -> float:
            return a / b if b else math.nan

        rmse = math.sqrt(ratio(acc["sq"], acc["rated"]))
        bias_rmse = math.sqrt(ratio(acc["bias_sq"], acc["rated"]))
        out = {
            "rmse": rmse,
            "bias_rmse": bias_rmse,
            "rmse_lift": 1.0 - ratio(rmse, bias_rmse),
            "rated_events": acc["rated"],
            "retrieval_events": acc["retrieval"],
        }
        for k in self._ks:
            hits = ratio(acc[f"hits{k}"], acc["retrieval"])
            popular = ratio(acc[f"popular{k}"], acc["retrieval"])
            out[f"top_{k}_hit_rate"] = hits
            out[f"top_{k}_hit_rate_with_seen"] = ratio(acc[f"seen{k}"], acc["retrieval"])
            out[f"popular_top_{k}_hit_rate"] = popular
            out[f"top_{k}_lift"] = (
                math.inf if popular == 0 and hits > 0 else ratio(hits, popular) - 1.0
            )
        return {self._keys[name]: value for name, value in out.items()}
