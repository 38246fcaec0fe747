"""Rating tower shapes side by side: DNN only vs DCN stacked/parallel x full/low-rank.

Same harness and budget as benchmarks/transfer.py (default ModelConfig, the
joint model, all ratings); only `ModelConfig.dcn` changes. Reports eval RMSE,
top-100, the rating tower's parameter count and training examples/s.

    make run   # once
    .venv/bin/python benchmarks/dcn.py

Writes benchmarks/results/dcn.{json,md}.
"""

from __future__ import annotations

import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import RunData, train_and_score, write_results  # noqa: E402
from models.config import DCNConfig  # noqa: E402
from pipeline.presets import PRESETS  # noqa: E402

VARIANTS = {
    "DNN only (no cross layers)": DCNConfig("stacked", 0, None, (64, 32)),
    "DCN stacked, full rank": DCNConfig("stacked", 2, None, (64, 32)),
    "DCN stacked, low rank (16)": DCNConfig("stacked", 2, 16, (64, 32)),
    "DCN parallel, full rank": DCNConfig("parallel", 2, None, (64, 32)),
    "DCN parallel, low rank (16)": DCNConfig("parallel", 2, 16, (64, 32)),
}


def main() -> None:
    """Trains each variant and writes the table."""
    data, base = RunData.latest(), PRESETS["movielens"].model
    rows = []
    for name, dcn in VARIANTS.items():
        scores = train_and_score(dataclasses.replace(base, dcn=dcn), data)
        rows.append({"variant": name, "dcn": dataclasses.asdict(dcn), **scores})
        print(f"{name}: {scores}", flush=True)
    lines = [
        "# DCN rating tower variants",
        "",
        "Measured by `benchmarks/dcn.py` in one run on CPU (2 cores): the joint model "
        "with the default `ModelConfig` (embedding 64, 3 epochs, batch 1024), only the "
        "rating tower changes (input [u, i, u*i], 192-d; deep layers 64-32; 2 cross "
        "layers). Eval split of the embedded MovieLens data; examples/s is the median "
        "fit-phase throughput of epochs 2-3.",
        "",
        "| variant | eval RMSE | top-100 | rating tower params | train examples/s |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['rmse']:.4f} | {r['top_100']:.4f} "
            f"| {r['rating_tower_params']:,} | {r['train_examples_per_second']:,.0f} |"
        )
    write_results("dcn", rows, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
