"""Beam executor that unifies several feedback logs into one event stream.

Each log row becomes one `tf.train.Example` event (user, item, event type,
timestamp, optional rating) joined with its item's catalogue features. Events
are split into train/eval by a seeded hash of the (user, item) pair, so every
event of a pair lands in the same split and no pair leaks from eval into train.
The catalogue becomes its own `catalog` split: one example per item, the
retrieval candidates.
"""

from __future__ import annotations

import collections
import csv
import json
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen import base_example_gen_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.multilog_example_gen.spec import CatalogSpec, IngestSpec, LogSpec
from contracts.hashing import pair_bucket
from contracts.names import CATALOG, EVAL, EVENT_SPLITS, TRAIN
from models import features as F

INGEST_SPEC_KEY = "ingest_spec"
FUTURE_TOLERANCE_S = 86_400
"""Events may be stamped up to a day after ingest time (clock skew); later is an error."""


def read_header(path: str) -> list[str]:
    """Returns the CSV header of `path`.

    Raises:
        ValueError: if the file is missing or empty.
    """
    if not tf.io.gfile.exists(path):
        raise ValueError(f"log file {path!r} does not exist")
    with tf.io.gfile.GFile(path) as f:
        first = f.readline()
    if not first.strip():
        raise ValueError(f"log file {path!r} is empty: expected a CSV header")
    return next(csv.reader([first]))


def check_columns(path: str, what: str, required: Sequence[str]) -> list[str]:
    """Checks that the CSV at `path` has the `required` columns; returns its header.

    Raises:
        ValueError: naming the file and every missing column.
    """
    header = read_header(path)
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{what} {path!r} is missing column(s) {missing}; header has {header}")
    return header


def parse_row(line: str, header: Sequence[str], source: str) -> dict[str, str]:
    """Parses one CSV line into a column -> value dict.

    Raises:
        ValueError: if the row's field count differs from the header's.
    """
    values = next(csv.reader([line]))
    if len(values) != len(header):
        raise ValueError(
            f"malformed row in {source}: expected {len(header)} fields {list(header)}, "
            f"got {len(values)}: {line!r}"
        )
    return dict(zip(header, values, strict=True))


def split_of(user_id: str, item_id: str, seed: int, eval_percent: int) -> int:
    """Returns 0 (train) or 1 (eval) for a (user, item) pair; stable across runs."""
    return int(pair_bucket(user_id, item_id, seed) < eval_percent)


def _bytes(*values: str) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))


def catalog_features(row: dict[str, str], spec: CatalogSpec) -> dict[str, tf.train.Feature]:
    """Item features of one catalogue row."""
    raw = row[spec.genres_column]
    genres = [] if raw in ("", spec.empty_genres) else raw.split(spec.genres_separator)
    return {
        F.ITEM_ID: _bytes(row[spec.item_column]),
        F.TITLE: _bytes(row[spec.title_column]),
        F.GENRES: _bytes(*genres),
    }


def event_example(
    row: dict[str, str],
    log: LogSpec,
    catalog: dict[str, dict[str, tf.train.Feature]],
    max_timestamp: int | None = None,
) -> tf.train.Example:
    """Builds one event example from a parsed log row.

    Items missing from the catalogue keep their id and get an empty title and no
    genres, so no event is dropped.

    Raises:
        ValueError: on an empty id, a non-numeric timestamp or rating, or a
            timestamp after `max_timestamp` (a clock or unit bug upstream).
    """
    user, item = row[log.user_column].strip(), row[log.item_column].strip()
    if not user or not item:
        raise ValueError(f"log {log.name!r}: empty user or item id in row {row}")
    feats = dict(
        catalog.get(item) or {F.ITEM_ID: _bytes(item), F.TITLE: _bytes(""), F.GENRES: _bytes()}
    )
    feats[F.USER_ID] = _bytes(user)
    feats[F.EVENT_TYPE] = _bytes(log.event_type)
    try:
        feats[F.TIMESTAMP] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=[int(row[log.timestamp_column])])
        )
        if log.rating_column and row[log.rating_column].strip():
            feats[F.RATING] = tf.train.Feature(
                float_list=tf.train.FloatList(value=[float(row[log.rating_column])])
            )
    except ValueError as e:
        raise ValueError(f"log {log.name!r}: non-numeric timestamp or rating in row {row}") from e
    timestamp = feats[F.TIMESTAMP].int64_list.value[0]
    if max_timestamp is not None and timestamp > max_timestamp:
        raise ValueError(
            f"log {log.name!r}: timestamp {timestamp} is in the future (later than "
            f"{max_timestamp}, ingest time + {FUTURE_TOLERANCE_S} s) in row {row}"
        )
    return tf.train.Example(features=tf.train.Features(feature=feats))


