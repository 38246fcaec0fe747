"""Compiles the pipeline for KFP v2 / Vertex AI (no cloud access) and checks the spec."""

import dataclasses
import json
import os
import re

import pytest
from google.protobuf import json_format
from kfp import components
from kfp.pipeline_spec import pipeline_spec_pb2

import kubeflow_runner
from pipeline.cloud import CloudConfig, parse_args
from pipeline.pipeline import create_pipeline
from pipeline.presets import PRESETS
from scripts import submit_pipeline as submit

IMAGE = "europe-docker.pkg.dev/my-project/rec/pipeline:1.0"
ROOTS = {
    "pipeline_root": "gs://bucket/root",
    "data_root": "gs://bucket/data",
    "serving_root": "gs://bucket/serving",
}
REQUIRED = {
    "project": "my-project",
    "region": "europe-west4",
    "image_uri": IMAGE,
    "pipeline": ROOTS,
}
BEAM_EXECUTORS = ("MultiLogExampleGen", "StatisticsGen", "Transform")


def _compile(tmp_path, extra_flags=(), **overrides) -> dict:
    config_file = tmp_path / "cloud.json"
    config_file.write_text(json.dumps({**REQUIRED, **overrides}))
    output = tmp_path / "spec.json"
    kubeflow_runner.main(["--config", str(config_file), "--output", str(output), *extra_flags])
    return json.loads(output.read_text())


def _container(spec: dict, task: str) -> dict:
    return spec["pipelineSpec"]["deploymentSpec"]["executors"][f"{task}_executor"]["container"]


def _local_edges(config: CloudConfig) -> dict[str, set[str]]:
    pipeline = create_pipeline(config.pipeline_config())
    return {c.id: {u.id for u in c.upstream_nodes} for c in pipeline.components}


def test_compiled_spec_loads_in_kfp_and_keeps_the_dag(tmp_path):
    spec = _compile(tmp_path)
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineJob())
    loaded = components.load_component_from_text(json.dumps(spec["pipelineSpec"]))
    tasks = loaded.pipeline_spec.root.dag.tasks

    resolver = "latest_blessed_model_resolver"

    def node(task: str) -> str:
        return resolver if task.startswith(resolver) else task

    compiled = {}
    for name, task in tasks.items():
        compiled.setdefault(node(name), set()).update(node(t) for t in task.dependent_tasks)
    assert compiled == _local_edges(CloudConfig(**REQUIRED))
    assert "AnomaliesGate" in compiled["Transform"]
    assert compiled["RecommenderPusher"] == {"Trainer", "RecommenderEvaluator"}


def test_image_and_dataflow_args_are_where_components_read_them(tmp_path):
    spec = _compile(tmp_path)
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values() if "container" in e} == {IMAGE}
    for task in BEAM_EXECUTORS:
        args = _container(spec, task)["args"]
        assert "--runner=DataflowRunner" in args
        assert "--project=my-project" in args
        assert "--region=europe-west4" in args
        assert "--temp_location=gs://bucket/root/tmp" in args
        assert "--experiments=use_runner_v2" in args
        assert f"--sdk_container_image={IMAGE}" in args
    transform = spec["pipelineSpec"]["root"]["dag"]["tasks"]["Transform"]
    fn = transform["inputs"]["parameters"]["preprocessing_fn"]["runtimeValue"]["constantValue"]
    assert fn["stringValue"] == "models.entrypoints.preprocessing_fn"


def test_direct_runner_in_the_pod_without_dataflow(tmp_path):
    spec = _compile(tmp_path, extra_flags=["--no-use_dataflow"])
    args = _container(spec, "Transform")["args"]
    assert "--runner=DataflowRunner" not in args
    assert "--direct_running_mode=multi_processing" in args


