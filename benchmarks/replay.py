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
import glob
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks.harness import ROOT, write_results  # noqa: E402
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


def newest(pattern: str) -> str:
    return max(glob.glob(pattern), key=lambda p: int(os.path.basename(p)))


def evaluation(out: str) -> dict:
    """Overall metrics of the newest evaluation (the candidate), and its verdict."""
    import tensorflow_model_analysis as tfma

    path = newest(os.path.join(out, "pipeline_root", "RecommenderEvaluator", "evaluation", "*"))
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


def warm_vs_cold(transform: str, examples: str, base: str, preset: str) -> dict:
    """Child process: a cold and a warm training on the same window, scored each epoch.

    The warm one starts from `base` (the previous run's model, blessed or not)
    and may run as many epochs as the cold one; both stop early as the Trainer
    does. Each is scored on the window's evaluation span after every epoch.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow_transform as tft

    from models import training
    from pipeline.presets import PRESETS

    config = PRESETS[preset].model
    output = tft.TFTransformOutput(transform)
    splits = [os.path.join(examples, f"Split-{s}", "*") for s in ("train", "eval", "catalog")]
    _, cold = training.train(config, output, *splits, track_eval=True)
    warm_config = dataclasses.replace(config, warm_start_epochs=config.epochs)
    _, warm = training.train(warm_config, output, *splits, warm_start_from=base, track_eval=True)

    def curve(run):
        rmse = [e["rmse"] for e in run["eval_by_epoch"]]
        return rmse, list(np.cumsum(run["epoch_seconds"]))

    cold_rmse, cold_seconds = curve(cold)
    warm_rmse, warm_seconds = curve(warm)
    target = cold["eval"]["rmse"]  # the cold model as the Trainer keeps it (best epoch)
    reached = next(
        (
            {"epochs": e + 1, "seconds": warm_seconds[e]}
            for e, r in enumerate(warm_rmse)
            if r <= target
        ),
        None,
    )
    return {
        "cold_rmse": target,
        "cold_seconds": cold["fit_seconds"],
        "cold_epochs": cold["epochs"],
        "cold_rmse_by_epoch": cold_rmse,
        "warm_rmse": warm["eval"]["rmse"],
        "warm_seconds": warm["fit_seconds"],
        "warm_rmse_by_epoch": warm_rmse,
        "warm_seconds_by_epoch": warm_seconds,
        "warm_reached": reached,
        "warm_start": warm["warm_start"],
    }


def replay(name: str, work: str, runs: int = RUNS) -> list[dict]:
    """Runs the pipeline once per delivered span; returns one record per run."""
    shutil.rmtree(work, ignore_errors=True)
    staged, spans, inputs = stage(name, work, runs)
    data, out = os.path.join(work, "data"), os.path.join(work, "out")
    preset = "synthetic_spans" if name == "synthetic" else "movielens_spans"
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
        window = newest(os.path.join(out, "pipeline_root", "TemporalWindow", "examples", "*"))
        model = newest(os.path.join(out, "pipeline_root", "Trainer", "model", "*"))
        with open(os.path.join(model, "Format-Warmstart", "training.json")) as f:
            trained = json.load(f)
        record["trainer"] = {
            k: trained.get(k) for k in ("warm_start_from", "epochs", "max_epochs", "fit_seconds")
        }
        trainer_ran = any(e["component"] == "Trainer" and e["state"] == "ran" for e in ran)
        if previous_model and trainer_ran:
            root = os.path.join(out, "pipeline_root", "Transform")
            transform = newest(os.path.join(root, "transform_graph", "*"))
            examples = newest(os.path.join(root, "transformed_examples", "*"))
            child = [sys.executable, __file__, "--child", transform, examples]
            child += [os.path.join(previous_model, "Format-Warmstart"), preset]
            proc = subprocess.run(child, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"warm/cold comparison failed:\n{proc.stderr[-4000:]}")
            record["warm_vs_cold"] = json.loads(proc.stdout.strip().splitlines()[-1])
        record["window"] = os.path.basename(window)
        previous_model = model
        records.append(record)
        print(name, run, span, f"{wall:.0f}s", record["metrics"].get("rmse"), flush=True)
    return records


def seconds(record: dict, component: str) -> float:
    return sum(e["seconds"] for e in record["executions"] if e["component"] == component)


def table(results: dict[str, list[dict]]) -> str:
    lines = [
        "# Replay: the pipeline run span after span over growing logs",
        "",
        "Measured by `benchmarks/replay.py` in one run on this machine (2 cores, CPU): "
        f"{max(len(r) for r in results.values())} runs per data set against one ML Metadata "
        "store, each delivering one new span (run 1 finds the first two and catches up on "
        "the first). Temporal evaluation: trained on the earlier spans of the window, "
        "evaluated on the newest span; the baselines are fitted on the same window and "
        "scored on the same events.",
    ]
    for name, records in results.items():
        lines += [
            "",
            f"## {name}",
            "",
            "| run | new span | ExampleGen + StatisticsGen s | Transform s | Trainer s (epochs) "
            "| warm start | RMSE model / bias | top-100 model / popular | blessed | pushed "
            "| drift |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in records:
            m = r["metrics"]
            ingest = seconds(r, "MultiLogExampleGen") + seconds(r, "StatisticsGen")
            trainer = r["trainer"]
            lines.append(
                f"| {r['run']} | {r['new_span']} | {ingest:.1f} | {seconds(r, 'Transform'):.1f} "
                f"| {seconds(r, 'Trainer'):.1f} ({trainer.get('epochs', 0):.0f}) "
                f"| {'warm' if trainer['warm_start_from'] else 'cold'} "
                f"| {m.get('rmse', float('nan')):.4f} / {m.get('bias_rmse', float('nan')):.4f} "
                f"| {m.get('top_100_hit_rate', float('nan')):.3f} / "
                f"{m.get('popular_top_100_hit_rate', float('nan')):.3f} "
                f"| {r['blessed']} | {r['pushed']} | {len(r['drift'])} |"
            )
        compared = [r for r in records if "warm_vs_cold" in r]
        if compared:
            lines += [
                "",
                "Warm start (from the previous run's model) against a cold start on the same "
                "window, both with the Trainer's early stopping; RMSE on the newest span after "
                "each epoch (Keras, unclipped), fit time without validation:",
                "",
                "| run | cold: epochs, fit s, RMSE | warm: RMSE after each epoch "
                "| warm reaches the cold RMSE after | warm / cold time |",
                "|---|---|---|---|---|",
            ]
            for r in compared:
                w = r["warm_vs_cold"]
                reached = w["warm_reached"]
                after = (
                    f"{reached['epochs']} epoch(s), {reached['seconds']:.1f} s" if reached else "no"
                )
                ratio = f"{reached['seconds'] / w['cold_seconds']:.2f}" if reached else "-"
                lines.append(
                    f"| {r['run']} | {w['cold_epochs']:.0f}, {w['cold_seconds']:.1f}, "
                    f"{w['cold_rmse']:.4f} | "
                    + ", ".join(f"{x:.4f}" for x in w["warm_rmse_by_epoch"])
                    + f" | {after} | {ratio} |"
                )
    return "\n".join(lines) + "\n"


def plot(results: dict[str, list[dict]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 3, figsize=(15, 4 * len(results)), squeeze=False)
    for row, (name, records) in enumerate(results.items()):
        runs = [r["run"] for r in records]
        ax = axes[row][0]
        ax.plot(
            runs,
            [seconds(r, "MultiLogExampleGen") + seconds(r, "StatisticsGen") for r in records],
            "o-",
            label="ExampleGen + StatisticsGen",
        )
        ax.plot(runs, [seconds(r, "Trainer") for r in records], "s-", label="Trainer")
        ax.plot(runs, [seconds(r, "Transform") for r in records], "^-", label="Transform")
        ax.set(title=f"{name}: seconds per run", xlabel="run")
        ax.legend()
        ax = axes[row][1]
        ax.plot(runs, [r["metrics"].get("rmse") for r in records], "o-", label="model")
        ax.plot(
            runs, [r["metrics"].get("bias_rmse") for r in records], "s--", label="mean + biases"
        )
        ax.set(title=f"{name}: temporal RMSE (newest span)", xlabel="run")
        ax.legend()
        ax = axes[row][2]
        ax.plot(runs, [r["metrics"].get("top_100_hit_rate") for r in records], "o-", label="model")
        ax.plot(
            runs,
            [r["metrics"].get("popular_top_100_hit_rate") for r in records],
            "s--",
            label="most popular unseen",
        )
        ax.set(title=f"{name}: temporal top-100 hit rate", xlabel="run")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    """Replays each data set and writes the results."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(warm_vs_cold(*sys.argv[2:6])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default="/tmp/replay")
    parser.add_argument("--only", choices=("synthetic", "movielens"))
    parser.add_argument("--runs", type=int, default=RUNS, help="deliveries per data set")
    args = parser.parse_args()
    names = [args.only] if args.only else ["synthetic", "movielens"]
    results = {name: replay(name, os.path.join(args.work_dir, name), args.runs) for name in names}
    name = f"replay_{args.only}" if args.only else "replay"
    write_results(name, results, table(results))
    plot(results, os.path.join(ROOT, "benchmarks", "results", f"{name}.png"))


if __name__ == "__main__":
    main()
