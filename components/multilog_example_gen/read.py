"""The Beam transform that reads every log (of a span) and the catalogue into events.

Files (CSV, Parquet, TFRecord) are checked when the transform is built, before
any Beam work: each log's pattern must match a file (unless the log is
optional) whose columns include the spec's; each log is then read in one
ordered pass (`sources`), so the events come out in the same order run after
run and re-delivered rows are dropped across a log's files. BigQuery logs (the
cloud path) are read by Beam's BigQuery IO with a `SELECT DISTINCT` of the
needed columns (`bigquery_query`).
"""

from __future__ import annotations

import collections
import logging
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import apache_beam as beam
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems

from components.multilog_example_gen import sources
from components.multilog_example_gen.events import (
    FUTURE_TOLERANCE_S,
    UnknownItems,
    catalog_features,
    check_unknown_items,
    column_id,
    event_example,
    unique_rows,
)
from components.multilog_example_gen.spans import span_pattern
from components.multilog_example_gen.spec import CatalogSpec, IngestSpec, LogSpec


def match_files(root: str, pattern: str, what: str, optional: bool = False) -> list[str]:
    """The files `pattern` (relative to `root`, globs allowed) matches, sorted.

    Raises:
        ValueError: naming the log and the pattern if nothing matches (and the
            log is not optional).
    """
    path = os.path.join(root, pattern)
    matched = sorted(m.path for m in FileSystems.match([path])[0].metadata_list)
    if not matched and not optional:
        raise ValueError(f"{what}: no file matches {path!r}")
    if not matched:
        logging.warning("%s is optional and no file matches %r: skipped", what, path)
    return matched


def bigquery_query(source: str, columns: Sequence[str]) -> str:
    """The standard-SQL query reading `columns` of a BigQuery table or query, each row once.

    Args:
        source: A table `project.dataset.table` (or `dataset.table`), or a query
            (starting with SELECT or WITH), which is wrapped as a subquery.
        columns: The columns the spec needs.

    Raises:
        ValueError: on an empty source or no column.
    """
    if not source.strip() or not columns:
        raise ValueError(f"a BigQuery read needs a source and columns, got {source!r}, {columns}")
    selected = ", ".join(f"`{c}`" for c in dict.fromkeys(columns))
    text = source.strip().rstrip(";")
    if text.split(None, 1)[0].upper() in ("SELECT", "WITH"):
        return f"SELECT DISTINCT {selected} FROM ({text})"
    return f"SELECT DISTINCT {selected} FROM `{text}`"


def read_bigquery(pbegin, label: str, source: str, columns: Sequence[str]):
    """Rows (source, 0, column -> text) of a BigQuery table or query, through Beam's IO."""
    query = bigquery_query(source, columns)
    return (
        pbegin
        | f"BigQuery[{label}]" >> beam.io.ReadFromBigQuery(query=query, use_standard_sql=True)
        | f"Text[{label}]"
        >> beam.Map(
            lambda row: (f"bigquery {source}", 0, {c: sources.text(row.get(c)) for c in columns})
        )
    )


def _catalog_entry(entry: tuple, spec: CatalogSpec):
    source, line, row = entry
    item = column_id(row, spec.item_column, f"catalogue {source!r} line {line}")
    if not item:
        raise ValueError(f"catalogue {source!r} line {line}: empty item id in row {row}")
    return item, catalog_features(row, spec)


def to_catalog_example(entry) -> tf.train.Example:
    """A catalogue entry (item id, features) as a tf.Example."""
    return tf.train.Example(features=tf.train.Features(feature=entry[1]))


def _check_unique(entries: Iterable[Any]) -> None:
    counts = collections.Counter(item_id for item_id, _ in entries)
    dupes = sorted(i for i, n in counts.items() if n > 1)
    if dupes:
        raise ValueError(f"catalogue has duplicate item ids, e.g. {dupes[:10]}")


def _is_known(entry: tuple, column: str, catalog: dict) -> tuple[str, bool]:
    item = column_id(entry[3], column, f"log {entry[0]!r} ({entry[1]!r} line {entry[2]})")
    return item, item in catalog


def span_holds_events(spec: IngestSpec, root: str, span: int) -> bool:
    """Whether any log file of `span` holds a data row (each read up to its first row).

    Raises:
        ValueError: as `ReadEvents` does, naming a missing file or column.
    """
    logs = {log.name: log for log in spec.logs}
    for name, files in ReadEvents(spec, root, span).log_files.items():
        log = logs[name]
        for path, columns in files:
            for _ in sources.read_rows(path, columns, log.format, log.csv, allow_empty=True):
                return True
    return False


def _check_span_has_events(count: int, span: int, logs: list[str]) -> None:
    if not count:
        raise ValueError(
            f"span {span} holds no event in any of the logs {logs}: every file of the "
            "span has a header and no rows"
        )


