"""The local run: one run per output directory, and what a killed run leaves is cleaned."""

import os
import subprocess
import sys

from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from pipeline.local import exclusive_run, recover_interrupted

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
Execution = metadata_store_pb2.Execution


def test_a_second_run_on_the_same_output_fails_clearly(tmp_path):
    with exclusive_run(str(tmp_path)):
        proc = subprocess.run(
            [sys.executable, os.path.join(ROOT, "local_runner.py"), "--output_dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert proc.returncode != 0
    assert f"another run (pid {os.getpid()}) is using {tmp_path}" in proc.stderr
    assert not (tmp_path / "pipeline_root").exists()  # it touched nothing
    with exclusive_run(str(tmp_path)):  # released: the next run gets it
        pass


def test_executions_left_running_are_marked_and_their_outputs_removed(tmp_path):
    connection = metadata.sqlite_metadata_connection_config(str(tmp_path / "mlmd.sqlite"))
    root = tmp_path / "root"
    with metadata.Metadata(connection) as m:
        store = m.store
        node_type = store.put_context_type(metadata_store_pb2.ContextType(name="node"))
        exec_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Transform"))
        [context] = store.put_contexts(
            [metadata_store_pb2.Context(type_id=node_type, name="recommender.Transform")]
        )
        done, killed = store.put_executions(
            [
                Execution(type_id=exec_type, last_known_state=Execution.COMPLETE),
                Execution(type_id=exec_type, last_known_state=Execution.RUNNING),
            ]
        )
        store.put_attributions_and_associations(
            [],
            [
                metadata_store_pb2.Association(context_id=context, execution_id=e)
                for e in (done, killed)
            ],
        )
    for execution in (done, killed):
        (root / "Transform" / "transform_graph" / str(execution)).mkdir(parents=True)
        (root / "Transform" / ".system" / "executor_execution" / str(execution)).mkdir(parents=True)
    assert recover_interrupted(connection, str(root)) == ["Transform"]
    with metadata.Metadata(connection) as m:
        states = {e.id: e.last_known_state for e in m.store.get_executions()}
    assert states == {done: Execution.COMPLETE, killed: Execution.CANCELED}
    assert sorted(os.listdir(root / "Transform" / "transform_graph")) == [str(done)]
    assert sorted(os.listdir(root / "Transform" / ".system" / "executor_execution")) == [str(done)]
    assert recover_interrupted(connection, str(root)) == []  # nothing left to mark


def test_the_run_report_says_why_nothing_was_pushed(tmp_path):
    from pipeline.local import RunReport, latest_verdict

    connection = metadata.sqlite_metadata_connection_config(str(tmp_path / "mlmd.sqlite"))
    assert latest_verdict(connection) == (None, "", "")
    with metadata.Metadata(connection) as m:
        store = m.store
        kinds = {
            name: store.put_artifact_type(metadata_store_pb2.ArtifactType(name=name))
            for name in ("ModelBlessing", "ModelEvaluation")
        }
        blessings = []
        for blessed, message in ((1, "passed"), (0, "rmse_lift = 0.0040 fails {...}")):
            artifact = metadata_store_pb2.Artifact(type_id=kinds["ModelBlessing"])
            artifact.custom_properties["blessed"].int_value = blessed
            artifact.custom_properties["blessing_message"].string_value = message
            blessings.append(artifact)
        store.put_artifacts(blessings)
        store.put_artifacts(
            [metadata_store_pb2.Artifact(type_id=kinds["ModelEvaluation"], uri=str(tmp_path / "e"))]
        )
    blessed, verdict, gate = latest_verdict(connection)  # the newest evaluation's
    assert (blessed, verdict, gate) == (
        False,
        "rmse_lift = 0.0040 fails {...}",
        str(tmp_path / "e" / "gate.json"),
    )
    refused = RunReport(None, blessed=blessed, verdict=verdict, gate_report=gate).outcome()
    assert (
        refused.startswith("No model pushed: not blessed (rmse_lift = 0.0040") and gate in refused
    )
    assert "identical" in RunReport(None, blessed=True, verdict="passed").outcome()
    assert RunReport("/s/1").outcome() == "Pushed model: /s/1"
