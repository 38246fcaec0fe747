"""Does the sparse rating task profit from the abundant retrieval task? Side by side.

For 100%, 25%, 10% and 5% of the explicit ratings kept (a seeded pair hash; all
watch events stay), trains with the same budget (the default ModelConfig):
- rating-only: retrieval weight 0, rating weight 1;
- joint: the default weights (1, 1);
and once a retrieval-only model (rating weight 0). Every model is exported and
scored like the Evaluator does on the same eval split; the bias and popularity
baselines are computed in the same run.

    make run   # once: the pipeline's ExampleGen/Transform output is the data
    .venv/bin/python benchmarks/transfer.py

Writes benchmarks/results/transfer.{json,md,png}.
"""

from __future__ import annotations

import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import RESULTS, RunData, baselines, train_and_score, write_results  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from pipeline.presets import PRESETS  # noqa: E402

PERCENTS = (100, 25, 10, 5)


def run(data: RunData, base: ModelConfig) -> dict:
    """Trains every variant; returns the result rows and the retrieval-only score."""
    rating_only = dataclasses.replace(base, retrieval_weight=0.0, rating_weight=1.0)
    retrieval_only = train_and_score(dataclasses.replace(base, rating_weight=0.0), data)
    rows = []
    for percent in PERCENTS:
        single = train_and_score(rating_only, data, percent)
        joint = train_and_score(base, data, percent)
        row = {
            "ratings_percent": percent,
            "rating_only": single,
            "joint": joint,
            "rmse_ratio_joint_over_rating_only": joint["rmse"] / single["rmse"],
            **baselines(data, percent),
        }
        rows.append(row)
        print(
            f"{percent:>3}% ratings: RMSE rating-only {single['rmse']:.4f}, joint "
            f"{joint['rmse']:.4f} (ratio {row['rmse_ratio_joint_over_rating_only']:.3f}); "
            f"bias baseline {row['bias_rmse']:.4f}; top-100 joint {joint['top_100']:.4f}",
            flush=True,
        )
    return {"config": base.to_json_dict(), "retrieval_only": retrieval_only, "rows": rows}


def markdown(result: dict) -> str:
    """The committed table."""
    r0 = result["retrieval_only"]
    lines = [
        "# Transfer from the abundant task (retrieval) to the sparse one (rating)",
        "",
        "Measured by `benchmarks/transfer.py` in one run on CPU (2 cores): the embedded "
        "MovieLens data, the pipeline's eval split (20% of (user, item) pairs, seed 42), "
        "the default `ModelConfig` for every model (same epochs, batch and learning rate), "
        "every model exported and scored through its `rate`/`retrieve` signatures like the "
        "Evaluator. Top-100 excludes each user's training items; baselines are fitted "
        "on the same kept ratings.",
        "",
        "| ratings kept | RMSE rating-only | RMSE joint | joint / rating-only "
        "| RMSE mean+biases | top-100 joint | top-100 most-rated unseen |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['ratings_percent']}% | {row['rating_only']['rmse']:.4f} "
            f"| {row['joint']['rmse']:.4f} | {row['rmse_ratio_joint_over_rating_only']:.3f} "
            f"| {row['bias_rmse']:.4f} | {row['joint']['top_100']:.4f} "
            f"| {row['popular_unseen_top_100']:.4f} |"
        )
    full = result["rows"][0]
    lines += [
        "",
        f"Top-100 at 100% ratings: retrieval-only {r0['top_100']:.4f}, joint "
        f"{full['joint']['top_100']:.4f}; most-rated movies {full['popular_top_100']:.4f} "
        f"(seen items not excluded) / {full['popular_unseen_top_100']:.4f} (excluded).",
    ]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: str) -> None:
    """RMSE of both models and the bias baseline against the share of ratings kept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    x = [r["ratings_percent"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, [r["rating_only"]["rmse"] for r in rows], "o-", label="rating-only")
    ax.plot(x, [r["joint"]["rmse"] for r in rows], "s-", label="joint (retrieval + rating)")
    ax.plot(x, [r["bias_rmse"] for r in rows], "^--", label="mean + biases baseline")
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{p}%" for p in x])
    ax.set_xlabel("explicit ratings kept (all watch events stay)")
    ax.set_ylabel("eval RMSE")
    ax.set_title("Transfer from retrieval to rating (MovieLens latest-small)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    """Runs the benchmark and writes its result files."""
    result = run(RunData.latest(), PRESETS["movielens"].model)
    write_results("transfer", result, markdown(result))
    plot(result, os.path.join(RESULTS, "transfer.png"))


if __name__ == "__main__":
    main()
