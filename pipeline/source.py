"""The fingerprint of the code the pipeline's components run.

TFX fingerprints a `module_file` into its cache keys; components named by
import path (the Transform's `preprocessing_fn`, the Trainer's `run_fn`, the
custom executors) are not, so an upgraded package would reuse outputs its old
code computed. The runners put this fingerprint into the configs of the
components that run package code (`PipelineConfig.code_version`).
"""

from __future__ import annotations

import hashlib
import os

PACKAGES = ("components", "contracts", "models", "serving")
"""The packages the components execute (`pipeline` only assembles them)."""


def source_version(root: str | None = None) -> str:
    """A digest of every `.py` file of `PACKAGES` under `root` (default: this checkout).

    Raises:
        ValueError: if no source file is found.
    """
    root = root or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.blake2b(digest_size=12)
    found = 0
    for package in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(root, package)):
            dirs.sort()
            for name in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, root).encode() + b"\0")
                with open(path, "rb") as f:
                    digest.update(f.read() + b"\0")
                found += 1
    if not found:
        raise ValueError(f"no Python sources of {PACKAGES} under {root}")
    return digest.hexdigest()
