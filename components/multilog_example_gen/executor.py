"""Beam executor that unifies several feedback logs into one event stream.

Each log row becomes one `tf.train.Example` event (user, item, event type,
timestamp, optional rating) joined with its item's catalogue features. Events
are split into train/eval by a seeded hash of the (user, item) pair, so every
event of a pair lands in the same split and no pair leaks from eval into train.
The catalogue becomes its own `catalog` split: one example per item, the
retrieval candidates. Ids follow `contracts.ids` (surrounding whitespace removed).
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems
from tfx import types
from tfx.components.example_gen import base_example_gen_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.multilog_example_gen.csv_source import check_columns, read_rows
from components.multilog_example_gen.spec import CatalogSpec, IngestSpec, LogSpec
from contracts.hashing import pair_bucket
from contracts.ids import normalize_id
from contracts.names import CATALOG, EVAL, EVENT_SPLITS, TRAIN
from models import features as F

INGEST_SPEC_KEY = "ingest_spec"
DATA_FILE = "data_tfrecord"
"""Split files are `Split-<name>/data_tfrecord-*.gz`, as TFX's ExampleGen writes them."""
FUTURE_TOLERANCE_S = 86_400
"""Events may be stamped up to a day after ingest time (clock skew); later is an error."""
SAMPLE_IDS = 5


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
        F.ITEM_ID: _bytes(normalize_id(row[spec.item_column])),
        F.TITLE: _bytes(row[spec.title_column]),
        F.GENRES: _bytes(*genres),
    }


def event_example(
    row: dict[str, str],
    log: LogSpec,
    catalog: dict[str, dict[str, tf.train.Feature]],
    max_timestamp: int | None = None,
    source: str = "",
) -> tf.train.Example:
    """Builds one event example from a parsed log row.

    Items missing from the catalogue keep their id and get an empty title and no
    genres, so no event is dropped (`IngestSpec.max_unknown_item_share` bounds
    how many may miss it).

    Args:
        row: Column -> value of one log row.
        log: The log's spec.
        catalog: Catalogue features by (normalised) item id.
        max_timestamp: Latest acceptable event time (Unix seconds).
        source: Where the row comes from (file and line), for messages.

    Raises:
        ValueError: naming the log and row on an empty id, a non-numeric timestamp,
            a rating that is not a finite number, or a timestamp after `max_timestamp`.
    """
    where = f"log {log.name!r} ({source or 'row'})"
    user, item = normalize_id(row[log.user_column]), normalize_id(row[log.item_column])
    if not user or not item:
        raise ValueError(f"{where}: empty user or item id in row {row}")
    feats = dict(
        catalog.get(item) or {F.ITEM_ID: _bytes(item), F.TITLE: _bytes(""), F.GENRES: _bytes()}
    )
    feats[F.USER_ID] = _bytes(user)
    feats[F.EVENT_TYPE] = _bytes(log.event_type)
    try:
        timestamp = int(row[log.timestamp_column])
    except ValueError as e:
        raise ValueError(f"{where}: non-numeric timestamp in row {row}") from e
    feats[F.TIMESTAMP] = tf.train.Feature(int64_list=tf.train.Int64List(value=[timestamp]))
    if log.rating_column and row[log.rating_column].strip():
        try:
            rating = float(row[log.rating_column])
        except ValueError as e:
            raise ValueError(f"{where}: non-numeric rating in row {row}") from e
        if not math.isfinite(rating):
            raise ValueError(f"{where}: rating {row[log.rating_column]!r} is not a finite number")
        feats[F.RATING] = tf.train.Feature(float_list=tf.train.FloatList(value=[rating]))
    if max_timestamp is not None and timestamp > max_timestamp:
        raise ValueError(
            f"{where}: timestamp {timestamp} is in the future (later than "
            f"{max_timestamp}, ingest time + {FUTURE_TOLERANCE_S} s) in row {row}"
        )
    return tf.train.Example(features=tf.train.Features(feature=feats))


def unique_rows(
    files: Sequence[tuple[str, Sequence[str]]], id_columns: Sequence[str] = ()
) -> Iterator[tuple[str, int, dict[str, str]]]:
    """(file, line, row) of the files' data rows, in order, without repeated rows.

    A row identical to an earlier one of any of the files (ids compared
    normalised) is left out, so the first occurrence is kept and the output
    order is the files', run after run. Memory: an 8-byte digest per distinct row.

    Args:
        files: (path, header) of each file of one log, in reading order.
        id_columns: Columns holding ids.
    """
    seen: set[bytes] = set()
    for path, header in files:
        for line, row in read_rows(path, header):
            values = [normalize_id(v) if k in id_columns else v for k, v in row.items()]
            digest = hashlib.blake2b("\x1f".join(values).encode(), digest_size=8).digest()
            if digest not in seen:
                seen.add(digest)
                yield path, line, row


def match_files(root: str, pattern: str, what: str) -> list[str]:
    """The files `pattern` (relative to `root`, globs allowed) matches, sorted.

    Raises:
        ValueError: naming the log and the pattern if nothing matches.
    """
    path = os.path.join(root, pattern)
    matched = sorted(m.path for m in FileSystems.match([path])[0].metadata_list)
    if not matched:
        raise ValueError(f"{what}: no file matches {path!r}")
    return matched


def _read_csv(pipeline: beam.Pipeline, label: str, path: str, header: Sequence[str]):
    """(line, row) of every data row of `path`, in file order."""
    return (
        pipeline
        | f"File[{label}]" >> beam.Create([path])
        | f"Read[{label}]" >> beam.FlatMap(read_rows, header=list(header))
    )