def _read_csv(
    pipeline: beam.Pipeline, label: str, path: str, header: Sequence[str], dedupe: bool = False
):
    lines = (
        pipeline
        | f"Read[{label}]" >> beam.io.ReadFromText(path, skip_header_lines=1)
        | f"DropBlank[{label}]" >> beam.Filter(lambda line: bool(line.strip()))
    )
    if dedupe:
        lines = lines | f"DropDuplicateRows[{label}]" >> beam.Distinct()
    return lines | f"Parse[{label}]" >> beam.Map(parse_row, header=list(header), source=path)


def _catalog_entry(row: dict[str, str], spec: CatalogSpec):
    return row[spec.item_column], catalog_features(row, spec)


def _to_catalog_example(entry) -> tf.train.Example:
    return tf.train.Example(features=tf.train.Features(feature=entry[1]))


def _check_unique(entries: Iterable[Any]) -> None:
    counts = collections.Counter(item_id for item_id, _ in entries)
    dupes = sorted(i for i, n in counts.items() if n > 1)
    if dupes:
        raise ValueError(f"catalogue has duplicate item ids, e.g. {dupes[:10]}")


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """Reads the logs and catalogue named by the ingest spec in `custom_config`.

    Rows identical in every column of one log are kept once (a re-delivered log
    line); repeated interactions at different times are all kept.
    """

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802
        """Unused: `GenerateExamplesByBeam` reads all logs at once to split them jointly."""
        raise NotImplementedError("MultiLogExampleGen builds all splits in GenerateExamplesByBeam")

    def GenerateExamplesByBeam(  # noqa: N802
        self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]
    ) -> dict[str, beam.pvalue.PCollection]:
        """Returns the train, eval and catalog splits as PCollections of serialized examples.

        Raises:
            ValueError: if the input config's split names are not train/eval/catalog,
                or a file or column is missing (checked before any Beam work starts).
        """
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config
        )
        names = [s.name for s in input_config.splits]
        if sorted(names) != sorted((*EVENT_SPLITS, CATALOG)):
            raise ValueError(f"input_config splits must be train/eval/catalog, got {names}")
        custom = json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
        if INGEST_SPEC_KEY not in custom:
            raise ValueError(
                f"custom_config must hold {INGEST_SPEC_KEY!r}, got keys {list(custom)}"
            )
        spec = IngestSpec.from_json_dict(custom[INGEST_SPEC_KEY])
        root = exec_properties[standard_component_specs.INPUT_BASE_KEY]

        catalog_path = os.path.join(root, spec.catalog.file)
        catalog_header = check_columns(catalog_path, "catalogue", spec.catalog.required_columns)
        log_headers = {
            log.name: check_columns(
                os.path.join(root, log.file), f"log {log.name!r}", log.required_columns
            )
            for log in spec.logs
        }

        catalog = _read_csv(
            pipeline, "catalog", catalog_path, catalog_header
        ) | "CatalogEntry" >> beam.Map(_catalog_entry, spec=spec.catalog)
        _ = catalog | "CatalogIds" >> beam.combiners.ToList() | beam.Map(_check_unique)
        catalog_side = beam.pvalue.AsDict(catalog)

        max_timestamp = int(time.time()) + FUTURE_TOLERANCE_S
        events = [
            _read_csv(pipeline, log.name, os.path.join(root, log.file), log_headers[log.name], True)
            | f"ToExample[{log.name}]"
            >> beam.Map(event_example, log=log, catalog=catalog_side, max_timestamp=max_timestamp)
            for log in spec.logs
        ]
        train, eval_ = (
            events
            | "MergeLogs" >> beam.Flatten()
            | "SplitByPair"
            >> beam.Partition(
                lambda ex, _n: split_of(
                    ex.features.feature[F.USER_ID].bytes_list.value[0].decode(),
                    ex.features.feature[F.ITEM_ID].bytes_list.value[0].decode(),
                    spec.seed,
                    spec.eval_percent,
                ),
                2,
            )
        )
        return {
            TRAIN: train | "SerializeTrain" >> beam.Map(lambda ex: ex.SerializeToString()),
            EVAL: eval_ | "SerializeEval" >> beam.Map(lambda ex: ex.SerializeToString()),
            CATALOG: catalog
            | "CatalogExample" >> beam.Map(_to_catalog_example)
            | "SerializeCatalog" >> beam.Map(lambda ex: ex.SerializeToString()),
        }