def test_vertex_training_and_endpoint_are_wired_when_asked(tmp_path):
    spec = _compile(tmp_path, vertex_training=True, vertex_serving=True, endpoint_name="recs")
    assert "google_cloud_ai_platform" in " ".join(_container(spec, "Trainer")["args"])
    assert "google_cloud_ai_platform" in " ".join(_container(spec, "Pusher")["args"])
    params = spec["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
    custom = json.loads(params["custom_config"]["runtimeValue"]["constantValue"]["stringValue"])
    pool = custom["ai_platform_training_args"]["worker_pool_specs"][0]
    assert pool["container_spec"]["image_uri"] == IMAGE
    assert custom["ai_platform_vertex_region"] == "europe-west4"
    assert "model" in custom


def test_flags_override_the_file(tmp_path):
    config_file = tmp_path / "cloud.json"
    config_file.write_text(json.dumps(REQUIRED))
    config, output = parse_args(
        ["--config", str(config_file), "--region", "us-central1", "--data_root", "gs://b/d2"]
    )
    assert config.region == "us-central1"
    assert config.pipeline_config().data_root == "gs://b/d2"
    assert config.pipeline_config().pipeline_root == ROOTS["pipeline_root"]
    assert output == "recommender_pipeline.json"


def test_preset_and_overrides_compose_into_the_pipeline_config():
    config = CloudConfig.from_json_dict(
        {
            **REQUIRED,
            "dataset": "synthetic",
            "pipeline": {**ROOTS, "model": {"epochs": 7}, "gate": {"max_rmse": 1.2}},
        }
    ).pipeline_config()
    synthetic = PRESETS["synthetic"]
    assert config.ingest == synthetic.ingest
    assert config.schema_path == "/pipeline/schema/synthetic.pbtxt"
    assert config.model == dataclasses.replace(synthetic.model, epochs=7)
    assert config.gate == dataclasses.replace(synthetic.gate, max_rmse=1.2)
    assert config.pipeline_name == "recommender-synthetic"
    assert "--runner=DataflowRunner" in config.beam_pipeline_args


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"project": ""}, "missing required value\\(s\\): project"),
        ({"project": "", "image_uri": ""}, "project, image_uri"),
        ({"pipeline": {}}, "pipeline.pipeline_root, pipeline.data_root, pipeline.serving_root"),
        ({"pipeline": {**ROOTS, "pipeline_root": "/r"}}, "gs://.*pipeline_root='/r'"),
        ({"pipeline": {**ROOTS, "data_root": "s3://b/d"}}, "data_root='s3://b/d'"),
        ({"pipeline": {**ROOTS, "serving_root": "gs://"}}, "serving_root='gs://'"),
        ({"projekt": "typo"}, "unknown CloudConfig field\\(s\\) \\['projekt'\\]"),
        ({"dataset": "imdb"}, "unknown dataset preset 'imdb'"),
        ({"pipeline": {**ROOTS, "modle": {}}}, "unknown PipelineConfig field\\(s\\) \\['modle'\\]"),
        ({"pipeline": {**ROOTS, "model": {"epochs": 0}}}, "epochs must be positive"),
    ],
)
def test_config_errors_name_the_offending_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        CloudConfig.from_json_dict({**REQUIRED, **overrides})


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        parse_args(["--config", str(tmp_path / "nope.json")])


def test_pipeline_image_copies_every_package_the_components_import():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
    with open(os.path.join(root, "Dockerfile")) as f:
        copied = {m.group(1) for m in re.finditer(r"^COPY (\w+)/ \1/$", f.read(), re.M)}
    packages = {
        d
        for d in os.listdir(root)
        if os.path.isfile(os.path.join(root, d, "__init__.py")) and d not in ("tests", "benchmarks")
    }
    assert packages <= copied, packages - copied
    assert {"schema", "configs"} <= copied


