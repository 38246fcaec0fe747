"""Submits a compiled pipeline spec (kubeflow_runner.py output) to Vertex AI or KFP.

    python scripts/submit_pipeline.py vertex --spec recommender_pipeline.json \
        --project my-project --region europe-west4 [--service_account SA] [--no-cache]
    python scripts/submit_pipeline.py kfp --spec recommender_pipeline.json \
        --host https://<kfp-host> [--experiment recommender]

Needs credentials for the target (gcloud auth application-default login, or the
KFP host's auth); not run by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile


def _submit_vertex(args: argparse.Namespace) -> None:
    from google.cloud import aiplatform

    aiplatform.init(project=args.project, location=args.region)
    job = aiplatform.PipelineJob(
        display_name=os.path.splitext(os.path.basename(args.spec))[0],
        template_path=args.spec,
        enable_caching=not args.no_cache,
    )
    job.submit(service_account=args.service_account)
    print(f"Submitted: {job.resource_name}")


def _submit_kfp(args: argparse.Namespace) -> None:
    import kfp

    with open(args.spec) as f:
        spec = json.load(f)
    # The KFP v2 client takes the PipelineSpec; TFX writes it inside a PipelineJob.
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec["pipelineSpec"], f)
    run = kfp.Client(host=args.host).create_run_from_pipeline_package(
        f.name, arguments={}, experiment_name=args.experiment, enable_caching=not args.no_cache
    )
    print(f"Submitted run: {run.run_id}")


def main(argv: list[str] | None = None) -> None:
    """Parses the target and its flags and submits the spec.

    Raises:
        ValueError: if the spec file does not exist.
    """
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
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not os.path.isfile(args.spec):
        raise ValueError(f"no compiled spec at {args.spec!r}: run kubeflow_runner.py first")
    (_submit_vertex if args.target == "vertex" else _submit_kfp)(args)


if __name__ == "__main__":
    main()
