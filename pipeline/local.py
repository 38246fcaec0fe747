"""Running the pipeline on this machine: one run at a time per output directory.

`run_locally` takes an exclusive lock on the output directory (a second run
fails at once with a clear message instead of racing the first one to push),
marks what a killed earlier run left behind (executions still RUNNING in ML
Metadata, and their output directories) as such, runs the pipeline with
LocalDagRunner and reports the version this run pushed, if any.

With time-partitioned logs, TFX's ExampleGen ingests the newest span of a run
only; spans delivered earlier that were never ingested (a backfill, or days a
schedule missed) are first ingested and validated one by one, oldest first,
so that the rolling window finds them. So is an earlier span whose files changed
since its last ingestion (TFX's input fingerprint: names, sizes, modification
times): a re-delivered or fixed span is validated again, and once accepted the
window reads its new version.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import glob
import logging
import os
import shutil
from collections.abc import Iterator

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.components.example_gen import utils as example_gen_utils
from tfx.orchestration import metadata
from tfx.proto import range_config_pb2
from tfx.types import artifact_utils

from components.anomalies_gate import describe_anomalies, load_anomalies
from components.multilog_example_gen.executor import input_splits
from components.multilog_example_gen.read import span_holds_events
from components.multilog_example_gen.spans import available_spans
from components.recommender_evaluator.executor import GATE_REPORT
from components.recommender_evaluator.executor import MESSAGE_KEY as BLESSING_MESSAGE
from contracts.layout import pushed_model_names
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline
from pipeline.source import source_version

LOCK_FILE = ".run.lock"
METADATA_FILE = "metadata.sqlite"
EXAMPLE_GEN, VALIDATOR = "MultiLogExampleGen", "ExampleValidator"
_Execution = metadata_store_pb2.Execution


@contextlib.contextmanager
def exclusive_run(output_dir: str) -> Iterator[None]:
    """Holds an exclusive lock on `output_dir` for the duration of a run.

    Raises:
        RuntimeError: naming the lock file and the holder's pid if another run
            holds it.
    """
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, LOCK_FILE)
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise RuntimeError(
                f"another run (pid {holder}) is using {output_dir} ({path}): wait for it "
                "to finish, or run with another --output_dir"
            ) from e
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def recover_interrupted(
    connection: metadata_store_pb2.ConnectionConfig, pipeline_root: str
) -> list[str]:
    """Marks executions a killed run left RUNNING as CANCELED and removes their outputs.

    Only call it while holding `exclusive_run`: then no execution is really running.

    Returns:
        The node ids of the executions it marked.
    """
    marked = []
    with metadata.Metadata(connection) as m:
        for execution in m.store.get_executions():
            if execution.last_known_state not in (_Execution.RUNNING, _Execution.NEW):
                continue
            nodes = [
                c.name.split(".", 1)[-1]
                for c in m.store.get_contexts_by_execution(execution.id)
                if c.type == "node"
            ]
            for node in nodes:
                pattern = os.path.join(pipeline_root, node, "*", str(execution.id))
                system = os.path.join(pipeline_root, node, ".system", "*", str(execution.id))
                for directory in glob.glob(pattern) + glob.glob(system):
                    shutil.rmtree(directory, ignore_errors=True)
            execution.last_known_state = _Execution.CANCELED
            execution.custom_properties[
                "interrupted"
            ].string_value = "left RUNNING by a run that was killed; marked by the next run"
            m.store.put_executions([execution])
            marked.extend(nodes)
    if marked:
        logging.warning("Marked executions of an interrupted run as CANCELED: %s", marked)
    return marked


@dataclasses.dataclass(frozen=True)
class RunReport:
    """What a local run did.

    Attributes:
        pushed: The model version directory this run pushed, if any.
        caught_up: Earlier spans this run ingested before the newest: never
            ingested, or changed since.
        empty: Earlier spans not yet ingested whose logs hold no event: skipped
            (a span with no event has nothing to train or validate), so they do
            not block the spans after them.
        drift: Drift of the newest validated span from the previous one, one
            line per feature (empty without spans or drift).
        blessed: The newest Evaluator verdict (None before any evaluation).
        verdict: Its blessing message ("passed", or the failed thresholds).
        gate_report: The `gate.json` of that evaluation (every threshold).
    """

    pushed: str | None
    caught_up: tuple[int, ...] = ()
    empty: tuple[int, ...] = ()
    drift: tuple[str, ...] = ()
    blessed: bool | None = None
    verdict: str = ""
    gate_report: str = ""

    def outcome(self) -> str:
        """One line: what was pushed, or why nothing was."""
        if self.pushed:
            return f"Pushed model: {self.pushed}"
        if self.blessed is None:
            return "No model pushed: nothing was evaluated"
        if not self.blessed:
            return f"No model pushed: not blessed ({self.verdict}); see {self.gate_report}"
        return "No model pushed: the blessed model is identical to the one already served"


def latest_verdict(
    connection: metadata_store_pb2.ConnectionConfig,
) -> tuple[bool | None, str, str]:
    """(blessed, blessing message, gate.json path) of the newest evaluation, if any."""
    with metadata.Metadata(connection) as m:
        blessings = m.store.get_artifacts_by_type("ModelBlessing")
        evaluations = m.store.get_artifacts_by_type("ModelEvaluation")
    if not blessings:
        return None, "", ""
    blessing = max(blessings, key=lambda a: a.id)
    properties = blessing.custom_properties
    message = properties.get(BLESSING_MESSAGE)
    report = ""
    if evaluations:
        report = os.path.join(max(evaluations, key=lambda a: a.id).uri, GATE_REPORT)
    return (
        bool(properties["blessed"].int_value) if "blessed" in properties else False,
        message.string_value if message else "",
        report,
    )


def ingested_fingerprints(
    connection: metadata_store_pb2.ConnectionConfig, pipeline_name: str
) -> dict[int, str]:
    """The input fingerprint of each span's latest ingestion by ExampleGen (any run)."""
    with metadata.Metadata(connection) as m:
        context = m.store.get_context_by_type_and_name("node", f"{pipeline_name}.{EXAMPLE_GEN}")
        found = m.store.get_artifacts_by_context(context.id) if context else []
    latest: dict[int, str] = {}
    for artifact in sorted(found, key=lambda a: a.id):
        if "span" in artifact.custom_properties:
            properties = artifact.custom_properties
            fingerprint = properties.get(example_gen_utils.FINGERPRINT_PROPERTY_NAME)
            span = properties["span"].int_value
            latest[span] = fingerprint.string_value if fingerprint else ""
    return latest


