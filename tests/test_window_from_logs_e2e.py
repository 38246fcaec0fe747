"""The Kubeflow graph, which reads its window from the logs every run, run locally.

TFX 1.16's KubeflowV2DagRunner compiles no span-range resolver, so the cloud
spec reads the window from the logs (`PipelineConfig.window_from_logs`): train
is the earlier spans, eval the newest. This runs that graph with LocalDagRunner
over the spans of `spanlib`: run 1 finds spans 1 and 2, run 2 adds span 3 (a
new user, a new item and a shifted event mix).
"""

import json
import os

import pytest
from ml_metadata.proto import metadata_store_pb2
from spanlib import artifacts, executions, run_deliveries

from contracts.layout import WARMSTART_DIR_NAME
from models.warmstart import REPORT_FILE

COMPLETE = metadata_store_pb2.Execution.COMPLETE


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("window"))
    _, out, reports = run_deliveries(
        tmp, ((1, 2), (3,)), pipeline_name="recommender-window-e2e", window_from_logs=True
    )
    return out, reports


def test_each_run_reads_the_window_and_holds_out_the_newest_span(runs):
    out, reports = runs
    assert [r.caught_up for r in reports] == [(), ()]
    gens = [e for name, e in executions(out) if name == "MultiLogExampleGen"]
    assert [e.last_known_state for e in gens] == [COMPLETE, COMPLETE]
    examples = [a for a in artifacts(out, "Examples") if "span" in a.properties]
    splits = [json.loads(a.properties["split_names"].string_value) for a in examples]
    assert [sorted(s) for s in splits] == [["catalog", "eval", "train"]] * 2
    assert [a.properties["span"].int_value for a in examples] == [2, 3]


def test_the_second_model_warm_starts_from_the_last_blessed_one(runs):
    out, reports = runs
    assert reports[0].pushed and reports[1].pushed
    models = artifacts(out, "Model")
    trained = []
    for model in models:
        with open(os.path.join(model.uri, WARMSTART_DIR_NAME, REPORT_FILE)) as f:
            trained.append(json.load(f))
    assert trained[0]["warm_start_from"] is None
    assert trained[1]["warm_start_from"] == os.path.join(models[0].uri, WARMSTART_DIR_NAME)
    # Run 2 trains on spans 1-2 and fits span 2 only: the base model never saw it.
    assert trained[1]["fit_after"] == trained[0]["trained_through"]
    assert trained[1]["trained_through"] > trained[0]["trained_through"]


def test_the_newest_span_is_checked_for_drift_against_the_window(runs):
    _, reports = runs
    assert any(line.startswith("eval/event_type:") for line in reports[1].drift), reports[1].drift
    assert not any(line.startswith(("train/", "catalog/")) for r in reports for line in r.drift)


def test_the_gate_reports_drift_without_blocking_by_default(runs):
    out, _ = runs
    gates = [e.last_known_state for name, e in executions(out) if name == "AnomaliesGate"]
    assert gates == [COMPLETE, COMPLETE]
