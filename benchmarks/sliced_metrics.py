"""Sliced metrics of a real pipeline run: top-100 and RMSE per user-activity and item-popularity
slice, model against the trivial baselines, read back with `tfma.load_eval_result`.

    make run          # once
    .venv/bin/python benchmarks/sliced_metrics.py [--pipeline_root output/pipeline_root]

Writes benchmarks/results/sliced_metrics.{json,md,png}.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import DEFAULT_PIPELINE_ROOT, RESULTS, latest, write_results  # noqa: E402

SLICES = {
    "user_activity": ("new", "1-4", "5-19", "20-99", "100+"),
    "item_popularity": ("head", "torso", "tail", "cold"),
}
K = 100


def load(evaluation: str) -> dict:
    """Metrics of the candidate per slice value, for the two slice features.

    A first run (no baseline yet) evaluates one model, which TFMA leaves unnamed.
    """
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation, model_name="candidate")
    if not result.slicing_metrics or not result.slicing_metrics[0][1]:
        result = tfma.load_eval_result(evaluation)
    by_slice = {}
    for key, metrics in result.slicing_metrics:
        values = {name: v.get("doubleValue") for name, v in metrics[""][""].items()}
        by_slice[tuple(key)] = values
    out = {"overall": by_slice[()]}
    for feature, order in SLICES.items():
        out[feature] = {v: by_slice[((feature, v),)] for v in order if ((feature, v),) in by_slice}
    return out


def plot(data: dict, path: str) -> None:
    """Two rows (top-100, RMSE) by two columns (user activity, item popularity)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    rows = (
        (
            f"top-{K} hit rate",
            (f"top_{K}_hit_rate", f"popular_top_{K}_hit_rate"),
            ("model", "most popular unseen"),
        ),
        ("RMSE", ("rmse", "bias_rmse"), ("model", "mean + biases")),
    )
    for r, (title, keys, labels) in enumerate(rows):
        for c, feature in enumerate(SLICES):
            ax = axes[r][c]
            slices = list(data[feature])
            width = 0.38
            for i, (key, label) in enumerate(zip(keys, labels, strict=True)):
                values = [data[feature][s].get(key) or 0.0 for s in slices]
                ax.bar(
                    [x + (i - 0.5) * width for x in range(len(slices))], values, width, label=label
                )
            counts = [
                int(data[feature][s].get("retrieval_events" if r == 0 else "rated_events") or 0)
                for s in slices
            ]
            ax.set_xticks(
                range(len(slices)), [f"{s}\n({n:,})" for s, n in zip(slices, counts, strict=True)]
            )
            ax.set_title(f"{title} by {feature.replace('_', ' ')}")
            ax.legend(fontsize=8)
    fig.suptitle("Sliced evaluation of the pushed model (eval events per slice in brackets)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    """Reads the newest evaluation under the pipeline root, writes the table and the picture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline_root", default=DEFAULT_PIPELINE_ROOT)
    args = parser.parse_args()
    evaluation = latest(os.path.join(args.pipeline_root, "RecommenderEvaluator", "evaluation", "*"))
    data = load(evaluation)
    lines = [
        "# Sliced evaluation",
        "",
        "Read by `benchmarks/sliced_metrics.py` with `tfma.load_eval_result` from the Evaluator's "
        "output of a `make run` on the embedded data (default config). Training items excluded "
        f"for the model and for the most-popular list; K = {K}.",
        "",
        f"| slice | eval events (retrieval / rated) | top-{K} model | top-{K} most popular "
        "unseen | RMSE model | RMSE mean + biases |",
        "|---|---|---|---|---|---|",
    ]

    def row(name, m):
        return (
            f"| {name} | {int(m['retrieval_events']):,} / {int(m['rated_events']):,} | "
            f"{m[f'top_{K}_hit_rate']:.3f} | {m[f'popular_top_{K}_hit_rate']:.3f} | "
            f"{m['rmse']:.3f} | {m['bias_rmse']:.3f} |"
        )

    lines.append(row("overall", data["overall"]))
    for feature in SLICES:
        for value, metrics in data[feature].items():
            lines.append(row(f"{feature} = {value}", metrics))
    plot(data, os.path.join(RESULTS, "sliced_metrics.png"))
    write_results(
        "sliced_metrics", data, "\n".join(lines) + "\n\n![sliced metrics](sliced_metrics.png)\n"
    )


if __name__ == "__main__":
    main()