def span_fingerprint(config: PipelineConfig, span: int) -> str:
    """The fingerprint ExampleGen's driver gives `span`'s files now (names, sizes, times)."""
    pinned = range_config_pb2.RangeConfig(
        static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
    )
    fingerprint, _, _ = example_gen_utils.calculate_splits_fingerprint_span_and_version(
        config.data_root, input_splits(config.ingest), pinned
    )
    return fingerprint


def latest_drift(connection: metadata_store_pb2.ConnectionConfig, pipeline_name: str) -> list[str]:
    """Drift lines of the newest ExampleValidator output of the pipeline."""
    with metadata.Metadata(connection) as m:
        context = m.store.get_context_by_type_and_name("node", f"{pipeline_name}.{VALIDATOR}")
        anomaly_type = m.store.get_artifact_type("ExampleAnomalies") if context else None
        outputs = [
            a
            for a in (m.store.get_artifacts_by_context(context.id) if context else [])
            if a.type_id == anomaly_type.id
        ]
    if not outputs:
        return []
    newest = artifact_utils.deserialize_artifact(anomaly_type, max(outputs, key=lambda a: a.id))
    return describe_anomalies(load_anomalies(newest), drift=True)


def run_locally(config: PipelineConfig, output_dir: str) -> RunReport:
    """Runs the pipeline with LocalDagRunner (after catching up on missing spans).

    A pipeline that reads its window from the logs (`window_from_logs`) has no
    spans to catch up on.

    The run's components are keyed by this checkout's code
    (`PipelineConfig.code_version`, unless the config sets one).

    Raises:
        RuntimeError: if another run holds `output_dir`.
    """
    config = dataclasses.replace(config, code_version=config.code_version or source_version())
    connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        os.path.join(output_dir, METADATA_FILE)
    )
    model_dir = os.path.join(
        config.serving_root, pushed_model_names(config.model_name)["brute_force"]
    )
    caught_up: list[int] = []
    empty: list[int] = []
    with exclusive_run(output_dir):
        recover_interrupted(connection, config.pipeline_root)
        before = set(os.listdir(model_dir)) if os.path.isdir(model_dir) else set()
        catch_up = config.ingest_span is None and not config.window_from_logs
        if config.ingest.spans is not None and catch_up:
            ingested = ingested_fingerprints(connection, config.pipeline_name)
            for span in available_spans(config.data_root, config.ingest)[:-1]:
                if ingested.get(span) == span_fingerprint(config, span):
                    continue
                if not span_holds_events(config.ingest, config.data_root, span):
                    logging.warning("Span %d holds no event in any log: skipped", span)
                    empty.append(span)
                    continue
                if span in ingested:
                    logging.info("Span %d changed since it was ingested: ingesting it again", span)
                logging.info("Catching up: ingesting span %d", span)
                backfill = dataclasses.replace(config, ingest_span=span, ingest_only=True)
                tfx.orchestration.LocalDagRunner().run(create_pipeline(backfill, connection))
                caught_up.append(span)
        tfx.orchestration.LocalDagRunner().run(create_pipeline(config, connection))
    after = set(os.listdir(model_dir)) if os.path.isdir(model_dir) else set()
    new = sorted((v for v in after - before if v.isdigit()), key=int)
    drift = latest_drift(connection, config.pipeline_name) if config.ingest.spans else []
    blessed, verdict, gate_report = latest_verdict(connection)
    return RunReport(
        os.path.join(model_dir, new[-1]) if new else None,
        caught_up=tuple(caught_up),
        empty=tuple(empty),
        drift=tuple(drift),
        blessed=blessed,
        verdict=verdict,
        gate_report=gate_report,
    )
