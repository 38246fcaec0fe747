"""The Trainer's model, scored as served, against strong baselines on the same split.

For each finished pipeline run (its newest ExampleGen, Transform and Trainer
outputs), on the run's own eval split:

- the model: the Trainer's `Format-Serving` SavedModel (what the Pusher pushes)
  through its `evaluate` signature, which gives each event exactly the inputs
  `retrieve` and `rate` get for its user;
- most popular unseen (the gate's baseline, from the same signature);
- EASE and implicit ALS (`benchmarks/classical.py`), fitted on the same training
  events, hyperparameters chosen on a temporal holdout of them;

top-10 and top-100 hit rates with the user's training items excluded, and RMSE
against the damped bias baseline.

    .venv/bin/python benchmarks/served_baselines.py --run movielens=output \\
        --run synthetic=/tmp/synthetic/out

Writes benchmarks/results/served_baselines.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import classical  # noqa: E402
from benchmarks.harness import (  # noqa: E402
    RunData,
    latest,
    run_spec,
    served_figures,
    served_outputs,
    write_results,
)
from contracts import names  # noqa: E402
from models import features as F  # noqa: E402
from models.data import read_columns, read_transformed  # noqa: E402

KS = (10, 100)
EASE_GRID = [{"l2": v} for v in (10.0, 50.0, 200.0, 500.0, 1000.0, 3000.0)]
ALS_GRID = [
    {"factors": f, "regularization": r, "alpha": a}
    for f in (32, 64, 128)
    for r in (10.0,)
    for a in (5.0, 20.0)
]


def indices(values: np.ndarray, vocabulary: list[bytes]) -> np.ndarray:
    """Vocabulary index of each raw id; -1 for ids outside it."""
    lookup = {v: i for i, v in enumerate(vocabulary)}
    return np.array([lookup.get(v, -1) for v in values.tolist()], np.int64)


def hit_rates(ranks: np.ndarray) -> dict[str, float]:
    return {f"top_{k}": float(np.mean(ranks <= k)) for k in KS}


def score_run(out_dir: str) -> dict:
    """Every row of the table for one pipeline output directory."""
    root = os.path.join(out_dir, "pipeline_root")
    data = RunData.latest(root)
    model_dir = os.path.join(
        latest(os.path.join(root, "Trainer", "model", "*"), "Format-Serving"), "Format-Serving"
    )
    started = time.perf_counter()
    served = served_outputs(model_dir, data.raw_eval)
    raw = {key: _column(data.raw_eval, key) for key in (F.USER_ID, F.ITEM_ID, F.EVENT_TYPE)}
    counted = served[names.RETRIEVAL_WEIGHT_OUTPUT] > 0
    rated = served[names.RATING_WEIGHT_OUTPUT] > 0
    figures = served_figures(served, KS)
    rows = {
        "model (served)": {
            **{f"top_{k}": figures[f"top_{k}"] for k in KS},
            "rmse": figures["rmse"],
        },
        "most popular unseen": {
            **{f"top_{k}": figures[f"popular_top_{k}"] for k in KS},
            "rmse": figures["bias_rmse"],
        },
    }
    output = data.tf_transform_output
    vocab_users = output.vocabulary_by_name(F.USER_VOCAB)
    vocab_items = output.vocabulary_by_name(F.ITEM_VOCAB)
    shape = (len(vocab_users) + F.OOV_BUCKETS, len(vocab_items) + F.OOV_BUCKETS)
    train = read_columns(
        read_transformed(data.train, output, 8192),
        (F.USER_IDX, F.ITEM_IDX, F.TIMESTAMP, F.EVENT_TYPE),
    )
    evaluated_types = set(raw[F.EVENT_TYPE][counted].tolist())
    train_counted = np.isin(train[F.EVENT_TYPE], list(evaluated_types))
    candidates = np.unique(
        read_columns(read_transformed(data.catalog, output, 8192), (F.ITEM_IDX,))[F.ITEM_IDX]
    )
    users = indices(raw[F.USER_ID][counted], vocab_users)
    items = indices(raw[F.ITEM_ID][counted], vocab_items)
    items = np.where(items < 0, shape[1] - 1, items)
    known = users >= 0
    interactions = classical.Interactions.of(train[F.USER_IDX], train[F.ITEM_IDX], *shape)
    args = (train[F.USER_IDX], train[F.ITEM_IDX], train[F.TIMESTAMP], train_counted, shape)
    for name, fit, grid in (
        ("EASE", classical.fit_ease, EASE_GRID),
        ("implicit ALS", classical.fit_als, ALS_GRID),
    ):
        best, tried = classical.choose(fit, grid, *args, candidates, k=100)
        ranks = np.full(len(users), len(candidates) + 1.0)
        ranks[known] = classical.ranks(
            fit(interactions, **best), interactions, users[known], items[known], candidates
        )
        unknown_popular = served[names.POPULAR_RANK_OUTPUT][counted][~known]
        ranks[~known] = unknown_popular
        rows[name] = {**hit_rates(ranks), "params": best, "holdout_top_100": tried}
    return {
        "rows": rows,
        "events": {"eval_retrieval": int(counted.sum()), "eval_rated": int(rated.sum())},
        "train_events": len(train[F.USER_IDX]),
        "known_eval_users_share": float(known.mean()),
        "model_dir": model_dir,
        "seconds": time.perf_counter() - started,
    }


def _column(pattern: str, key: str) -> np.ndarray:
    """One string feature every raw event has, in file order (the signature's order)."""
    spec = {key: tf.io.FixedLenFeature([], tf.string)}
    out = []
    for batch in tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern)), "GZIP").batch(8192):
        out.append(tf.io.parse_example(batch, spec)[key].numpy())
    return np.concatenate(out)


def table(results: dict) -> str:
    lines = [
        "# The served model against strong baselines, same split",
        "",
        "Reproduce: `make run`, then `.venv/bin/python benchmarks/served_baselines.py "
        "--run movielens=output` (add `--run NAME=DIR` per pipeline output). The model row "
        "is the Trainer's SavedModel through its `evaluate` signature (the inputs `retrieve` "
        "gets). EASE and ALS are fitted on the same training events, their hyperparameters "
        "chosen on a temporal holdout of those events. Hit rates exclude each user's "
        "training items.",
        "",
    ]
    for run, result in results.items():
        events = result["events"]
        lines += [
            f"## {run}",
            "",
            f"{result['train_events']:,} training events; {events['eval_retrieval']:,} "
            f"scored retrieval events and {events['eval_rated']:,} rated events in the "
            f"eval split; {result['known_eval_users_share']:.1%} of scored events from "
            "known users.",
            "",
            "| model | top-10 | top-100 | RMSE | chosen |",
            "|---|---|---|---|---|",
        ]
        for name, row in result["rows"].items():
            rmse = f"{row['rmse']:.4f}" if "rmse" in row else "-"
            params = ", ".join(f"{k}={v:g}" for k, v in row.get("params", {}).items())
            lines.append(
                f"| {name} | {row['top_10']:.4f} | {row['top_100']:.4f} | {rmse} | {params} |"
            )
        lines.append("")
    lines.append("RMSE of the most-popular row is the damped bias baseline's.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, help="name=output_dir")
    parser.add_argument("--name", default="served_baselines", help="results file name")
    args = parser.parse_args()
    results = {}
    for spec in args.run:
        name, out_dir, _ = run_spec(spec)
        results[name] = score_run(out_dir)
    write_results(args.name, results, table(results))


if __name__ == "__main__":
    main()
