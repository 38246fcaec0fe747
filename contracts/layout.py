"""Where the serving models live: in the Trainer's Model artifact and after a push.

The Trainer writes the brute-force model to TFX's serving model directory
(`<model uri>/Format-Serving`) and its ScaNN twin next to it. The Pusher copies
both to TF Serving's layout under one version:
`<serving_root>/<model_name>/<version>/` and `<serving_root>/<model_name>_scann/<version>/`.
"""

import os
from typing import Final

SCANN_DIR_NAME: Final = "Format-Serving-ScaNN"
WARMSTART_DIR_NAME: Final = "Format-Warmstart"
"""Next to the serving models: the trained weights and vocabulary rows a later
Trainer warm-starts from (`models.warmstart`)."""
SCANN_GATE_FILE: Final = "scann_gate.json"
"""Next to the serving models: ScaNN's recall against brute force, and whether the
ScaNN twin may be pushed (`{"recall": r, "min_recall": m, "passed": bool, ...}`)."""
SCANN_SUFFIX: Final = "_scann"
INDEX_KINDS: Final = ("brute_force", "scann")


def scann_model_dir(serving_model_dir: str) -> str:
    """The ScaNN twin of a serving model directory: a sibling `Format-Serving-ScaNN`."""
    return os.path.join(os.path.dirname(serving_model_dir.rstrip("/")), SCANN_DIR_NAME)


def warmstart_dir(serving_model_dir: str) -> str:
    """The warm-start weights of a serving model directory: a sibling `Format-Warmstart`."""
    return os.path.join(os.path.dirname(serving_model_dir.rstrip("/")), WARMSTART_DIR_NAME)


def scann_gate_path(serving_model_dir: str) -> str:
    """The ScaNN twin's recall verdict, a sibling file of the serving model directory."""
    return os.path.join(os.path.dirname(serving_model_dir.rstrip("/")), SCANN_GATE_FILE)


def pushed_model_names(model_name: str) -> dict[str, str]:
    """Served model name of each index kind: `<model_name>` and `<model_name>_scann`."""
    return {"brute_force": model_name, "scann": model_name + SCANN_SUFFIX}
