"""Executor of RecommenderPusher: atomic, versioned push of both serving models.

Both models are copied into `<serving_root>/.staging/` and checked against the
sources' content digests. Then the ScaNN twin is renamed into place and the
brute-force model last: that rename is the commit point. If it fails, the
ScaNN version just renamed is removed again, so no half pair is ever published
and the previous pair stays served. Staging left by a killed push is removed by
the next push. A pushed pair is compared with the sources by content, not only
by fingerprint, so a damaged latest version (a deleted `saved_model.pb` or
`variables/`) is repaired by pushing a new version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from typing import Any

from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from contracts.layout import pushed_model_names, scann_gate_path, scann_model_dir

STAGING_DIR = ".staging"
STALE_STAGING_S = 3600
"""Staged copies older than this are left by a killed push and are removed."""
SCANN_DESTINATION_KEY = "pushed_scann_destination"
SCANN_PUSHED_KEY = "scann_pushed"
SCANN_NOT_PUSHED_KEY = "scann_not_pushed_reason"


def scann_verdict(serving_model_dir: str) -> tuple[bool, str]:
    """Whether the ScaNN twin passed its recall gate at export, and why not.

    A missing or unreadable verdict fails closed.
    """
    path = scann_gate_path(serving_model_dir)
    if not fileio.exists(path):
        return False, f"no ScaNN recall verdict at {path}"
    try:
        gate = json.loads(io_utils.read_string_file(path))
        passed, recall, floor = bool(gate["passed"]), gate["recall"], gate["min_recall"]
    except (ValueError, KeyError, TypeError) as e:
        return False, f"unreadable ScaNN recall verdict {path}: {e}"
    if not passed:
        return False, (
            f"ScaNN recall@{gate.get('k')} against the exact search is {recall:.4f} on "
            f"{gate.get('users')} evaluation users, below ScannConfig.min_recall {floor}"
        )
    return True, ""


def versions(model_root: str) -> list[int]:
    """Numeric version directories under `<serving_root>/<model_name>/`, ascending."""
    if not fileio.isdir(model_root):
        return []
    names = (n.rstrip("/") for n in fileio.listdir(model_root))
    return sorted(int(n) for n in names if n.isdigit())


def tree_digest(directory: str) -> str:
    """SHA-256 of every file's relative path and bytes under `directory` ("" if absent)."""
    if not fileio.isdir(directory):
        return ""
    digest = hashlib.sha256()
    for root, _, files in sorted(fileio.walk(directory)):
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, directory).encode() + b"\0")
            with fileio.open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
            digest.update(b"\0")
    return digest.hexdigest()


def copy_model(source: str, target: str) -> None:
    """Copies a SavedModel directory, `saved_model.pb` last (as TFX's Pusher does)."""
    io_utils.copy_dir(source, target, deny_regex_patterns=[r"saved_model\.pb"])
    io_utils.copy_file(
        os.path.join(source, "saved_model.pb"), os.path.join(target, "saved_model.pb")
    )


def remove_stale_staging(serving_root: str, now: float) -> list[str]:
    """Removes staged copies older than `STALE_STAGING_S`; returns what it removed."""
    staging = os.path.join(serving_root, STAGING_DIR)
    removed = []
    if fileio.isdir(staging):
        for name in fileio.listdir(staging):
            path = os.path.join(staging, name.rstrip("/"))
            if now - fileio.stat(path).mtime_nsec / 1e9 > STALE_STAGING_S:
                fileio.rmtree(path)
                removed.append(path)
    return removed


