"""Runs the pipeline locally: LocalDagRunner, Beam DirectRunner, SQLite ML Metadata."""

import argparse
import gc
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow loads

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    """Parses flags, runs the pipeline and prints where the model was pushed."""
    from pipeline.config import PipelineConfig
    from pipeline.local import run_locally
    from pipeline.presets import PRESETS, preset_fields

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", choices=sorted(PRESETS), default="movielens")
    parser.add_argument("--data_root", help="default: data/movielens for --dataset movielens")
    parser.add_argument("--output_dir", default=os.path.join(HERE, "output"))
    parser.add_argument("--no_cache", action="store_true", help="re-run every component")
    parser.add_argument("--tune", action="store_true", help="add the Tuner (KerasTuner search)")
    parser.add_argument(
        "--direct_num_workers",
        type=int,
        default=1,
        help="Beam workers: 1 runs in-memory (fastest here at 100K events); N > 1 or 0 "
        "(one per core) run multi-processing, for logs that outgrow memory",
    )
    args = parser.parse_args()
    if args.data_root is None and args.dataset != "movielens":
        parser.error(f"--dataset {args.dataset} needs --data_root (see datagen/synthetic.py)")
    out = os.path.abspath(args.output_dir)
    mode = "in_memory" if args.direct_num_workers == 1 else "multi_processing"
    config = PipelineConfig.from_json_dict(
        {
            **preset_fields(args.dataset, os.path.join(HERE, "schema")),
            "pipeline_root": os.path.join(out, "pipeline_root"),
            "data_root": os.path.abspath(args.data_root or os.path.join(HERE, "data", "movielens")),
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
    for line in report.drift:
        print(f"Drift from the previous span: {line}")
    print(
        f"Pushed model: {report.pushed}"
        if report.pushed
        else "No model pushed this run (unchanged, or not blessed: see the Evaluator's gate.json)"
    )
    gc.collect()  # frees TensorFlow functions now, not noisily at interpreter exit


if __name__ == "__main__":
    main()
