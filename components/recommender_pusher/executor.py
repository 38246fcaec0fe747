"""Executor of RecommenderPusher: atomic, versioned push of both serving models."""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any

from tfx import types
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from contracts.layout import pushed_model_names, scann_model_dir

SERVING_ROOT_KEY = "serving_root"
MODEL_NAME_KEY = "model_name"
FINGERPRINT_FILES = ("fingerprint.pb", "saved_model.pb")


def versions(model_root: str) -> list[int]:
    """Numeric version directories under `<serving_root>/<model_name>/`, ascending."""
    if not fileio.isdir(model_root):
        return []
    names = (n.rstrip("/") for n in fileio.listdir(model_root))
    return sorted(int(n) for n in names if n.isdigit())


def same_model(a: str, b: str) -> bool:
    """Whether two SavedModel directories hold the same model (SavedModel fingerprint)."""
    for name in FINGERPRINT_FILES:
        pa, pb = os.path.join(a, name), os.path.join(b, name)
        if fileio.exists(pa) and fileio.exists(pb):
            return io_utils.read_bytes_file(pa) == io_utils.read_bytes_file(pb)
    return False


def is_blessed(blessing: types.Artifact) -> bool:
    """Reads the Evaluator's verdict from a ModelBlessing artifact."""
    return blessing.get_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1


class Executor(base_executor.BaseExecutor):
    """Pushes `<model>` and `<model>_scann` under one new version, only when blessed.

    Each model is first copied into a hidden `.tmp-*` directory next to its
    versions (TF Serving ignores non-numeric names) and renamed into place once
    both copies are complete: an interrupted push leaves the served versions as
    they were. A model whose fingerprint equals the latest pushed version is not
    pushed again. The PushedModel output carries TFX's `pushed`,
    `pushed_destination` and `pushed_version` properties.
    """

    def Do(  # noqa: N802
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Pushes (or not) and records the outcome on the PushedModel artifact."""
        self._log_startup(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(input_dict["model"])
        blessing = artifact_utils.get_single_instance(input_dict["model_blessing"])
        pushed = artifact_utils.get_single_instance(output_dict["pushed_model"])
        if not is_blessed(blessing):
            logging.info("Model %s is not blessed: not pushed", model.uri)
            pushed.set_int_custom_property("pushed", 0)
            return
        name = exec_properties[MODEL_NAME_KEY]
        root = exec_properties[SERVING_ROOT_KEY]
        serving = path_utils.serving_model_path(model.uri)
        served = pushed_model_names(name)
        sources = {served["brute_force"]: serving, served["scann"]: scann_model_dir(serving)}
        for source in sources.values():
            if not fileio.isdir(source):
                raise ValueError(f"model {model.uri} has no serving model at {source}")
        version = self._push(root, sources)
        pushed.set_int_custom_property("pushed", 1)
        pushed.set_string_custom_property("pushed_destination", os.path.join(root, name))
        pushed.set_string_custom_property("pushed_version", str(version))
        pushed.set_string_custom_property(
            "pushed_scann_destination", os.path.join(root, served["scann"])
        )

    def _push(self, root: str, sources: dict[str, str]) -> int:
        primary = next(iter(sources))
        existing = {n: versions(os.path.join(root, n)) for n in sources}
        latest = existing[primary][-1] if existing[primary] else None
        if latest is not None and all(
            latest in existing[n] and same_model(s, os.path.join(root, n, str(latest)))
            for n, s in sources.items()
        ):
            logging.info("Model already pushed as version %d: not pushed again", latest)
            return latest
        version = max([int(time.time()), *(v + 1 for vs in existing.values() for v in vs)])
        staged = {}
        try:
            for model_name, source in sources.items():
                staged[model_name] = os.path.join(
                    root, model_name, f".tmp-{version}-{uuid.uuid4().hex}"
                )
                io_utils.copy_dir(source, staged[model_name])
            for model_name, tmp in staged.items():
                fileio.rename(tmp, os.path.join(root, model_name, str(version)))
        finally:
            for tmp in staged.values():
                if fileio.exists(tmp):
                    fileio.rmtree(tmp)
        logging.info("Pushed %s as version %d under %s", list(sources), version, root)
        return version