class ReadEvents(beam.PTransform):
    """Reads every log (of one span, if given) and the catalogue.

    Applied to a pipeline, it gives (event tf.Examples, (item id, catalogue
    features) entries); a bad value fails when read, naming its file and row.

    Args:
        spec: The ingest spec.
        root: The data root.
        span: The span to read (its files only), or None for a snapshot.

    Raises:
        ValueError: naming the file of a missing file or column.
    """

    def __init__(self, spec: IngestSpec, root: str, span: int | None):
        super().__init__()
        self.spec, self.span = spec, span
        where = "" if span is None else f" (span {span})"
        catalog = spec.catalog
        self.catalog_files = []
        if catalog.format != "bigquery":
            path = os.path.join(root, self._resolve(catalog.file))
            columns = sources.check_columns(
                path, "catalogue", catalog.required_columns, catalog.format, catalog.csv
            )
            self.catalog_files = [(path, columns)]
        self.log_files: dict[str, list[tuple[str, list[str]]]] = {}
        for log in spec.logs:
            if log.format == "bigquery":
                continue
            what = f"log {log.name!r}{where}"
            self.log_files[log.name] = [
                (path, sources.check_columns(path, what, log.required_columns, log.format, log.csv))
                for path in match_files(root, self._resolve(log.file), what, log.optional)
            ]

    def _resolve(self, pattern: str) -> str:
        return pattern if self.span is None else span_pattern(pattern, self.span)

    def _catalog_rows(self, pbegin):
        catalog = self.spec.catalog
        if catalog.format == "bigquery":
            return read_bigquery(pbegin, "catalog", catalog.file, catalog.required_columns)
        ((path, columns),) = self.catalog_files

        def rows(path):
            for line, row in sources.read_rows(path, columns, catalog.format, catalog.csv):
                yield path, line, row

        return pbegin | "CatalogFile" >> beam.Create([path]) | "ReadCatalog" >> beam.FlatMap(rows)

    def _log_rows(self, pbegin):
        """(log name, source, line, row) of every log; files in order, BigQuery after."""
        logs = {log.name: log for log in self.spec.logs}
        in_span, log_files = self.span is not None, self.log_files

        def rows(name):
            log = logs[name]
            for entry in unique_rows(
                log_files[name],
                (log.user_column, log.item_column),
                allow_empty=in_span or log.optional,
                fmt=log.format,
                dialect=log.csv,
            ):
                yield (name, *entry)

        # One Create holding every file-based log, read in order: the events come
        # out in the same order run after run (separate reads would interleave).
        parts = [pbegin | "Logs" >> beam.Create(list(log_files)) | "ReadLogs" >> beam.FlatMap(rows)]
        for log in self.spec.logs:
            if log.format == "bigquery":
                parts.append(
                    read_bigquery(pbegin, log.name, log.file, log.required_columns)
                    | f"Name[{log.name}]"
                    >> beam.Map(lambda entry, name: (name, *entry), name=log.name)
                )
        return parts[0] if len(parts) == 1 else parts | "AllLogs" >> beam.Flatten()

    def expand(self, pbegin):  # noqa: D102
        spec, span = self.spec, self.span
        catalog = self._catalog_rows(pbegin) | "CatalogEntry" >> beam.Map(
            _catalog_entry, spec=spec.catalog
        )
        _ = catalog | "CatalogIds" >> beam.combiners.ToList() | beam.Map(_check_unique)
        catalog_side = beam.pvalue.AsDict(catalog)
        max_timestamp = int(time.time()) + FUTURE_TOLERANCE_S
        logs: dict[str, LogSpec] = {log.name: log for log in spec.logs}
        rows = self._log_rows(pbegin)
        events = rows | "ToExample" >> beam.Map(
            lambda entry, catalog: event_example(
                entry[3],
                logs[entry[0]],
                catalog,
                max_timestamp,
                source=f"{entry[1]!r} line {entry[2]}",
                catalog_spec=spec.catalog,
            ),
            catalog=catalog_side,
        )
        _ = (
            rows
            | "CatalogHit"
            >> beam.Map(
                lambda entry, catalog: (
                    entry[0],
                    _is_known(entry, logs[entry[0]].item_column, catalog),
                ),
                catalog=catalog_side,
            )
            | "CountUnknown" >> beam.CombinePerKey(UnknownItems())
            | "CheckUnknown"
            >> beam.Map(lambda counted: check_unknown_items(*counted, spec.max_unknown_item_share))
        )
        if span is not None:
            _ = (
                rows
                | "CountEvents" >> beam.combiners.Count.Globally()
                | "CheckSpan" >> beam.Map(_check_span_has_events, span=span, logs=sorted(logs))
            )
        return events, catalog