def _catalog_entry(entry: tuple[int, dict[str, str]], spec: CatalogSpec, path: str):
    line, row = entry
    item = normalize_id(row[spec.item_column])
    if not item:
        raise ValueError(f"catalogue {path!r} line {line}: empty item id in row {row}")
    return item, catalog_features(row, spec)


def _to_catalog_example(entry) -> tf.train.Example:
    return tf.train.Example(features=tf.train.Features(feature=entry[1]))


def _check_unique(entries: Iterable[Any]) -> None:
    counts = collections.Counter(item_id for item_id, _ in entries)
    dupes = sorted(i for i, n in counts.items() if n > 1)
    if dupes:
        raise ValueError(f"catalogue has duplicate item ids, e.g. {dupes[:10]}")


class UnknownItems(beam.CombineFn):
    """Counts a log's events and those whose item is not in the catalogue (with samples)."""

    def create_accumulator(self):  # noqa: D102
        return 0, 0, []

    def add_input(self, acc, item_known):  # noqa: D102
        unknown, total, samples = acc
        item, known = item_known
        if not known and len(samples) < SAMPLE_IDS:
            samples = [*samples, item]
        return unknown + (not known), total + 1, samples

    def merge_accumulators(self, accumulators):  # noqa: D102
        unknown, total, samples = 0, 0, []
        for u, t, s in accumulators:
            unknown, total, samples = unknown + u, total + t, (samples + s)[:SAMPLE_IDS]
        return unknown, total, samples

    def extract_output(self, acc):  # noqa: D102
        return acc


def check_unknown_items(log: str, counts: tuple[int, int, list[str]], max_share: float) -> None:
    """Fails when more than `max_share` of a log's events miss the catalogue; logs any miss.

    Args:
        log: The log's name.
        counts: (unknown, total, sample ids) from `UnknownItems`.
        max_share: `IngestSpec.max_unknown_item_share`.

    Raises:
        ValueError: naming the log, the share and sample item ids.
    """
    unknown, total, samples = counts
    if not unknown:
        return
    share = unknown / total
    message = (
        f"log {log!r}: {unknown} of {total} events ({share:.1%}) name items that are not "
        f"in the catalogue, e.g. {sorted(samples)}"
    )
    if share > max_share:
        raise ValueError(
            f"{message}; more than IngestSpec.max_unknown_item_share = {max_share}: "
            "are the logs and the catalogue from the same system, with the same ids?"
        )
    logging.warning("%s; they keep their id with no title or genres", message)


def _is_known(raw_item: str, catalog: dict) -> tuple[str, bool]:
    item = normalize_id(raw_item)
    return item, item in catalog


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
        artifact_utils.get_single_instance(
            examples
        ).split_names = artifact_utils.encode_split_names([TRAIN, EVAL, CATALOG])
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
        log_files = {
            log.name: [
                (path, check_columns(path, f"log {log.name!r}", log.required_columns))
                for path in match_files(root, log.file, f"log {log.name!r}")
            ]
            for log in spec.logs
        }

        catalog = _read_csv(
            pipeline, "catalog", catalog_path, catalog_header
        ) | "CatalogEntry" >> beam.Map(_catalog_entry, spec=spec.catalog, path=catalog_path)
        _ = catalog | "CatalogIds" >> beam.combiners.ToList() | beam.Map(_check_unique)
        catalog_side = beam.pvalue.AsDict(catalog)

        max_timestamp = int(time.time()) + FUTURE_TOLERANCE_S
        logs = {log.name: log for log in spec.logs}
        # One Create holding every log, read in order: the events come out in the
        # same order run after run (separate reads would interleave at random).
        rows = (
            pipeline
            | "Logs" >> beam.Create([log.name for log in spec.logs])
            | "ReadLogs"
            >> beam.FlatMap(
                lambda name: (
                    (name, *entry)
                    for entry in unique_rows(
                        log_files[name], (logs[name].user_column, logs[name].item_column)
                    )
                )
            )
        )
        events = rows | "ToExample" >> beam.Map(
            lambda entry, catalog: event_example(
                entry[3],
                logs[entry[0]],
                catalog,
                max_timestamp,
                source=f"{entry[1]!r} line {entry[2]}",
            ),
            catalog=catalog_side,
        )
        _ = (
            rows
            | "CatalogHit"
            >> beam.Map(
                lambda entry, catalog: (
                    entry[0],
                    _is_known(entry[3][logs[entry[0]].item_column], catalog),
                ),
                catalog=catalog_side,
            )
            | "CountUnknown" >> beam.CombinePerKey(UnknownItems())
            | "CheckUnknown"
            >> beam.Map(lambda counted: check_unknown_items(*counted, spec.max_unknown_item_share))
        )
        train, eval_ = events | "SplitByPair" >> beam.Partition(
            lambda ex, _n: split_of(
                ex.features.feature[F.USER_ID].bytes_list.value[0].decode(),
                ex.features.feature[F.ITEM_ID].bytes_list.value[0].decode(),
                spec.seed,
                spec.eval_percent,
            ),
            2,
        )
        return {
            TRAIN: train
            | "SerializeTrain" >> beam.Map(lambda ex: ex.SerializeToString(deterministic=True)),
            EVAL: eval_
            | "SerializeEval" >> beam.Map(lambda ex: ex.SerializeToString(deterministic=True)),
            CATALOG: catalog
            | "CatalogExample" >> beam.Map(_to_catalog_example)
            | "SerializeCatalog" >> beam.Map(lambda ex: ex.SerializeToString(deterministic=True)),
        }
