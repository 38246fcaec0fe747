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
PREVIOUS = {"history_length": 20, "history_decay": 1.0, "rate_from_history": True}
"""The defaults before this benchmark chose the current ones."""
VARIANTS = {
    "default: history 50, decay 0.9, rating from the id": {},
    "previous default: history 20, mean, rating from the query": PREVIOUS,
    "id only (no history)": {"history_length": 0, "user_dropout": 0.0},
    "previous, no user dropout": {**PREVIOUS, "user_dropout": 0.0},
    "previous, history 5": {**PREVIOUS, "history_length": 5},
    "previous, history 50": {**PREVIOUS, "history_length": 50},
    "previous, user dropout 0.3": {**PREVIOUS, "user_dropout": 0.3},
    "previous, user dropout 0.5": {**PREVIOUS, "user_dropout": 0.5},
    "previous, retrieval weight 2": {**PREVIOUS, "retrieval_weight": 2.0},
    "previous, rating weight 0.5": {**PREVIOUS, "rating_weight": 0.5},
    "previous, embedding 32": {**PREVIOUS, "embedding_dim": 32},
    "previous, embedding 128": {**PREVIOUS, "embedding_dim": 128},
    "previous, logQ correction 0.5": {**PREVIOUS, "sampling_correction": 0.5},
    "previous, no logQ correction": {**PREVIOUS, "sampling_correction": 0.0},
    "previous, patience 2": {**PREVIOUS, "patience": 2},
    "previous, learning rate 0.003": {**PREVIOUS, "learning_rate": 0.003},
    "previous, batch 4096": {**PREVIOUS, "batch_size": 4096},
    "previous, 5 epochs, no early stopping": {**PREVIOUS, "early_stopping": False, "epochs": 5},
    "previous, decay 0.8": {**PREVIOUS, "history_decay": 0.8},
    "previous, decay 0.9, history 50": {**PREVIOUS, "history_decay": 0.9, "history_length": 50},
    "previous, rating from the id": {**PREVIOUS, "rate_from_history": False},
    "in-batch negatives with logQ": {"retrieval_negatives": "in_batch"},
    "catalogue softmax": {"retrieval_negatives": "catalogue"},
    "catalogue softmax, learning rate 0.003": {
        "retrieval_negatives": "catalogue",
        "learning_rate": 0.003,
    },
    "catalogue softmax, learning rate 0.001": {
        "retrieval_negatives": "catalogue",
        "learning_rate": 0.001,
    },
    "catalogue softmax, embedding 32": {"retrieval_negatives": "catalogue", "embedding_dim": 32},
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


def mean_of(by_seed: dict[str, dict]) -> dict[str, float]:
    """Each figure's mean over the seeds a variant ran with."""
    runs = list(by_seed.values())
    return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}


def table(results: dict) -> str:
    lines = [
        "# Model variants scored as served, on a temporal holdout of the training events",
        "",
        "Reproduce: `make run` (or a run of another preset), then `.venv/bin/python "
        "benchmarks/served_tuning.py --run movielens=output --seeds 42 43 44` (`--only NAME "
        "...` for some variants). Each user's latest "
        f"{HOLDOUT_PERCENT}% of training pairs are held out; variants train on the rest "
        "and are scored through the exported `evaluate` signature (the inputs `retrieve` "
        "gets). The evaluation split is not read. Figures are means over the seeds listed.",
        "",
    ]
    for run, rows in results.items():
        lines += [
            f"## {run}",
            "",
            "| variant | seeds | top-10 | top-100 | RMSE | popular top-100 | bias RMSE | epochs |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, by_seed in rows.items():
            r = mean_of(by_seed)
            seeds = ", ".join(sorted(by_seed))
            lines.append(
                f"| {name} | {seeds} | {r['top_10']:.4f} | {r['top_100']:.4f} | "
                f"{r['rmse']:.4f} | {r['popular_top_100']:.4f} | {r['bias_rmse']:.4f} | "
                f"{r['epochs']:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, help="name=output_dir[,preset]")
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    parser.add_argument("--name", default="served_tuning", help="results file name")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="ModelConfig.seed")
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
                results[name][variant] = {}
                for seed in args.seeds:
                    config = dataclasses.replace(base, **changes, seed=seed)
                    results[name][variant][str(seed)] = score(config, cut, tmp)
                    print(variant, seed, results[name][variant][str(seed)], flush=True)
    write_results(args.name, results, table(results))


if __name__ == "__main__":
    main()