def push_pair(
    serving_root: str,
    sources: dict[str, str],
    targets: dict[str, str],
) -> tuple[int, bool]:
    """Pushes the brute-force model (and its ScaNN twin, if given) under one new version.

    Args:
        serving_root: Holds the model roots and the staging directory.
        sources: Model directory by index kind: "brute_force", and "scann" unless
            the twin is not pushed.
        targets: Versioned model root by index kind (the same kinds).

    Returns:
        (version, pushed): the new version, or the latest one and False when it
        already holds exactly these models.

    Raises:
        ValueError: if a staged copy differs from its source.
        Exception: the filesystem's error when a copy or rename fails; nothing
            is published then.
    """
    removed = remove_stale_staging(serving_root, time.time())
    if removed:
        logging.warning("Removed staging left by an interrupted push: %s", removed)
    digests = {kind: tree_digest(path) for kind, path in sources.items()}
    existing = {kind: versions(root) for kind, root in targets.items()}
    latest = existing["brute_force"][-1] if existing["brute_force"] else None
    if latest is not None:
        pushed = {k: tree_digest(os.path.join(targets[k], str(latest))) for k in targets}
        if pushed == digests:
            logging.info("Model already pushed as version %d: not pushed again", latest)
            return latest, False
        logging.warning(
            "Latest pushed version %d differs from this model%s",
            latest,
            "" if all(pushed.values()) else " and is incomplete: pushing a repaired version",
        )
    version = max([int(time.time()), *(v + 1 for vs in existing.values() for v in vs)])
    staging = os.path.join(serving_root, STAGING_DIR, f"{version}-{uuid.uuid4().hex}")
    staged = {kind: os.path.join(staging, kind) for kind in sources}
    try:
        for kind, source in sources.items():
            copy_model(source, staged[kind])
            if tree_digest(staged[kind]) != digests[kind]:
                raise ValueError(f"staged copy of {source} differs from it: not pushed")
        for kind in targets:
            fileio.makedirs(targets[kind])
        published = None
        if "scann" in staged:
            published = os.path.join(targets["scann"], str(version))
            fileio.rename(staged["scann"], published)
        try:
            fileio.rename(staged["brute_force"], os.path.join(targets["brute_force"], str(version)))
        except Exception:
            if published:
                fileio.rmtree(published)
            raise
    finally:
        if fileio.exists(staging):
            fileio.rmtree(staging)
    logging.info("Pushed %s as version %d", sorted(targets.values()), version)
    return version, True


class Executor(pusher_executor.Executor):
    """TFX's Pusher executor, pushing `<model>` and `<model>_scann` under one version."""

    def Do(  # noqa: N802
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Pushes (or not) and records the outcome on the PushedModel artifact.

        Raises:
            ValueError: if the push destination is not a filesystem, or the
                model lacks its ScaNN twin.
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY]
        )
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination
        )
        if destination.WhichOneof("destination") != "filesystem":
            raise ValueError(f"RecommenderPusher pushes to a filesystem, got {destination}")
        base = destination.filesystem.base_directory.rstrip("/")
        serving_root, name = os.path.dirname(base), os.path.basename(base)
        serving = self.GetModelPath(input_dict)
        sources = {"brute_force": serving, "scann": scann_model_dir(serving)}
        for source in sources.values():
            if not fileio.isdir(source):
                raise ValueError(f"the model has no serving model at {source}")
        scann_ok, why = scann_verdict(serving)
        if not scann_ok:
            logging.warning("The ScaNN twin is not pushed: %s", why)
            del sources["scann"]
        targets = {
            kind: os.path.join(serving_root, served)
            for kind, served in pushed_model_names(name).items()
            if kind in sources
        }
        model_push.set_int_custom_property(SCANN_PUSHED_KEY, int(scann_ok))
        if not scann_ok:
            model_push.set_string_custom_property(SCANN_NOT_PUSHED_KEY, why)
        version, pushed = push_pair(serving_root, sources, targets)
        if not pushed:
            self._MarkNotPushed(model_push)
            model_push.set_string_custom_property("pushed_version", str(version))
            return
        io_utils.copy_dir(serving, model_push.uri)  # the stock Pusher's archive copy
        self._MarkPushed(model_push, os.path.join(base, str(version)), str(version))
        if scann_ok:
            model_push.set_string_custom_property(
                SCANN_DESTINATION_KEY, os.path.join(targets["scann"], str(version))
            )
