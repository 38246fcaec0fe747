"""Running the pipeline on this machine: one run at a time per output directory.

`run_locally` takes an exclusive lock on the output directory (a second run
fails at once with a clear message instead of racing the first one to push),
marks what a killed earlier run left behind (executions still RUNNING in ML
Metadata, and their output directories) as such, runs the pipeline with
LocalDagRunner and returns the version this run pushed, if any.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import logging
import os
import shutil
from collections.abc import Iterator

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.orchestration import metadata

from contracts.layout import pushed_model_names
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline

LOCK_FILE = ".run.lock"
METADATA_FILE = "metadata.sqlite"
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


def run_locally(config: PipelineConfig, output_dir: str) -> str | None:
    """Runs the pipeline with LocalDagRunner; returns the directory this run pushed, if any.

    Raises:
        RuntimeError: if another run holds `output_dir`.
    """
    connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        os.path.join(output_dir, METADATA_FILE)
    )
    model_dir = os.path.join(
        config.serving_root, pushed_model_names(config.model_name)["brute_force"]
    )
    with exclusive_run(output_dir):
        recover_interrupted(connection, config.pipeline_root)
        before = set(os.listdir(model_dir)) if os.path.isdir(model_dir) else set()
        tfx.orchestration.LocalDagRunner().run(create_pipeline(config, connection))
    after = set(os.listdir(model_dir)) if os.path.isdir(model_dir) else set()
    new = sorted((v for v in after - before if v.isdigit()), key=int)
    return os.path.join(model_dir, new[-1]) if new else None