def test_time_partitioned_logs_compile_with_the_window_read_from_the_logs(tmp_path):
    spec = _compile(tmp_path, dataset="movielens_spans")
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineJob())
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    assert "TemporalWindow" not in tasks and "SpanGate" not in tasks  # no span-range resolution
    assert spec["pipelineSpec"]["root"]["inputDefinitions"]["parameters"] == {
        "range_config": {"type": "STRING"}
    }
    example_gen = tasks["MultiLogExampleGen"]["inputs"]["parameters"]
    assert example_gen["range_config"] == {"componentInputParameter": "range_config"}
    custom = json.loads(
        example_gen["custom_config"]["runtimeValue"]["constantValue"]["stringValue"]
    )
    assert custom["read_window"] is True
    assert custom["ingest_spec"]["spans"] == {"window": 14, "holdout": 1, "drift_blocks": False}
    config = CloudConfig(**REQUIRED, dataset="movielens_spans").pipeline_config()
    assert config.window_from_logs and config.span_runtime_parameter

    def constant(task: str, name: str):
        value = tasks[task]["inputs"]["parameters"][name]["runtimeValue"]["constantValue"]
        return next(iter(value.values()))

    # Drift: the newest span (eval) against the window's earlier spans (train), reported.
    assert json.loads(constant("ExampleValidator", "split_baselines")) == {"eval": "train"}
    assert constant("AnomaliesGate", "drift_blocks") == "0"
    # Warm start from the last blessed model, the resolver KFP v2 compiles.
    base = tasks["Trainer"]["inputs"]["artifacts"]["base_model"]["taskOutputArtifact"]
    assert base["producerTask"] == "latest_blessed_model_resolver-model-resolver"


def test_submission_pins_a_span_or_leaves_it_to_the_data(tmp_path):
    spans = _compile(tmp_path, dataset="movielens_spans")
    assert submit.parameter_values(spans, None, None) == {"range_config": ""}
    pinned = json.loads(submit.parameter_values(spans, "2026-11-30", None)["range_config"])
    assert pinned == {"static_range": {"start_span_number": 20787, "end_span_number": 20787}}
    assert json.loads(submit.parameter_values(spans, None, 3)["range_config"])["static_range"] == {
        "start_span_number": 3,
        "end_span_number": 3,
    }
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        submit.parameter_values(spans, "30/11/2026", None)
    snapshot = _compile(tmp_path)
    assert submit.parameter_values(snapshot, None, None) == {}
    with pytest.raises(ValueError, match="no spans"):
        submit.parameter_values(snapshot, None, 3)
    args = submit.parse_args(["kfp", "--host", "h", "--schedule", "0 3 * * *"])
    assert (args.target, args.schedule, args.span) == ("kfp", "0 3 * * *", None)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spans))
    with pytest.raises(ValueError, match="a schedule ingests the newest span"):
        submit.main(
            [
                "vertex",
                "--project",
                "p",
                "--region",
                "r",
                "--spec",
                str(spec_file),
                "--schedule",
                "0 3 * * *",
                "--span",
                "3",
            ]
        )


def test_a_logs_file_drives_the_cloud_pipeline(tmp_path):
    logs = os.path.join(os.path.dirname(__file__), os.pardir, "configs", "synthetic.yaml")
    spec = _compile(tmp_path, extra_flags=("--logs", logs))
    custom = json.loads(
        spec["pipelineSpec"]["root"]["dag"]["tasks"]["MultiLogExampleGen"]["inputs"]["parameters"][
            "custom_config"
        ]["runtimeValue"]["constantValue"]["stringValue"]
    )
    assert [log["name"] for log in custom["ingest_spec"]["logs"]] == [
        "views",
        "clicks",
        "carts",
        "purchases",
    ]
    config = CloudConfig(**REQUIRED, logs=logs).pipeline_config()
    assert config.schema_path == "/pipeline/schema/synthetic.pbtxt"  # inside the image
    assert config.pipeline_name == "recommender-synthetic"


def test_components_that_run_package_code_are_keyed_by_it(tmp_path):
    from pipeline.source import source_version

    tasks = _compile(tmp_path)["pipelineSpec"]["root"]["dag"]["tasks"]
    for task in ("MultiLogExampleGen", "Transform", "Trainer"):
        params = tasks[task]["inputs"]["parameters"]
        value = params["custom_config"]["runtimeValue"]["constantValue"]["stringValue"]
        assert json.loads(value)["code_version"] == source_version(), task
