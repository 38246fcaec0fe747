"""Beam executor that unifies several feedback logs into one event stream.

Each log row becomes one `tf.train.Example` event (user, item, event type,
timestamp, optional rating) joined with its item's catalogue features. A
snapshot's events are split into train/eval by (user, item) pair, so every event
of a pair lands in the same split and no pair leaks from eval into train: each
user's latest pairs (`contracts.holdout`, the default) or a seeded pair hash
(`IngestSpec.split_by`).
The catalogue becomes its own `catalog` split: one example per item, the
retrieval candidates. Ids follow `contracts.ids` (surrounding whitespace removed).

With time-partitioned logs (`IngestSpec.spans`), one execution ingests one span,
the one TFX's file-based driver resolved (`exec_properties["span"]`), into the
splits `events` and `catalog`; the temporal window (`components.temporal_window`)
decides later which spans train and which evaluate.
"""

from __future__ import annotations

import json
import os
from typing import Any

import apache_beam as beam
import numpy as np
from tfx import types
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen import utils as example_gen_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.multilog_example_gen.events import split_of
from components.multilog_example_gen.read import ReadEvents, to_catalog_example
from components.multilog_example_gen.spans import available_spans
from components.multilog_example_gen.spec import IngestSpec
from contracts.holdout import latest_pairs
from contracts.names import (
    CATALOG,
    EVAL,
    EVAL_SPANS_PROPERTY,
    EVENT_SPLITS,
    EVENTS,
    SPAN_SPLITS,
    TRAIN,
    TRAIN_SPANS_PROPERTY,
)
from models import features as F

INGEST_SPEC_KEY = "ingest_spec"
READ_WINDOW_KEY = "read_window"
"""custom_config key: with spans, read the whole window from the logs (see `window_plan`)."""
DATA_FILE = "data_tfrecord"
"""Split files are `Split-<name>/data_tfrecord-*.gz`, as TFX's ExampleGen writes them."""


def output_splits(spec: IngestSpec, read_window: bool = False) -> tuple[str, ...]:
    """Splits of the Examples: train/eval/catalog, or events/catalog for one span."""
    return SPAN_SPLITS if spec.spans and not read_window else (*EVENT_SPLITS, CATALOG)


def window_plan(spec: IngestSpec, root: str, newest: int) -> tuple[list[int], list[int]]:
    """(train spans, eval spans) of the window ending at span `newest`, read from the logs.

    For orchestrators without span-range resolution: the spans every input
    holds up to `newest`, the last `window + holdout` of them.
    """
    spans = [s for s in available_spans(root, spec) if s <= newest]
    return spec.spans.split(spans[-(spec.spans.window + spec.spans.holdout) :])


def input_splits(spec: IngestSpec) -> list[example_gen_pb2.Input.Split]:
    """The input config TFX's file-based driver fingerprints (and resolves spans on).

    A snapshot: every file under the data root (the event splits' `*`) and the
    catalogue. Spans: one split per partitioned file pattern, so the driver
    finds the newest span that every log (and a partitioned catalogue) has and
    fingerprints exactly that span's files.
    """
    if spec.spans:
        return [
            example_gen_pb2.Input.Split(name=name, pattern=pattern)
            for name, pattern in spec.partitioned_patterns().items()
        ]
    return [
        example_gen_pb2.Input.Split(name=TRAIN, pattern="*"),
        example_gen_pb2.Input.Split(name=EVAL, pattern="*"),
        example_gen_pb2.Input.Split(name=CATALOG, pattern=spec.catalog.file),
    ]


