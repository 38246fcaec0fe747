"""Runs the pipeline locally: LocalDagRunner, Beam DirectRunner, SQLite ML Metadata."""

import argparse
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow loads

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    """Parses flags, runs the pipeline (or bootstraps a schema) and prints what it did."""
    from pipeline import logs_check, logs_file
    from pipeline.bootstrap import bootstrap_schema
    from pipeline.config import PipelineConfig
    from pipeline.local import run_locally
    from pipeline.presets import PRESETS, preset_fields

    parser = argparse.ArgumentParser(description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", choices=sorted(PRESETS), help="a shipped preset (configs/)")
    source.add_argument("--logs", help="a logs file describing your logs (pipeline/logs_file.py)")
    parser.add_argument("--data_root", help="default: data/movielens for the movielens preset")
    parser.add_argument("--output_dir", default=os.path.join(HERE, "output"))
    parser.add_argument("--no_cache", action="store_true", help="re-run every component")
    parser.add_argument("--tune", action="store_true", help="add the Tuner (KerasTuner search)")
    parser.add_argument(
        "--bootstrap_schema",
        action="store_true",
        help="infer a schema from the logs (ExampleGen, StatisticsGen, SchemaGen) and write "
        "it next to the curated one, with a report; does not train",
    )
    parser.add_argument(
        "--direct_num_workers",
        type=int,
        default=1,
        help="Beam workers: 1 runs in-memory (fastest here at 100K events); N > 1 or 0 "
        "(one per core) run multi-processing, for logs that outgrow memory",
    )
    args = parser.parse_args()
    dataset = args.dataset or ("movielens" if not args.logs else None)
    if args.data_root is None and dataset != "movielens":
        parser.error("--logs and --dataset other than movielens need --data_root")
    data_root = os.path.abspath(args.data_root or os.path.join(HERE, "data", "movielens"))
    out = os.path.abspath(args.output_dir)
    if args.bootstrap_schema:
        report = bootstrap_schema(args.logs or logs_file_of(dataset), data_root, out)
        print(f"Inferred schema: {report.schema}\nReview it: {report.report}")
        return
    if args.logs:
        logs_check.check_data(args.logs, data_root)
        fields = logs_file.load(args.logs)
    else:
        fields = preset_fields(dataset, os.path.join(HERE, "schema"))
    mode = "in_memory" if args.direct_num_workers == 1 else "multi_processing"
    config = PipelineConfig.from_json_dict(
        {
            **fields,
            "pipeline_root": os.path.join(out, "pipeline_root"),
            "data_root": data_root,
            "serving_root": os.path.join(out, "serving"),
            "enable_cache": not args.no_cache,
            "tuning": {} if args.tune else None,
            "beam_pipeline_args": [
                f"--direct_running_mode={mode}",
                f"--direct_num_workers={args.direct_num_workers}",
            ],
        }
    )
    report = run_locally(config, out)
    if report.caught_up:
        print(f"Ingested earlier spans first: {list(report.caught_up)}")
    if report.empty:
        print(f"Skipped earlier spans that hold no event: {list(report.empty)}")
    for line in report.drift:
        print(f"Drift from the previous span: {line}")
    print(report.outcome())


def logs_file_of(dataset: str) -> str:
    """The shipped logs file of a preset."""
    return os.path.join(HERE, "configs", f"{dataset}.yaml")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    sys.stderr.flush()
    # TensorFlow's functions print tracebacks when freed during interpreter teardown.
    os._exit(0)
