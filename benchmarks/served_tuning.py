"""Model defaults chosen by what is served, on a temporal holdout of the training events.

The run's training split is cut once more by the temporal rule
(`contracts.holdout`, each user's latest 20% of pairs): variants of the
ModelConfig train on the earlier part, are exported, and are scored through
their `evaluate` signature on the later part, which gives each event the inputs
`retrieve` and `rate` would get. The evaluation split is never read, so the
defaults chosen here are not fitted to the figures the gate reports.

    .venv/bin/python benchmarks/served_tuning.py --run movielens=output

Writes benchmarks/results/served_tuning.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.harness import (  # noqa: E402
    RunData,
    run_spec,
    served_figures,
    served_outputs,
    write_results,
)
from contracts.holdout import latest_pairs  # noqa: E402
from models import features as F  # noqa: E402
from models import training  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from models.data import read_columns, read_transformed  # noqa: E402
from models.export import export_models  # noqa: E402
from pipeline import logs_file  # noqa: E402
from pipeline.presets import CONFIG_DIR, PRESETS  # noqa: E402

HOLDOUT_PERCENT = 20
VARIANTS = {
    "default": {},
    "id only (no history)": {"history_length": 0, "user_dropout": 0.0},
    "history 20, no user dropout": {"user_dropout": 0.0},
    "history 5": {"history_length": 5},
    "history 50": {"history_length": 50},
    "user dropout 0.3": {"user_dropout": 0.3},
    "retrieval weight 2": {"retrieval_weight": 2.0},
    "rating weight 0.5": {"rating_weight": 0.5},
    "embedding 32": {"embedding_dim": 32},
    "embedding 128": {"embedding_dim": 128},
    "logQ correction 0.5": {"sampling_correction": 0.5},
    "no logQ correction": {"sampling_correction": 0.0},
    "patience 2": {"patience": 2},
    "learning rate 0.003": {"learning_rate": 0.003},
    "batch 4096": {"batch_size": 4096},
    "5 epochs, no early stopping": {"early_stopping": False, "epochs": 5},
    "recency decay 0.8": {"history_decay": 0.8},
    "recency decay 0.9, history 50": {"history_decay": 0.9, "history_length": 50},
    "user dropout 0.5": {"user_dropout": 0.5},
    "rating from the id": {"rate_from_history": False},
    "decay 0.9, history 50, rating from the id": {
        "history_decay": 0.9,
        "history_length": 50,
        "rate_from_history": False,
    },
}


def _records(pattern: str) -> list[bytes]:
    files = sorted(tf.io.gfile.glob(pattern))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, "GZIP")]


def _write(records: list[bytes], path: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, "GZIP") as writer:
        for record in records:
            writer.write(record)
    return path


def _raw_columns(records: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    spec = {
        F.USER_ID: tf.io.FixedLenFeature([], tf.string),
        F.ITEM_ID: tf.io.FixedLenFeature([], tf.string),
        F.TIMESTAMP: tf.io.FixedLenFeature([], tf.int64),
    }
    parsed = tf.io.parse_example(tf.constant(records), spec)
    return tuple(parsed[k].numpy() for k in (F.USER_ID, F.ITEM_ID, F.TIMESTAMP))


def training_holdout(data: RunData, tmp: str) -> RunData:
    """The run's training split cut into (earlier: train, latest pairs: eval) in `tmp`.

    The same rule on the raw and the transformed events selects the same events:
    it reads only which events share a user and an item, and their times.
    """
    raw_train = data.raw_eval.replace("Split-eval", "Split-train")
    raw = _records(raw_train)
    raw_held = latest_pairs(*_raw_columns(raw), HOLDOUT_PERCENT)
    transformed = _records(data.train)
    columns = read_columns(
        read_transformed(data.train, data.tf_transform_output, 8192),
        (F.USER_IDX, F.ITEM_IDX, F.TIMESTAMP),
    )
    keys = (F.USER_IDX, F.ITEM_IDX, F.TIMESTAMP)
    held = latest_pairs(*(columns[k] for k in keys), HOLDOUT_PERCENT)
    if held.sum() != raw_held.sum():
        raise ValueError(f"raw and transformed holdouts differ: {raw_held.sum()} vs {held.sum()}")
    return dataclasses.replace(
        data,
        train=_write([r for r, h in zip(transformed, held, strict=True) if not h], f"{tmp}/t.gz"),
        eval=_write([r for r, h in zip(transformed, held, strict=True) if h], f"{tmp}/e.gz"),
        raw_eval=_write([r for r, h in zip(raw, raw_held, strict=True) if h], f"{tmp}/r.gz"),
    )


def score(config: ModelConfig, data: RunData, tmp: str) -> dict[str, float]:
    """Trains `config` on `data`, exports it, and returns its served figures."""
    model, final = training.train(
        config, data.tf_transform_output, data.train, data.eval, data.catalog
    )
    dirs = export_models(
        model, config, data.tf_transform_output, data.train, data.eval, data.catalog, tmp + "/m/x"
    )
    figures = served_figures(served_outputs(dirs["brute_force"], data.raw_eval))
    return {**figures, "epochs": final["epochs"], "fit_seconds": final["fit_seconds"]}


def table(results: dict) -> str:
    lines = [
        "# Model variants scored as served, on a temporal holdout of the training events",
        "",
        "Reproduce: `make run` (or a run of another preset), then `.venv/bin/python "
        "benchmarks/served_tuning.py --run movielens=output`. Each user's latest "
        f"{HOLDOUT_PERCENT}% of training pairs are held out; variants train on the rest "
        "and are scored through the exported `evaluate` signature (the inputs `retrieve` "
        "gets). The evaluation split is not read.",
        "",
    ]
    for run, rows in results.items():
        lines += [
            f"## {run}",
            "",
            "| variant | top-10 | top-100 | RMSE | popular top-100 | bias RMSE | epochs |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in rows.items():
            lines.append(
                f"| {name} | {r['top_10']:.4f} | {r['top_100']:.4f} | {r['rmse']:.4f} | "
                f"{r['popular_top_100']:.4f} | {r['bias_rmse']:.4f} | {r['epochs']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, help="name=output_dir[,preset]")
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    parser.add_argument("--name", default="served_tuning", help="results file name")
    parser.add_argument("--seed", type=int, help="ModelConfig.seed of every variant")
    args = parser.parse_args()
    results = {}
    for spec in args.run:
        name, out_dir, preset = run_spec(spec)
        preset = preset or (name if name in PRESETS else "movielens")
        fields = logs_file.load(os.path.join(CONFIG_DIR, f"{preset}.yaml"))
        base = ModelConfig.from_json_dict(fields["model"])
        data = RunData.latest(os.path.join(out_dir, "pipeline_root"))
        results[name] = {}
        with tempfile.TemporaryDirectory() as tmp:
            cut = training_holdout(data, tmp)
            for variant, changes in VARIANTS.items():
                if args.only and variant not in args.only:
                    continue
                if args.seed is not None:
                    changes = {**changes, "seed": args.seed}
                results[name][variant] = score(dataclasses.replace(base, **changes), cut, tmp)
                print(variant, results[name][variant], flush=True)
    write_results(args.name, results, table(results))


if __name__ == "__main__":
    main()