def ingest_spec(exec_properties: dict[str, Any]) -> IngestSpec:
    """The ingest spec of `custom_config`, checked against the input config.

    Raises:
        ValueError: if the spec is missing or the input config's splits are not
            the ones `input_splits` builds for it.
    """
    custom = json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
    if INGEST_SPEC_KEY not in custom:
        raise ValueError(f"custom_config must hold {INGEST_SPEC_KEY!r}, got keys {list(custom)}")
    spec = IngestSpec.from_json_dict(custom[INGEST_SPEC_KEY])
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config
    )
    names = sorted(s.name for s in input_config.splits)
    expected = sorted(s.name for s in input_splits(spec))
    if names != expected:
        raise ValueError(
            f"input_config splits must be {expected} for this ingest spec, got {names}"
        )
    return spec


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """Reads the logs and catalogue named by the ingest spec in `custom_config`.

    Rows identical in every column of one log are kept once (a re-delivered log
    line); repeated interactions at different times are all kept. Unlike TFX's
    base executor, the splits are written without a random reshuffle: the same
    logs give the same examples in the same order (on the local runner), so
    a re-run trains the same model.
    """

    def Do(  # noqa: N802
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Generates the splits and writes each as gzipped TFRecords of tf.Examples."""
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = output_dict[standard_component_specs.EXAMPLES_KEY]
        spec = ingest_spec(exec_properties)
        window = _read_window(exec_properties)
        artifact = artifact_utils.get_single_instance(examples)
        artifact.split_names = artifact_utils.encode_split_names(list(output_splits(spec, window)))
        if window:
            train, held_out = window_plan(
                spec,
                exec_properties[standard_component_specs.INPUT_BASE_KEY],
                int(exec_properties[example_gen_utils.SPAN_PROPERTY_NAME]),
            )
            artifact.set_string_custom_property(TRAIN_SPANS_PROPERTY, json.dumps(train))
            artifact.set_string_custom_property(EVAL_SPANS_PROPERTY, json.dumps(held_out))
        if spec.spans:
            # TFX's driver records span/version as custom properties only; the
            # properties are what StatisticsGen and ExampleValidator pass on and
            # what span-range resolution reads.
            artifact.span = int(exec_properties[example_gen_utils.SPAN_PROPERTY_NAME])
            artifact.version = int(
                exec_properties.get(example_gen_utils.VERSION_PROPERTY_NAME) or 0
            )
        with self._make_beam_pipeline() as pipeline:
            splits = self.GenerateExamplesByBeam(pipeline, exec_properties)
            for name, records in splits.items():
                path = os.path.join(artifact_utils.get_split_uri(examples, name), DATA_FILE)
                _ = records | f"Write[{name}]" >> beam.io.WriteToTFRecord(
                    path, file_name_suffix=".gz"
                )

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802
        """Unused: `GenerateExamplesByBeam` reads all logs at once to split them jointly."""
        raise NotImplementedError("MultiLogExampleGen builds all splits in GenerateExamplesByBeam")

    def GenerateExamplesByBeam(  # noqa: N802
        self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]
    ) -> dict[str, beam.pvalue.PCollection]:
        """Returns the splits (`output_splits`) as PCollections of serialized examples.

        Raises:
            ValueError: if the input config does not fit the ingest spec, or a file
                or column is missing (checked before any Beam work starts).
        """
        spec = ingest_spec(exec_properties)
        root = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        span = exec_properties.get(example_gen_utils.SPAN_PROPERTY_NAME) if spec.spans else None
        if spec.spans is not None and span is None:
            raise ValueError("time-partitioned logs need the span TFX's driver resolves")
        if _read_window(exec_properties):
            return self._window_by_beam(pipeline, spec, root, int(span))
        events, catalog = pipeline | "Read" >> ReadEvents(spec, root, span)
        serialized = {
            CATALOG: catalog | "CatalogExample" >> beam.Map(to_catalog_example),
        }
        if spec.spans:
            serialized[EVENTS] = events
        elif spec.split_by == "temporal":
            serialized[TRAIN], serialized[EVAL] = events | "SplitByTime" >> TemporalSplit(
                spec.eval_percent
            )
        else:
            serialized[TRAIN], serialized[EVAL] = events | "SplitByPair" >> beam.Partition(
                lambda ex, _n: split_of(*_pair(ex), spec.seed, spec.eval_percent), 2
            )
        return _serialized(serialized)

    def _window_by_beam(
        self, pipeline: beam.Pipeline, spec: IngestSpec, root: str, newest: int
    ) -> dict[str, beam.pvalue.PCollection]:
        """train/eval/catalog of the window ending at `newest`, every span read from the logs."""
        train, held_out = window_plan(spec, root, newest)
        read = {
            s: pipeline | f"Read[span {s}]" >> ReadEvents(spec, root, s) for s in train + held_out
        }
        return _serialized(
            {
                TRAIN: [read[s][0] for s in train] | "Train" >> beam.Flatten(),
                EVAL: [read[s][0] for s in held_out] | "Eval" >> beam.Flatten(),
                CATALOG: read[held_out[-1]][1] | "CatalogExample" >> beam.Map(to_catalog_example),
            }
        )


def _pair(example) -> tuple[str, str]:
    feature = example.features.feature
    return (
        feature[F.USER_ID].bytes_list.value[0].decode(),
        feature[F.ITEM_ID].bytes_list.value[0].decode(),
    )


def _held_out_items(user_events, percent: float) -> tuple[str, frozenset[str]]:
    user, events = user_events
    items, times = zip(*events, strict=True)
    items = np.asarray(items, dtype=object)
    held = latest_pairs(np.zeros(len(items), np.int64), items, np.asarray(times), percent)
    return user, frozenset(items[held].tolist())


def _user_event(example) -> tuple[str, tuple[str, int]]:
    user, item = _pair(example)
    return user, (item, example.features.feature[F.TIMESTAMP].int64_list.value[0])


class TemporalSplit(beam.PTransform):
    """(train, eval) of a snapshot's events: each user's latest pairs are eval.

    The rule is `contracts.holdout.latest_pairs`, applied per user; the events
    keep the order they were read in, so the splits stay deterministic.

    Args:
        eval_percent: Share of each user's pairs held out.
    """

    def __init__(self, eval_percent: float):
        super().__init__()
        self.eval_percent = eval_percent

    def expand(self, events):  # noqa: D102
        held = (
            events
            | "UserEvent" >> beam.Map(_user_event)
            | "ByUser" >> beam.GroupByKey()
            | "LatestPairs" >> beam.Map(_held_out_items, self.eval_percent)
            | "WithHeldOut" >> beam.Filter(lambda kv: bool(kv[1]))
        )

        def split(example, _n, held_out):
            user, item = _pair(example)
            return int(item in held_out.get(user, ()))

        return events | "Partition" >> beam.Partition(split, 2, beam.pvalue.AsDict(held))


def _read_window(exec_properties: dict[str, Any]) -> bool:
    custom = json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
    return bool(custom.get(READ_WINDOW_KEY))


def _serialized(splits: dict[str, beam.pvalue.PCollection]) -> dict[str, beam.pvalue.PCollection]:
    return {
        name: records
        | f"Serialize[{name}]" >> beam.Map(lambda ex: ex.SerializeToString(deterministic=True))
        for name, records in splits.items()
    }
