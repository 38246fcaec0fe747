"""Does the sparse purchase signal profit from the abundant view/click/cart logs?

On a synthetic funnel data set (5K users, 2K items, ~190K events, seed 42) run
once through the local pipeline, trains side by side with the same budget:
- retrieval on purchases only vs on every behaviour (the synthetic preset's
  weights), both scored by top-100 on eval purchases (seen items excluded);
- rating-only vs joint for the purchase ratings (RMSE on eval purchase ratings).

    .venv/bin/python benchmarks/funnel_transfer.py [--work_dir /tmp/recommender-funnel]

Writes benchmarks/results/funnel_transfer.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import ROOT, RunData, train_and_score, write_results  # noqa: E402
from datagen.synthetic import SyntheticConfig, write  # noqa: E402
from pipeline.presets import PRESETS  # noqa: E402

DATA = SyntheticConfig(users=5000, items=2000, views=150_000, seed=42)


def main() -> None:
    """Runs the pipeline once, then the variants, and writes the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default="/tmp/recommender-funnel")
    args = parser.parse_args()
    data_dir, out = os.path.join(args.work_dir, "data"), os.path.join(args.work_dir, "out")
    write(DATA, data_dir)
    subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "local_runner.py"),
            "--dataset",
            "synthetic",
            "--data_root",
            data_dir,
            "--output_dir",
            out,
        ],
        check=True,
        capture_output=True,
    )
    run = RunData.latest(os.path.join(out, "pipeline_root"))
    preset = PRESETS["synthetic"].model
    variants = {
        "retrieval on purchases only": dataclasses.replace(
            preset,
            events=dataclasses.replace(preset.events, retrieval=(("purchase", 1.0),)),
            rating_weight=0.0,
        ),
        "retrieval on every behaviour": dataclasses.replace(preset, rating_weight=0.0),
        "rating-only (purchase ratings)": dataclasses.replace(preset, retrieval_weight=0.0),
        "joint (every behaviour + ratings)": preset,
    }
    rows = {}
    for name, config in variants.items():
        rows[name] = train_and_score(config, run)
        print(name, rows[name], flush=True)
    lines = [
        "# Transfer from views/clicks/carts to purchases (synthetic funnel)",
        "",
        f"Measured by `benchmarks/funnel_transfer.py` in one run on CPU (2 cores): "
        f"{DATA.users:,} users, {DATA.items:,} items, seed {DATA.seed}; the synthetic preset's "
        "model (3 epochs) with only the task selection changed; eval = the pipeline's eval "
        "split; top-100 over the full catalogue on eval purchases, seen items excluded.",
        "",
        "| variant | top-100 on eval purchases | RMSE on eval purchase ratings |",
        "|---|---|---|",
    ]
    for name, r in rows.items():
        retrieval = variants[name].retrieval_weight > 0
        rating = variants[name].rating_weight > 0
        lines.append(
            f"| {name} | {r['top_100']:.4f}{'' if retrieval else ' (untrained)'} "
            f"| {r['rmse']:.4f}{'' if rating else ' (untrained)'} |"
        )
    write_results("funnel_transfer", rows, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
