"""Executor of TemporalWindow: picks the spans, copies their files into train/eval/catalog.

The split files are copied (not re-encoded) under names that keep their span,
so the window costs a file copy per span, never a re-ingest.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from components.multilog_example_gen.spec import SpanConfig
from contracts.names import CATALOG, EVAL, EVAL_SPANS_PROPERTY, EVENTS, TRAIN, TRAIN_SPANS_PROPERTY

SPANS_KEY = "spans"
EXAMPLES_KEY = "examples"
WINDOW_KEY = "window"
HOLDOUT_KEY = "holdout"


def latest_by_span(artifacts: list[types.Artifact]) -> dict[int, types.Artifact]:
    """The newest artifact (highest id: a re-ingested span's last version) of each span."""
    latest: dict[int, types.Artifact] = {}
    for artifact in sorted(artifacts, key=lambda a: a.id):
        latest[artifact.span] = artifact
    return latest


def copy_split(sources: dict[int, types.Artifact], split: str, target: str) -> int:
    """Copies the `split` files of each span's Examples into `target`; returns files copied."""
    copied = 0
    fileio.makedirs(target)
    for span, artifact in sorted(sources.items()):
        directory = artifact_utils.get_split_uri([artifact], split)
        for name in sorted(fileio.listdir(directory)):
            fileio.copy(
                os.path.join(directory, name),
                os.path.join(target, f"span-{span}-{name}"),
                overwrite=True,
            )
            copied += 1
    return copied


class Executor(base_executor.BaseExecutor):
    """Writes the window's train/eval/catalog splits and records which spans they hold."""

    def Do(  # noqa: N802
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Chooses the spans and copies their files.

        Raises:
            ValueError: when too few spans are available.
        """
        examples = latest_by_span(input_dict[SPANS_KEY])
        spans = SpanConfig(window=exec_properties[WINDOW_KEY], holdout=exec_properties[HOLDOUT_KEY])
        train, held_out = spans.split(list(examples))
        output = artifact_utils.get_single_instance(output_dict[EXAMPLES_KEY])
        output.split_names = artifact_utils.encode_split_names([TRAIN, EVAL, CATALOG])
        output.span = held_out[-1]
        output.version = 0
        for split, sources, source_split in (
            (TRAIN, train, EVENTS),
            (EVAL, held_out, EVENTS),
            (CATALOG, held_out[-1:], CATALOG),
        ):
            chosen = {s: examples[s] for s in sources}
            target = artifact_utils.get_split_uri([output], split)
            logging.info(
                "%s: spans %s (%d files)",
                split,
                sorted(chosen),
                copy_split(chosen, source_split, target),
            )
        output.set_string_custom_property(TRAIN_SPANS_PROPERTY, json.dumps(train))
        output.set_string_custom_property(EVAL_SPANS_PROPERTY, json.dumps(held_out))
