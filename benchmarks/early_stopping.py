"""Early stopping (the default) against fixed epochs, at several data sizes.

Trains three arms on the Transform output of a finished pipeline run, side by
side in one process: the default (at most `epochs`, cosine decay, early
stopping on a holdout of the training events), the previous fixed 3 epochs at
a constant learning rate, and the cap (10 epochs) without stopping. Quality is
the Keras evaluation on the run's eval split, time the fit phases.

    .venv/bin/python benchmarks/early_stopping.py --run embedded=output,movielens \
        --run synthetic_1m=/tmp/syn1m/out,synthetic

Writes benchmarks/results/early_stopping.{json,md}; data sets measured before
and not given again keep their rows (`--fresh` drops them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow_transform as tft  # noqa: E402

from benchmarks.harness import RESULTS, latest, run_spec, write_results  # noqa: E402
from models import training  # noqa: E402
from pipeline.presets import PRESETS  # noqa: E402


def logs_model(path: str):
    """The model config a logs file sets."""
    from models.config import ModelConfig
    from pipeline import logs_file

    return ModelConfig.from_json_dict(logs_file.load(path)["model"])


def early_stopping(root: str, preset: str) -> dict:
    """The three arms on the newest Transform output under `root` (a pipeline root)."""
    transform = tft.TFTransformOutput(
        latest(os.path.join(root, "Transform", "transform_graph", "*"))
    )
    examples = latest(os.path.join(root, "Transform", "transformed_examples", "*"))
    splits = [os.path.join(examples, f"Split-{s}", "*") for s in ("train", "eval", "catalog")]
    config = PRESETS[preset].model if preset in PRESETS else logs_model(preset)
    arms = {
        "early stopping (default, cap 10)": config,
        "fixed 3 epochs, constant LR (before)": dataclasses.replace(
            config, epochs=3, early_stopping=False, final_learning_share=1.0
        ),
        "fixed 10 epochs (the cap, no stopping)": dataclasses.replace(config, early_stopping=False),
    }
    out = {}
    for name, arm in arms.items():
        _, final = training.train(arm, transform, *splits)
        metrics = final["eval"]
        out[name] = {
            "epochs": final["epochs"],
            "fit_seconds": final["fit_seconds"],
            "rmse": metrics.get("rmse"),
            "top_100": metrics.get("factorized_top_k/top_100_categorical_accuracy"),
            "train_events": int(final["fit_events"]),
        }
        print(name, out[name], flush=True)
    return out


def table(results: dict[str, dict]) -> str:
    """The results as a Markdown table, one row per data set and arm."""
    lines = [
        "# Early stopping against fixed epochs",
        "",
        "Measured by `benchmarks/early_stopping.py` on this machine (2 cores, CPU), the "
        "arms of a data set side by side in one process on the same window and transform. "
        "Quality is the Keras evaluation on the run's eval split (RMSE unclipped, top-100 "
        "over the catalogue, seen items included); fit s excludes validation. Training "
        "events are those fitted per epoch (early stopping holds 5% out).",
        "",
        "| data | training events | training | epochs | fit s | RMSE | top-100 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, arms in results.items():
        for arm, x in arms.items():
            lines.append(
                f"| {name} | {x['train_events']:,} | {arm} | {x['epochs']:.0f} "
                f"| {x['fit_seconds']:.1f} | {x['rmse']:.3f} | {x['top_100']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Measures each run given and writes the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run",
        action="append",
        required=True,
        help="name=output_dir,preset (or logs file) of a finished pipeline run",
    )
    parser.add_argument("--fresh", action="store_true", help="drop earlier data sets' rows")
    args = parser.parse_args()
    path = os.path.join(RESULTS, "early_stopping.json")
    results = {}
    if os.path.exists(path) and not args.fresh:
        with open(path) as f:
            results = json.load(f)
    for name, out_dir, preset in map(run_spec, args.run):
        results[name] = early_stopping(os.path.join(out_dir, "pipeline_root"), preset)
    write_results("early_stopping", results, table(results))


if __name__ == "__main__":
    main()
