"""Replay: the local pipeline run span after span over logs that grow a span a day.

For each data set (the synthetic funnel over days, `datagen.timeline`; the
embedded MovieLens logs cut by time, `datagen.partition`), the spans are
staged, the data root starts with the first two and every later run delivers
one more; `local_runner.py` runs once per delivery against one ML Metadata
store. Per run it records which components executed or were cached and their
wall time (from ML Metadata), the Trainer's warm start and fit time, the
Evaluator's temporal RMSE and top-100 on the newest span next to the trivial
baselines on the same span, blessed / pushed, and drift. After each
warm-started run, a child process trains a cold model on the same window and
the warm model epoch by epoch, to time how long warm start takes to reach the
cold model's temporal RMSE.

    .venv/bin/python benchmarks/replay.py [--work_dir /tmp/replay] [--only synthetic]

Writes benchmarks/results/replay.{json,md,png} (replay_<name>.* with --only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks.harness import ROOT, SPANS_PRESETS, artifacts, latest, write_results  # noqa: E402
from benchmarks.replay_report import plot, table  # noqa: E402
from datagen import partition, timeline  # noqa: E402

RUNS = 8
COMPONENTS = ("MultiLogExampleGen", "StatisticsGen", "TemporalWindow", "Transform", "Trainer")
STATES = {3: "ran", 5: "cached", 4: "failed"}


def stage(name: str, work: str, runs: int) -> tuple[str, list[int], list[str]]:
    """Writes the `runs + 1` spans of data set `name` to `<work>/staged`; (dir, spans, inputs)."""
    staged = os.path.join(work, "staged")
    if name == "synthetic":
        spans = timeline.write(timeline.TimelineConfig(days=runs + 1), staged)
        inputs = [*(f"{e}s" for e in timeline.FUNNEL), timeline.CATALOG_NAME]
    else:
        spans = partition.partition(
            os.path.join(ROOT, "data", "movielens"),
            staged,
            partition.MOVIELENS_LOGS,
            partition.MOVIELENS_CATALOG,
            runs + 1,
        )
        inputs = [*partition.MOVIELENS_LOGS, partition.MOVIELENS_CATALOG[0]]
    return staged, spans, inputs


def deliver(staged: str, data: str, inputs: list[str], span: int) -> None:
    for name in inputs:
        shutil.copytree(
            os.path.join(staged, partition.span_dir(name, span)),
            os.path.join(data, partition.span_dir(name, span)),
        )


def executions_since(db: str, after: int) -> list[dict]:
    """Executions with an id above `after`: component, state, seconds."""
    import sqlite3

    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT e.id, t.name, e.last_known_state, e.create_time_since_epoch, "
            "e.last_update_time_since_epoch FROM Execution e JOIN Type t ON e.type_id = t.id "
            "WHERE e.id > ? ORDER BY e.id",
            (after,),
        ).fetchall()
    return [
        {
            "id": i,
            "component": n.split(".")[-1],
            "state": STATES.get(s, s),
            "seconds": (b - a) / 1e3,
        }
        for i, n, s, a, b in rows
    ]


def evaluation(out: str) -> dict:
    """Overall metrics of the newest evaluation (the candidate), and its verdict."""
    import tensorflow_model_analysis as tfma

    path = latest(os.path.join(out, "pipeline_root", "RecommenderEvaluator", "evaluation", "*"))
    result = tfma.load_eval_result(path)
    overall = {}
    for key, metrics in result.slicing_metrics:
        if key == ():
            for model_metrics in metrics.values():
                for name, value in model_metrics[""].items():
                    overall.setdefault(name, value.get("doubleValue"))
    with open(os.path.join(path, "gate.json")) as f:
        gate = json.load(f)
    return {"metrics": overall, "blessed": gate["blessed"], "failures": gate["failures"]}


def train_arm(transform: str, examples: str, base: str, preset: str, seed: str = "-") -> dict:
    """Child process: one training on a window, scored on its evaluation span each epoch.

    Each arm runs in a fresh process, as the Trainer does, so both pay the same
    one-off costs (tracing, input start-up). With a `base` (a model's
    `Format-Warmstart`, or "-" for a cold start) it warm-starts and, as the
    Trainer does (`ModelConfig.warm_start_new_events`), fits only the events
    after the base model's latest one (its report's `trained_through`), with
    the Trainer's warm-start settings (`ModelConfig.warm_start_*`).
    `seed` ("-": the preset's) seeds initialisation, shuffling and the holdout.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow_transform as tft

    from models import training
    from pipeline.presets import PRESETS

    config = PRESETS[preset].model
    if seed != "-":
        config = dataclasses.replace(config, seed=int(seed))
    output = tft.TFTransformOutput(transform)
    splits = [os.path.join(examples, f"Split-{s}", "*") for s in ("train", "eval", "catalog")]
    warm = None if base == "-" else base
    _, run = training.train(config, output, *splits, warm_start_from=warm, track_eval=True)
    return {
        "rmse": run["eval"]["rmse"],
        "top_k": run["eval"][f"factorized_top_k/top_{config.top_k}_categorical_accuracy"],
        "rmse_by_epoch": [e["rmse"] for e in run["eval_by_epoch"]],
        "seconds": run["fit_seconds"],
        "seconds_by_epoch": [float(x) for x in np.cumsum(run["epoch_seconds"])],
        "epochs": run["epochs"],
        "fit_events": run["fit_events"],
        "fit_after": run["fit_after"],
        "warm_start": run["warm_start"],
    }


def warm_vs_cold(transform: str, examples: str, base: str, preset: str, seed: str = "-") -> dict:
    """A cold and a warm training on the same window (`train_arm`, a child process each)."""
    arms = {}
    for arm, start in (("cold", "-"), ("warm", base)):
        child = [sys.executable, __file__, "--child", transform, examples, start, preset, seed]
        proc = subprocess.run(child, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"{arm} training failed:\n{proc.stderr[-4000:]}")
        arms[arm] = json.loads(proc.stdout.strip().splitlines()[-1])
    cold, warm = arms["cold"], arms["warm"]
    target = cold["rmse"]  # the cold model as the Trainer keeps it (best epoch)
    reached = next(
        (
            {"epochs": e + 1, "seconds": warm["seconds_by_epoch"][e]}
            for e, r in enumerate(warm["rmse_by_epoch"])
            if r <= target
        ),
        None,
    )
    return {
        "cold_rmse": target,
        "cold_seconds": cold["seconds"],
        "cold_epochs": cold["epochs"],
        "cold_rmse_by_epoch": cold["rmse_by_epoch"],
        "cold_fit_events": cold["fit_events"],
        "cold_top_k": cold["top_k"],
        "warm_top_k": warm["top_k"],
        "warm_rmse": warm["rmse"],
        "warm_seconds": warm["seconds"],
        "warm_rmse_by_epoch": warm["rmse_by_epoch"],
        "warm_seconds_by_epoch": warm["seconds_by_epoch"],
        "warm_fit_events": warm["fit_events"],
        "warm_fit_after": warm["fit_after"],
        "warm_reached": reached,
        "warm_start": warm["warm_start"],
        "warm_epochs": warm["epochs"],
    }


def compare(
    out: str, base_model: str, preset: str, run: int | None = None, seed: str = "-"
) -> dict:
    """`warm_vs_cold` on run `run`'s window (1-based; None: the newest) from `base_model`."""
    root = os.path.join(out, "pipeline_root", "Transform")
    graphs, examples = (
        artifacts(os.path.join(root, kind, "*"))
        for kind in ("transform_graph", "transformed_examples")
    )
    at = len(graphs) - 1 if run is None else run - 1
    warm = os.path.join(base_model, "Format-Warmstart")
    return warm_vs_cold(graphs[at], examples[at], warm, preset, seed)


def preset_seed(preset: str) -> int:
    """The preset's `ModelConfig.seed` (imported here: the children set up Keras first)."""
    from pipeline.presets import PRESETS

    return PRESETS[preset].model.seed


def rescore(name: str, work: str, seeds: int = 1) -> list[dict]:
    """Re-measures warm against cold on every run of a finished replay (current code).

    Reads `results/replay_<name>.json` and that replay's artifacts under `work`
    (run i's Transform and Trainer outputs are the i-th of each); replaces each
    record's `warm_vs_cold` and marks it `rescored`. With `seeds` > 1 each
    comparison is repeated with that many seeds (the preset's, then the next
    ones), all kept in `warm_vs_cold_seeds`: one span's RMSE difference
    between two trainings is mostly their seeds'.
    """
    with open(os.path.join(ROOT, "benchmarks", "results", f"replay_{name}.json")) as f:
        records = json.load(f)[name]
    out = os.path.join(work, "out")
    models = artifacts(os.path.join(out, "pipeline_root", "Trainer", "model", "*"))
    preset = SPANS_PRESETS[name]
    base_seed = preset_seed(preset)
    for record in records:
        if "warm_vs_cold" in record:
            run = record["run"]
            repeats = [
                compare(out, models[run - 2], preset, run, str(base_seed + i)) for i in range(seeds)
            ]
            record["warm_vs_cold"] = repeats[0]
            if seeds > 1:
                record["warm_vs_cold_seeds"] = repeats
            record["rescored"] = True
            print(name, run, record["warm_vs_cold"]["warm_reached"], flush=True)
    return records


def replay(name: str, work: str, runs: int = RUNS) -> list[dict]:
    """Runs the pipeline once per delivered span; returns one record per run."""
    shutil.rmtree(work, ignore_errors=True)
    staged, spans, inputs = stage(name, work, runs)
    data, out = os.path.join(work, "data"), os.path.join(work, "out")
    preset = SPANS_PRESETS[name]
    db, last, records, previous_model = os.path.join(out, "metadata.sqlite"), 0, [], None
    for run, span in enumerate(spans[1:], 1):
        for s in spans[:2] if run == 1 else [span]:
            deliver(staged, data, inputs, s)
        cmd = [sys.executable, os.path.join(ROOT, "local_runner.py"), "--dataset", preset]
        cmd += ["--data_root", data, "--output_dir", out]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode:
            raise RuntimeError(f"run {run} failed:\n{proc.stderr[-4000:]}")
        ran = executions_since(db, last)
        last = max(e["id"] for e in ran)
        record = {
            "run": run,
            "new_span": span,
            "wall_s": wall,
            "executions": ran,
            "drift": [ln for ln in proc.stdout.splitlines() if ln.startswith("Drift")],
            "pushed": any(ln.startswith("Pushed model:") for ln in proc.stdout.splitlines()),
            **evaluation(out),
        }
        window = latest(os.path.join(out, "pipeline_root", "TemporalWindow", "examples", "*"))
        model = latest(os.path.join(out, "pipeline_root", "Trainer", "model", "*"))
        with open(os.path.join(model, "Format-Warmstart", "training.json")) as f:
            trained = json.load(f)
        record["trainer"] = {
            k: trained.get(k) for k in ("warm_start_from", "epochs", "max_epochs", "fit_seconds")
        }
        trainer_ran = any(e["component"] == "Trainer" and e["state"] == "ran" for e in ran)
        if previous_model and trainer_ran:
            record["warm_vs_cold"] = compare(out, previous_model, preset)
        record["window"] = os.path.basename(window)
        previous_model = model
        records.append(record)
        print(name, run, span, f"{wall:.0f}s", record["metrics"].get("rmse"), flush=True)
    return records


def main() -> None:
    """Replays each data set and writes the results."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(train_arm(*sys.argv[2:7])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default="/tmp/replay")
    parser.add_argument("--only", choices=("synthetic", "movielens"))
    parser.add_argument("--runs", type=int, default=RUNS, help="deliveries per data set")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="re-measure warm vs cold on the finished replay in --work_dir (needs --only)",
    )
    parser.add_argument(
        "--seeds", type=int, default=1, help="with --rescore: seeds per warm/cold comparison"
    )
    args = parser.parse_args()
    names = [args.only] if args.only else ["synthetic", "movielens"]
    if args.rescore and not args.only:
        parser.error("--rescore needs --only")
    run = rescore if args.rescore else replay
    kwargs = {"seeds": args.seeds} if args.rescore else {"runs": args.runs}
    results = {name: run(name, os.path.join(args.work_dir, name), **kwargs) for name in names}
    name = f"replay_{args.only}" if args.only else "replay"
    write_results(name, results, table(results))
    plot(results, os.path.join(ROOT, "benchmarks", "results", f"{name}.png"))


if __name__ == "__main__":
    main()
