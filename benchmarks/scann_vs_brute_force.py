"""ScaNN vs brute-force retrieval through exported SavedModel signatures, side by side.

For each catalogue size, both indexes are built by `models.index.build_index`
(the pipeline's code and default ScaNN parameters), exported as SavedModels with
a `search(query, k)` signature (ScaNN with the "Scann" namespace allowed),
reloaded, and timed through the reloaded signature: queries/s at batch 1 and 64,
p50/p99 latency per call, recall@100 of ScaNN against brute force, build time
and size on disk.

Embeddings are synthetic and 64-d: a rank-16 factor model plus noise, which is
how trained tower outputs look (low intrinsic dimension). Seeded, so runs
differ only by timing noise.

    .venv/bin/python benchmarks/scann_vs_brute_force.py [--sizes 10000 100000 1000000]

Writes benchmarks/results/scann.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import scann  # noqa: E402, F401
import tensorflow as tf  # noqa: E402

from benchmarks.harness import write_results  # noqa: E402
from models.config import ScannConfig  # noqa: E402
from models.export import SCANN_SAVE_OPTIONS  # noqa: E402
from models.index import build_index  # noqa: E402

DIM, RANK, K = 64, 16, 100


def embeddings(n: int, seed: int) -> np.ndarray:
    """Rank-16 factor model plus isotropic noise, [n, 64] float32."""
    rng = np.random.default_rng(seed)
    factors = np.random.default_rng(0).normal(size=(RANK, DIM)) / np.sqrt(RANK)
    return (rng.normal(size=(n, RANK)) @ factors + 0.3 * rng.normal(size=(n, DIM))).astype(
        np.float32
    )


def export(kind: str, items: np.ndarray, directory: str) -> tuple[float, float]:
    """Builds and saves a search model; returns (build seconds, size in MB)."""
    start = time.perf_counter()
    module = tf.Module()
    module.index = build_index(kind, tf.constant(items), k=K, scann=ScannConfig())
    build = time.perf_counter() - start
    module.search = tf.function(
        lambda q, k: module.index(q, k=k),
        input_signature=[tf.TensorSpec([None, DIM]), tf.TensorSpec([], tf.int32)],
    )
    tf.saved_model.save(
        module,
        directory,
        signatures={"search": module.search.get_concrete_function()},
        options=SCANN_SAVE_OPTIONS,
    )
    size = sum(
        os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(directory) for f in files
    )
    return build, size / 2**20


def time_calls(search, queries: np.ndarray, batch: int, min_seconds: float) -> dict[str, float]:
    """Calls `search` on consecutive query batches for at least `min_seconds`."""
    k = tf.constant(K, tf.int32)
    batches = [
        tf.constant(queries[i : i + batch]) for i in range(0, len(queries) - batch + 1, batch)
    ]
    for b in batches[:3]:
        search(q=b, k=k)
    latencies, start, i = [], time.perf_counter(), 0
    while time.perf_counter() - start < min_seconds or len(latencies) < 20:
        t = time.perf_counter()
        search(q=batches[i % len(batches)], k=k)["output_1"].numpy()
        latencies.append(time.perf_counter() - t)
        i += 1
    total = sum(latencies)
    return {
        "qps": batch * len(latencies) / total,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
    }


def bench_size(n: int, min_seconds: float, tmp: str) -> dict:
    """Builds, exports, reloads and times both indexes over n candidates."""
    items, queries = embeddings(n, seed=n), embeddings(1024, seed=n + 1)
    row = {"candidates": n, "scann_params": ScannConfig().resolved(n, K)}
    loaded = {}
    for kind in ("brute_force", "scann"):
        directory = os.path.join(tmp, f"{kind}-{n}")
        build, size = export(kind, items, directory)
        loaded[kind] = tf.saved_model.load(directory)
        search = loaded[kind].signatures["search"]
        row[kind] = {
            "build_s": build,
            "size_mb": size,
            **{f"batch{b}": time_calls(search, queries, b, min_seconds) for b in (1, 64)},
        }
        ids = search(q=tf.constant(queries), k=tf.constant(K))["output_1"].numpy()
        row[kind]["ids"] = ids
    exact, approx = row["brute_force"].pop("ids"), row["scann"].pop("ids")
    row["recall_at_100"] = float(
        np.mean([len(set(a) & set(e)) / K for a, e in zip(approx, exact, strict=True)])
    )
    for b in (1, 64):
        row[f"speedup_batch{b}"] = (
            row["scann"][f"batch{b}"]["qps"] / row["brute_force"][f"batch{b}"]["qps"]
        )
    return row


def markdown(rows: list[dict]) -> str:
    """The results table."""
    lines = [
        "# ScaNN vs brute force through exported signatures",
        "",
        "Measured by `benchmarks/scann_vs_brute_force.py` on CPU (2 cores), one run, "
        "64-d synthetic embeddings (rank-16 factors + noise), k = 100, default "
        "`ScannConfig` parameters scaled by catalogue size, 1024 queries.",
        "",
        "| candidates | index | build s | size MB | qps b=1 | p50 / p99 ms b=1 "
        "| qps b=64 | p50 / p99 ms b=64 | recall@100 | speed-up b=1 / b=64 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for kind in ("brute_force", "scann"):
            m = r[kind]
            b1, b64 = m["batch1"], m["batch64"]
            is_scann = kind == "scann"
            lines.append(
                f"| {r['candidates']:,} | {kind} | {m['build_s']:.1f} | {m['size_mb']:.0f} "
                f"| {b1['qps']:,.0f} | {b1['p50_ms']:.2f} / {b1['p99_ms']:.2f} "
                f"| {b64['qps']:,.0f} | {b64['p50_ms']:.1f} / {b64['p99_ms']:.1f} "
                + (f"| {r['recall_at_100']:.3f} | " if is_scann else "| 1 (exact) | ")
                + (
                    f"{r['speedup_batch1']:.1f}x / {r['speedup_batch64']:.1f}x |"
                    if is_scann
                    else "1x |"
                )
            )
    lines += [
        "",
        "ScaNN parameters per size: "
        + "; ".join(f"{r['candidates']:,}: {r['scann_params']}" for r in rows),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Runs every size, prints the ratios and writes the result files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--min_seconds", type=float, default=3.0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            row = bench_size(n, args.min_seconds, tmp)
            rows.append(row)
            print(
                f"{n:>9,} candidates: ScaNN/brute-force qps "
                f"x{row['speedup_batch1']:.1f} (batch 1), "
                f"x{row['speedup_batch64']:.1f} (batch 64), recall@100 {row['recall_at_100']:.3f}",
                flush=True,
            )
    write_results("scann", rows, markdown(rows))


if __name__ == "__main__":
    main()
