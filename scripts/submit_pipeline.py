"""Submits a compiled pipeline spec (kubeflow_runner.py) to Vertex AI or KFP, or schedules it.

    python scripts/submit_pipeline.py vertex --spec recommender_pipeline.json \
        --project my-project --region europe-west4 [--service_account SA] [--no-cache] \
        [--schedule "0 3 * * *"] [--run_date 2026-11-30 | --span 42]
    python scripts/submit_pipeline.py kfp --spec recommender_pipeline.json \
        --host https://<kfp-host> [--experiment recommender] [--schedule "0 3 * * *"]

`--schedule CRON` creates a recurring schedule (a Vertex AI PipelineJobSchedule,
a KFP recurring run) instead of one run. A spec compiled for time-partitioned
logs has the runtime parameter `range_config`: scheduled runs pass it empty, so
each run ingests the newest span delivered by then; `--run_date` (date
partitions) or `--span` pins one span, for a backfill or a re-run of a day.

Needs credentials for the target (gcloud auth application-default login, or the
KFP host's auth); the tests build the requests but never send them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from typing import Any

RANGE_CONFIG_PARAMETER = "range_config"  # pipeline.pipeline.RANGE_CONFIG_PARAMETER
EPOCH = datetime.date(1970, 1, 1)


def spec_parameters(spec: dict[str, Any]) -> set[str]:
    """Names of the runtime parameters a compiled PipelineJob spec declares."""
    root = spec.get("pipelineSpec", spec).get("root", {})
    return set(root.get("inputDefinitions", {}).get("parameters", {}))


def parameter_values(spec: dict[str, Any], run_date: str | None, span: int | None) -> dict:
    """The runtime parameters of one run (or of every scheduled run).

    Args:
        spec: The compiled spec.
        run_date: YYYY-MM-DD of the span to ingest (date partitions: span = days
            since 1970-01-01, TFX's convention), or None.
        span: The span number to ingest, or None.

    Raises:
        ValueError: on both a date and a span, a malformed date, or a pinned span
            for a spec without spans.
    """
    if run_date is not None and span is not None:
        raise ValueError("give --run_date or --span, not both")
    if run_date is not None:
        try:
            span = (datetime.date.fromisoformat(run_date) - EPOCH).days
        except ValueError as e:
            raise ValueError(f"--run_date must be YYYY-MM-DD, got {run_date!r}") from e
    if RANGE_CONFIG_PARAMETER not in spec_parameters(spec):
        if span is not None:
            raise ValueError("this spec has no spans (no range_config parameter) to pin")
        return {}
    if span is None:
        return {RANGE_CONFIG_PARAMETER: ""}
    static = {"start_span_number": span, "end_span_number": span}
    return {RANGE_CONFIG_PARAMETER: json.dumps({"static_range": static})}


def _vertex(args: argparse.Namespace, spec: dict, values: dict) -> None:
    from google.cloud import aiplatform

    aiplatform.init(project=args.project, location=args.region)
    name = os.path.splitext(os.path.basename(args.spec))[0]
    job = aiplatform.PipelineJob(
        display_name=name,
        template_path=args.spec,
        parameter_values=values,
        enable_caching=not args.no_cache,
    )
    if args.schedule:
        schedule = job.create_schedule(
            cron=args.schedule,
            display_name=f"{name}-schedule",
            max_concurrent_run_count=1,
            service_account=args.service_account,
        )
        print(f"Created schedule {schedule.resource_name} ({args.schedule})")
        return
    job.submit(service_account=args.service_account)
    print(f"Submitted: {job.resource_name}")


def _kfp(args: argparse.Namespace, spec: dict, values: dict) -> None:
    import kfp

    client = kfp.Client(host=args.host)
    # The KFP v2 client takes the PipelineSpec; TFX writes it inside a PipelineJob.
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec["pipelineSpec"], f)
    if args.schedule:
        experiment = client.create_experiment(args.experiment)
        run = client.create_recurring_run(
            experiment_id=experiment.experiment_id,
            job_name=f"{args.experiment}-schedule",
            cron_expression=args.schedule,
            max_concurrency=1,
            no_catchup=True,
            params=values,
            pipeline_package_path=f.name,
            enable_caching=not args.no_cache,
        )
        print(f"Created recurring run {run.recurring_run_id} ({args.schedule})")
        return
    run = client.create_run_from_pipeline_package(
        f.name, arguments=values, experiment_name=args.experiment, enable_caching=not args.no_cache
    )
    print(f"Submitted run: {run.run_id}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The target and its flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="target", required=True)
    vertex = sub.add_parser("vertex")
    vertex.add_argument("--project", required=True)
    vertex.add_argument("--region", required=True)
    vertex.add_argument("--service_account")
    kfp_parser = sub.add_parser("kfp")
    kfp_parser.add_argument("--host", required=True)
    kfp_parser.add_argument("--experiment", default="recommender")
    for p in (vertex, kfp_parser):
        p.add_argument("--spec", default="recommender_pipeline.json")
        p.add_argument("--no-cache", dest="no_cache", action="store_true")
        p.add_argument("--schedule", help="cron expression: create a recurring schedule")
        p.add_argument("--run_date", help="YYYY-MM-DD: ingest this day's span")
        p.add_argument("--span", type=int, help="ingest this span")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Parses the target and its flags and submits the spec (or schedules it).

    Raises:
        ValueError: if the spec file does not exist, or a parameter is invalid.
    """
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not os.path.isfile(args.spec):
        raise ValueError(f"no compiled spec at {args.spec!r}: run kubeflow_runner.py first")
    with open(args.spec) as f:
        spec = json.load(f)
    if args.schedule and (args.run_date or args.span is not None):
        raise ValueError("a schedule ingests the newest span each run: drop --run_date/--span")
    values = parameter_values(spec, args.run_date, args.span)
    (_vertex if args.target == "vertex" else _kfp)(args, spec, values)


if __name__ == "__main__":
    main()
