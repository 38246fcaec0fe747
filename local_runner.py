"""Runs the pipeline locally: LocalDagRunner, Beam DirectRunner, SQLite ML Metadata."""

import argparse
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow loads


def main() -> None:
    """Parses flags, runs the pipeline and prints where the model was pushed."""
    from tfx import v1 as tfx

    from models.config import TuningConfig
    from pipeline.config import PipelineConfig
    from pipeline.pipeline import create_pipeline

    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data_root", default=os.path.join(here, "data", "movielens"))
    parser.add_argument("--output_dir", default=os.path.join(here, "output"))
    parser.add_argument("--no_cache", action="store_true", help="re-run every component")
    parser.add_argument("--tune", action="store_true", help="add the Tuner (KerasTuner search)")
    parser.add_argument(
        "--direct_num_workers",
        type=int,
        default=1,
        help="Beam workers: 1 runs in-memory (fastest on 2 cores at 100K events); "
        "N > 1 or 0 (one per core) runs multi-processing",
    )
    args = parser.parse_args()
    out = os.path.abspath(args.output_dir)
    mode = "in_memory" if args.direct_num_workers == 1 else "multi_processing"
    config = PipelineConfig(
        pipeline_name="recommender-local",
        pipeline_root=os.path.join(out, "pipeline_root"),
        data_root=os.path.abspath(args.data_root),
        schema_path=os.path.join(here, "schema", "schema.pbtxt"),
        serving_root=os.path.join(out, "serving"),
        enable_cache=not args.no_cache,
        tuning=TuningConfig() if args.tune else None,
        beam_pipeline_args=(
            f"--direct_running_mode={mode}",
            f"--direct_num_workers={args.direct_num_workers}",
        ),
    )
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        os.path.join(out, "metadata.sqlite")
    )
    model_dir = os.path.join(config.serving_root, config.model_name)

    def versions() -> set[str]:
        return set(os.listdir(model_dir)) if os.path.isdir(model_dir) else set()

    before = versions()
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config, metadata))
    new = sorted(versions() - before, key=int)
    print(
        f"Pushed model: {os.path.join(model_dir, new[-1])}"
        if new
        else "No model pushed this run (cached, or not blessed: see the Evaluator's metrics.json)"
    )


if __name__ == "__main__":
    main()
