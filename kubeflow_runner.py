"""Compiles the pipeline for Kubeflow Pipelines v2 / Vertex AI (KubeflowV2DagRunner).

    python kubeflow_runner.py --config vertex.json [--project ... --output spec.json]

The config (see pipeline.cloud.CloudConfig) comes from a JSON file and/or
flags; `scripts/submit_pipeline.py` submits the compiled spec.
"""

import os
import sys
from collections.abc import Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow loads


def main(argv: Sequence[str] | None = None) -> str:
    """Validates the config, compiles the pipeline spec and returns its path.

    Raises:
        ValueError: on a missing or invalid config value (named in the message).
    """
    import dataclasses

    from tfx import v1 as tfx

    from pipeline.cloud import parse_args
    from pipeline.pipeline import create_pipeline
    from pipeline.source import source_version

    cloud, output = parse_args(sys.argv[1:] if argv is None else argv)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=cloud.image_uri
        ),
        output_dir=os.path.dirname(os.path.abspath(output)),
        output_filename=os.path.basename(output),
    )
    config = dataclasses.replace(cloud.pipeline_config(), code_version=source_version())
    runner.run(create_pipeline(config))
    print(f"Compiled pipeline spec: {output}")
    return output


if __name__ == "__main__":
    main()
