"""ExampleGen's memory on large logs: in-memory DirectRunner vs multi-processing, side by side.

Generates synthetic funnel logs of about 2M events (seed 42), then runs a
pipeline holding only MultiLogExampleGen, once per Beam mode, in a child
process. The parent samples the resident memory of the child and all of its
descendants (Beam's worker processes included) every 0.2 s.

    .venv/bin/python benchmarks/ingest_memory.py [--work_dir /tmp/ingest] [--views 1600000]

Writes benchmarks/results/ingest_memory.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import measure_subprocess, write_results  # noqa: E402
from datagen.synthetic import FILES, SyntheticConfig, write  # noqa: E402

MODES = {
    "in-memory, 1 worker (default)": ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    "multi-processing, 2 workers": [
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ],
}


def child(data: str, out: str, beam_args: list[str]) -> None:
    """Runs ExampleGen alone on `data` with LocalDagRunner."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from tfx import v1 as tfx

    from components.multilog_example_gen.component import MultiLogExampleGen
    from pipeline.presets import SYNTHETIC_INGEST

    pipeline = tfx.dsl.Pipeline(
        pipeline_name="ingest-memory",
        pipeline_root=os.path.join(out, "root"),
        components=[MultiLogExampleGen(input_base=data, ingest=SYNTHETIC_INGEST)],
        enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(out, "mlmd.sqlite")
        ),
        beam_pipeline_args=beam_args,
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)


def measure(data: str, out: str, beam_args: list[str]) -> dict:
    """Wall time and peak resident memory (child + descendants) of one ExampleGen run."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    return measure_subprocess(
        [sys.executable, __file__, "--child", data, out, json.dumps(beam_args)]
    )


def main() -> None:
    """Generates the logs, measures each mode and writes the table."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default="/tmp/ingest_memory")
    parser.add_argument("--views", type=int, default=1_600_000)
    args = parser.parse_args()
    data = os.path.join(args.work_dir, "data")
    config = SyntheticConfig(users=50_000, items=20_000, views=args.views, seed=42)
    write(config, data)
    rows = 0
    for name in FILES.values():
        with open(os.path.join(data, name)) as f:
            rows += sum(1 for _ in f) - 1
    size_mb = sum(os.path.getsize(os.path.join(data, n)) for n in FILES.values()) / 2**20
    results = {}
    for name, beam_args in MODES.items():
        results[name] = measure(data, os.path.join(args.work_dir, "out"), beam_args)
        print(name, results[name], flush=True)
    lines = [
        "# ExampleGen memory on large logs",
        "",
        f"Measured by `benchmarks/ingest_memory.py` in one run on this machine (2 cores, "
        f"24 GiB, CPU): synthetic funnel logs, {rows:,} events in {size_mb:.0f} MB of CSV "
        "(50K users, 20K items, seed 42); a pipeline holding only MultiLogExampleGen; peak "
        "resident memory of the run's process and all its Beam workers.",
        "",
        "| Beam mode | wall time | peak memory | per input row |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['wall_s']:.0f} s | {r['peak_rss_gib']:.2f} GiB | "
            f"{r['peak_rss_gib'] * 2**30 / rows / 1024:.2f} KiB |"
        )
    write_results(
        "ingest_memory",
        {"events": rows, "csv_mb": size_mb, "modes": results},
        "\n".join(lines) + "\n",
    )


if __name__ == "__main__":
    main()
