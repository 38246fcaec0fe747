"""The replay benchmark's report: its Markdown tables and its PNG (`benchmarks/replay.py`)."""

from __future__ import annotations


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
        lines += ["", f"## {name}", ""]
        if any(r.get("rescored") for r in records):
            lines += [
                "The per-run rows are the replay's own run, with the code of that run; "
                "`--rescore` re-measured only the warm/cold comparisons below them.",
                "",
            ]
        lines += [
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
            rescored = any(r.get("rescored") for r in compared)
            lines += [
                "",
                "Warm start (from the previous run's model) against a cold start on the same "
                "window, each trained in its own process (as the Trainer is: both pay the same "
                "one-off tracing and input start-up), both with the Trainer's early stopping. "
                "The warm one fits only the events after its base model's latest one "
                "(`ModelConfig.warm_start_new_events`), with the Trainer's warm-start "
                "settings. RMSE on the newest span after each epoch (Keras, unclipped); fit time "
                "without validation"
                + (
                    ", re-measured with the current code on this replay's artifacts (`--rescore`):"
                    if rescored
                    else ":"
                ),
                "",
                "| run | events fitted cold / warm | cold: epochs, fit s, RMSE "
                "| warm: RMSE after each epoch | warm reaches the cold RMSE after "
                "| warm / cold time |",
                "|---|---|---|---|---|---|",
            ]
            for r in compared:
                w = r["warm_vs_cold"]
                reached = w["warm_reached"]
                after = (
                    f"{reached['epochs']} epoch(s), {reached['seconds']:.1f} s" if reached else "no"
                )
                ratio = f"{reached['seconds'] / w['cold_seconds']:.2f}" if reached else "-"
                fitted = (
                    f"{w['cold_fit_events']:,.0f} / {w['warm_fit_events']:,.0f}"
                    if "warm_fit_events" in w
                    else "-"
                )
                lines.append(
                    f"| {r['run']} | {fitted} | {w['cold_epochs']:.0f}, {w['cold_seconds']:.1f}, "
                    f"{w['cold_rmse']:.4f} | "
                    + ", ".join(f"{x:.4f}" for x in w["warm_rmse_by_epoch"])
                    + f" | {after} | {ratio} |"
                )
            hits = [r for r in compared if r["warm_vs_cold"]["warm_reached"]]
            fast = [
                r
                for r in hits
                if r["warm_vs_cold"]["warm_reached"]["seconds"]
                <= 0.5 * r["warm_vs_cold"]["cold_seconds"]
            ]
            lines += [
                "",
                f"Warm start reached the cold RMSE in {len(hits)} of {len(compared)} runs, "
                f"within half the cold training time in {len(fast)}.",
            ]
        seeded = [r for r in records if "warm_vs_cold_seeds" in r]
        if seeded:
            lines += ["", *seeds_table(seeded)]
    return "\n".join(lines) + "\n"


def seeds_table(records: list[dict]) -> list[str]:
    """Warm against cold over several seeds per run: the kept models' RMSE and whole fit time."""
    import numpy as np

    n = len(records[0]["warm_vs_cold_seeds"])
    lines = [
        f"The same comparison repeated with {n} seeds per run (initialisation, shuffling "
        "and holdout), the kept models (early stopping's best epoch) against each other, "
        "warm timed over its whole training, not until it reached the cold RMSE; top-100 "
        "is the training's own retrieval metric on the newest span (the whole catalogue, "
        "seen items not excluded), not the gate's hit rate:",
        "",
        "| run | cold RMSE, mean ± sd | warm RMSE, mean ± sd | warm - cold "
        "| top-100 cold / warm | cold fit s "
        "| warm fit s | warm / cold time | pairs: warm reached cold, within half its time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    diffs, ratios, reached, fast = [], [], 0, 0
    at_or_under = 0
    for r in records:
        pairs = r["warm_vs_cold_seeds"]
        cold = np.array([p["cold_rmse"] for p in pairs])
        warm = np.array([p["warm_rmse"] for p in pairs])
        cold_s = np.mean([p["cold_seconds"] for p in pairs])
        warm_s = np.mean([p["warm_seconds"] for p in pairs])
        top = [np.mean([p.get(f"{arm}_top_k", np.nan) for p in pairs]) for arm in ("cold", "warm")]
        hit = [p for p in pairs if p["warm_reached"]]
        quick = [p for p in hit if p["warm_reached"]["seconds"] <= 0.5 * p["cold_seconds"]]
        reached, fast = reached + len(hit), fast + len(quick)
        diffs += list(warm - cold)
        ratios.append(warm_s / cold_s)
        at_or_under += warm.mean() <= cold.mean()
        lines.append(
            f"| {r['run']} | {cold.mean():.4f} ± {cold.std(ddof=1):.4f} "
            f"| {warm.mean():.4f} ± {warm.std(ddof=1):.4f} | {warm.mean() - cold.mean():+.4f} "
            f"| {top[0]:.3f} / {top[1]:.3f} | {cold_s:.1f} | {warm_s:.1f} | {warm_s / cold_s:.2f} "
            f"| {len(hit)}, {len(quick)} of {len(pairs)} |"
        )
    diffs = np.array(diffs)
    lines += [
        "",
        f"Over {len(records)} runs x {n} seeds: warm - cold RMSE {diffs.mean():+.4f} "
        f"(standard error {diffs.std(ddof=1) / np.sqrt(len(diffs)):.4f}); the warm mean at "
        f"or under the cold mean in {at_or_under} of {len(records)} runs; warm / cold fit "
        f"time {min(ratios):.2f}-{max(ratios):.2f} (mean {np.mean(ratios):.2f}); of "
        f"{len(diffs)} pairs, warm reached its cold twin's RMSE in {reached}, within half "
        f"the cold time in {fast}.",
    ]
    return lines


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
