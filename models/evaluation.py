"""In-process evaluation of an exported model through its `evaluate` signature.

The pipeline's Evaluator is TFX's (TFMA, `components/recommender_evaluator/`);
this is the same computation in one process, for benchmarks and quick checks:
raw eval events go through the model's `evaluate` signature, which ranks each
event's item among the whole catalogue with the user's training items excluded
(a hit at K is rank <= K), predicts its rating, gives the trivial baselines'
answers and says which metric each event counts in.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

from contracts import names


@dataclasses.dataclass(frozen=True)
class EvalMetrics:
    """Metrics of one model, and of the trivial baselines, on one split.

    Attributes:
        rmse: Root mean squared error over the rated events of the rating task.
        top_k_accuracy: Share of retrieval events whose item is in the user's
            top-K, the user's training items excluded (as served).
        k: The K of the top-K metrics.
        num_rated: Events behind the RMSEs.
        num_retrieval: Events behind the top-K metrics.
        top_k_accuracy_with_seen: Top-K without excluding training items (the
            figure the TFRS tutorials publish).
        bias_rmse: RMSE of the mean + damped biases baseline.
        popular_top_k_accuracy: Top-K of the most-popular-unseen baseline.
    """

    rmse: float
    top_k_accuracy: float
    k: int
    num_rated: int
    num_retrieval: int
    top_k_accuracy_with_seen: float = float("nan")
    bias_rmse: float = float("nan")
    popular_top_k_accuracy: float = float("nan")


def evaluate_saved_model(
    model_dir: str, file_pattern: str, k: int, batch_size: int = 1024
) -> EvalMetrics:
    """Evaluates the SavedModel at `model_dir` on raw (ExampleGen) examples.

    Args:
        model_dir: Directory of a SavedModel with the `evaluate` signature.
        file_pattern: Glob of gzipped TFRecords of raw events.
        k: Depth of the top-K metrics.
        batch_size: Events per signature call.

    Raises:
        ValueError: if no file matches, the model has no `evaluate` signature, or
            no event counts for one of the two tasks.
    """
    files = tf.io.gfile.glob(file_pattern)
    if not files:
        raise ValueError(f"no eval examples match {file_pattern!r}")
    loaded = tf.saved_model.load(model_dir)
    if names.EVALUATE not in loaded.signatures:
        raise ValueError(
            f"{model_dir!r} has no {names.EVALUATE!r} signature (it has "
            f"{sorted(loaded.signatures)}): export it with models.export"
        )
    evaluate = loaded.signatures[names.EVALUATE]
    sums = dict.fromkeys(("sq", "bias_sq", "rated", "hits", "seen_hits", "pop_hits", "n"), 0.0)
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)
    for records in dataset:
        out = {key: v.numpy() for key, v in evaluate(**{names.EXAMPLES_INPUT: records}).items()}
        rated = out[names.RATING_WEIGHT_OUTPUT] > 0
        label = out[names.RATING_LABEL_OUTPUT][rated].astype(np.float64)
        sums["sq"] += float(np.sum((out[names.RATING_OUTPUT][rated] - label) ** 2))
        sums["bias_sq"] += float(np.sum((out[names.BIAS_RATING_OUTPUT][rated] - label) ** 2))
        sums["rated"] += int(rated.sum())
        counted = out[names.RETRIEVAL_WEIGHT_OUTPUT] > 0
        for key, output in (
            ("hits", names.RANK_OUTPUT),
            ("seen_hits", names.RANK_WITH_SEEN_OUTPUT),
            ("pop_hits", names.POPULAR_RANK_OUTPUT),
        ):
            sums[key] += int(np.sum(out[output][counted] <= k))
        sums["n"] += int(counted.sum())
    if not sums["rated"] or not sums["n"]:
        raise ValueError(
            f"{file_pattern!r} has {sums['rated']:.0f} rated and {sums['n']:.0f} retrieval "
            "events (as the model's TaskEvents select them); both metrics need at least one"
        )
    return EvalMetrics(
        rmse=math.sqrt(sums["sq"] / sums["rated"]),
        top_k_accuracy=sums["hits"] / sums["n"],
        k=k,
        num_rated=int(sums["rated"]),
        num_retrieval=int(sums["n"]),
        top_k_accuracy_with_seen=sums["seen_hits"] / sums["n"],
        bias_rmse=math.sqrt(sums["bias_sq"] / sums["rated"]),
        popular_top_k_accuracy=sums["pop_hits"] / sums["n"],
    )
