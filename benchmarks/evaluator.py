"""The Evaluator's cost: TFX's Evaluator (TFMA on Beam) against the in-process evaluation.

On the artifacts of a finished pipeline run (its newest Examples, Schema and
Model), each way of evaluating runs in a child process, measured for wall time
and peak resident memory (the child and its workers):

- `tfma`: RecommenderEvaluator's executor (TFX's Evaluator, Beam DirectRunner
  in memory), candidate and baseline (the same model, as on a re-run), every
  slice;
- `in-process`: `models.evaluation.evaluate_saved_model`, one model, no slices
  (how the pipeline evaluated before TFMA).

    .venv/bin/python benchmarks/evaluator.py --run embedded=output/pipeline_root \\
        [--run synthetic_1M=/tmp/scale/1M/out/pipeline_root]

Writes benchmarks/results/evaluator.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import latest, measure_subprocess, write_results  # noqa: E402


def artifacts(pipeline_root: str) -> dict[str, str]:
    """The newest ExampleGen examples, imported schema and trained model of a run."""
    return {
        "examples": latest(os.path.join(pipeline_root, "MultiLogExampleGen", "examples", "*")),
        "schema": latest(os.path.join(pipeline_root, "ImportSchemaGen", "schema", "*")),
        "model": latest(os.path.join(pipeline_root, "Trainer", "model", "*")),
    }


def child(mode: str, pipeline_root: str, out: str, k: int) -> None:
    """Evaluates once, the TFMA way or in process."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    found = artifacts(pipeline_root)
    serving = os.path.join(found["model"], "Format-Serving")
    if mode == "in-process":
        from models.evaluation import evaluate_saved_model

        metrics = evaluate_saved_model(
            serving, os.path.join(found["examples"], "Split-eval", "*"), k
        )
        print(json.dumps({"top_k": metrics.top_k_accuracy, "rmse": metrics.rmse}))
        return
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import standard_artifacts, standard_component_specs
    from tfx.utils import proto_utils

    from components.recommender_evaluator import executor
    from components.recommender_evaluator.spec import GateConfig

    def artifact(kind, uri, **props):
        a = kind()
        a.uri = uri
        for key, value in props.items():
            setattr(a, key, value)
        return a

    model = artifact(standard_artifacts.Model, found["model"])
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=[], unique_id="evaluator", tmp_dir=os.path.join(out, "tmp")
    )
    executor.Executor(context).Do(
        {
            "examples": [
                artifact(standard_artifacts.Examples, found["examples"], split_names='["eval"]')
            ],
            "schema": [artifact(standard_artifacts.Schema, found["schema"])],
            "model": [model],
            "baseline_model": [model],
        },
        {
            "evaluation": [artifact(standard_artifacts.ModelEvaluation, os.path.join(out, "e"))],
            "blessing": [artifact(standard_artifacts.ModelBlessing, os.path.join(out, "b"))],
        },
        {
            standard_component_specs.EVAL_CONFIG_KEY: proto_utils.proto_to_json(
                GateConfig().eval_config(k)
            ),
            standard_component_specs.EXAMPLE_SPLITS_KEY: json.dumps(["eval"]),
            executor.SERVED_MODEL_DIR_KEY: "",
            executor.REQUIRE_BASELINE_KEY: 1,
        },
    )


def main() -> None:
    """Measures both modes on every run given; writes the table."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="name=pipeline_root")
    parser.add_argument("--k", type=int, default=100)
    args = parser.parse_args()
    results = {}
    for run in args.run:
        name, root = run.split("=", 1)
        import tensorflow as tf

        eval_files = tf.io.gfile.glob(os.path.join(artifacts(root)["examples"], "Split-eval", "*"))
        events = sum(1 for _ in tf.data.TFRecordDataset(eval_files, compression_type="GZIP"))
        results[name] = {"eval_events": events}
        for mode in ("in-process", "tfma"):
            with tempfile.TemporaryDirectory() as out:
                cmd = [sys.executable, __file__, "--child", mode, root, out, str(args.k)]
                results[name][mode] = measure_subprocess(cmd)
            print(name, mode, results[name][mode], flush=True)
    lines = [
        "# The Evaluator: TFX's Evaluator (TFMA) against the in-process evaluation",
        "",
        "Measured by `benchmarks/evaluator.py` in one run on this machine (2 cores, CPU): the "
        "artifacts of a finished pipeline run, each way in its own process (wall time includes "
        "imports and model loading; memory is the peak of the process and its Beam workers). "
        "TFMA evaluates candidate and baseline (as on a re-run) over every slice; the in-process "
        "evaluation one model, overall only.",
        "",
        "| run | eval events | in-process: wall, peak memory | TFMA: wall, peak memory "
        "| TFMA / in-process wall |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        a, b = r["in-process"], r["tfma"]
        lines.append(
            f"| {name} | {r['eval_events']:,} | {a['wall_s']:.0f} s, {a['peak_rss_gib']:.2f} GiB | "
            f"{b['wall_s']:.0f} s, {b['peak_rss_gib']:.2f} GiB | {b['wall_s'] / a['wall_s']:.1f}x |"
        )
    write_results("evaluator", results, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
