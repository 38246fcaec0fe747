"""ExampleGen on the same logs as CSV and as Parquet: ingest time and peak memory, side by side.

Generates synthetic funnel logs of about 1M events (50K users, 20K items, seed
42), writes every log and the catalogue once more as Parquet (pyarrow), and
runs a pipeline holding only MultiLogExampleGen on each, in a child process
(in-memory DirectRunner, the local default) whose resident memory, with its
descendants, is sampled every 0.2 s. The two runs' examples are compared.

    .venv/bin/python benchmarks/ingest_formats.py [--work_dir /tmp/ingest_formats]

Writes benchmarks/results/ingest_formats.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import measure_subprocess, write_results  # noqa: E402
from datagen.synthetic import FILES, SyntheticConfig, write  # noqa: E402

VIEWS = 790_000  # -> about 1M events in all


def parquet_ingest():
    """The synthetic preset's ingest spec, every file read as Parquet."""
    from pipeline.presets import SYNTHETIC_INGEST

    def to_parquet(spec):
        return dataclasses.replace(
            spec, file=spec.file.replace(".csv", ".parquet"), format="parquet"
        )

    return dataclasses.replace(
        SYNTHETIC_INGEST,
        logs=tuple(to_parquet(log) for log in SYNTHETIC_INGEST.logs),
        catalog=to_parquet(SYNTHETIC_INGEST.catalog),
    )


def child(fmt: str, data: str, out: str) -> None:
    """Runs ExampleGen alone on `data`, CSV or Parquet, with LocalDagRunner."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from tfx import v1 as tfx

    from components.multilog_example_gen.component import MultiLogExampleGen
    from pipeline.presets import SYNTHETIC_INGEST

    ingest = SYNTHETIC_INGEST if fmt == "csv" else parquet_ingest()
    tfx.orchestration.LocalDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name=f"ingest-{fmt}",
            pipeline_root=os.path.join(out, "root"),
            components=[MultiLogExampleGen(input_base=data, ingest=ingest)],
            enable_cache=False,
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                os.path.join(out, "mlmd.sqlite")
            ),
            beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"],
        )
    )


def examples(out: str) -> dict[str, list[bytes]]:
    import tensorflow as tf

    root = glob.glob(os.path.join(out, "root", "MultiLogExampleGen", "examples", "*"))[0]
    return {
        split: [
            r.numpy()
            for r in tf.data.TFRecordDataset(
                sorted(glob.glob(os.path.join(root, f"Split-{split}", "*"))), "GZIP"
            )
        ]
        for split in ("train", "eval", "catalog")
    }


def main() -> None:
    """Generates the logs in both formats, measures each and writes the table."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default="/tmp/ingest_formats")
    args = parser.parse_args()
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    data = os.path.join(args.work_dir, "data")
    write(SyntheticConfig(users=50_000, items=20_000, views=VIEWS, seed=42), data)
    names = [*FILES.values(), "items.csv"]
    for name in names:
        table = pa_csv.read_csv(
            os.path.join(data, name),
            convert_options=pa_csv.ConvertOptions(
                column_types={"user_id": "string", "item_id": "string", "rating": "string"}
            ),
        )
        pq.write_table(table, os.path.join(data, name.replace(".csv", ".parquet")))
    events = sum(sum(1 for _ in open(os.path.join(data, n))) - 1 for n in FILES.values())
    sizes = {
        fmt: sum(os.path.getsize(os.path.join(data, n.replace(".csv", ext))) for n in names) / 2**20
        for fmt, ext in (("csv", ".csv"), ("parquet", ".parquet"))
    }
    results, outputs = {}, {}
    for fmt in ("csv", "parquet"):
        out = os.path.join(args.work_dir, f"out-{fmt}")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        results[fmt] = measure_subprocess([sys.executable, __file__, "--child", fmt, data, out])
        outputs[fmt] = examples(out)
        print(fmt, results[fmt], flush=True)
    same = outputs["csv"] == outputs["parquet"]
    lines = [
        "# ExampleGen on CSV and on Parquet logs",
        "",
        "Measured by `benchmarks/ingest_formats.py` in one run on this machine (2 cores, "
        f"24 GiB, CPU): synthetic funnel logs, {events:,} events (50K users, 20K items, "
        "seed 42), written as CSV and as Parquet; a pipeline holding only MultiLogExampleGen "
        "(in-memory DirectRunner); peak resident memory of the run's process and its workers.",
        "",
        "| format | files | wall time | peak memory |",
        "|---|---|---|---|",
    ]
    for fmt, r in results.items():
        lines.append(
            f"| {fmt} | {sizes[fmt]:.0f} MB | {r['wall_s']:.0f} s | {r['peak_rss_gib']:.2f} GiB |"
        )
    ratio = results["parquet"]["wall_s"] / results["csv"]["wall_s"]
    lines += [
        "",
        f"Parquet / CSV wall time: {ratio:.2f}. The two runs wrote "
        + ("identical examples, in the same order." if same else "different examples (a bug)."),
    ]
    write_results(
        "ingest_formats",
        {"events": events, "mb": sizes, "results": results, "identical": same},
        "\n".join(lines) + "\n",
    )


if __name__ == "__main__":
    main()
