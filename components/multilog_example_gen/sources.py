"""Reading a log or catalogue file in its format: rows of column -> value, with their place.

Every format gives the same rows: (line or record number, {column: value}),
values as text (None and missing values as "", Parquet and tf.Example lists
as lists), in file order, one ordered pass per file through Beam's
`FileSystems` (local disk, gs://). So the same events come out of a CSV, a
Parquet and a TFRecord export, in the same order, run after run, and an error
names the file and the row.

- CSV: `csv_source` (dialects, gzip, BOM).
- Parquet: pyarrow, record batches of the needed columns.
- TFRecord: gzipped or plain TFRecords of `tf.train.Example`; a column is a feature.
"""

from __future__ import annotations

import datetime
import io
import math
from collections.abc import Iterator, Sequence
from typing import Any

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from components.multilog_example_gen import csv_source
from components.multilog_example_gen.csv_source import GZIP_MAGIC
from components.multilog_example_gen.spec import CsvDialect

Row = dict[str, Any]
PARQUET_BATCH = 8192


def text(value: Any) -> Any:
    """A Parquet, tf.Example or BigQuery value as text (lists as lists of text).

    A float with a whole value is written as that integer ("1", not "1.0"), so an
    id stored as float64 is the same id as in a text or integer column.
    """
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (list, tuple)):
        return [text(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return str(int(value)) if math.isfinite(value) and value.is_integer() else repr(value)
    return str(value)


def _parquet(path: str):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(io.BytesIO(csv_source.open_binary(path).read()))
    except Exception as e:  # pyarrow raises its own error types
        raise ValueError(f"{path!r} is not a readable Parquet file: {e}") from e


def _records(path: str) -> Iterator[bytes]:
    """The raw records of a TFRecord file (gzipped or not)."""
    import tensorflow as tf

    if not FileSystems.exists(path):
        raise ValueError(f"{path!r} does not exist")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        head = f.read(2)
    compression = "GZIP" if head == GZIP_MAGIC else ""
    try:
        yield from (r.numpy() for r in tf.data.TFRecordDataset(path, compression))
    except tf.errors.OpError as e:
        raise ValueError(f"{path!r} is not a readable TFRecord file: {e.message}") from e


def _example_row(record: bytes, path: str, number: int) -> Row:
    import tensorflow as tf

    try:
        example = tf.train.Example.FromString(record)
    except Exception as e:  # protobuf's DecodeError
        raise ValueError(f"{path!r} record {number} is not a tf.train.Example ({e})") from e
    row = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value) if kind else []
        row[name] = text(values[0] if len(values) == 1 else values)
    return row


def columns_of(path: str, fmt: str, dialect: CsvDialect) -> list[str]:
    """The columns a file holds: its CSV header, Parquet schema or first tf.Example's features.

    Raises:
        ValueError: if the file is missing, empty or unreadable.
    """
    if fmt == "csv":
        return csv_source.read_header(path, dialect)
    if fmt == "parquet":
        return list(_parquet(path).schema_arrow.names)
    if fmt == "tfrecord":
        for number, record in enumerate(_records(path), 1):
            return sorted(_example_row(record, path, number))
        raise ValueError(f"TFRecord file {path!r} holds no record")
    raise ValueError(f"{path!r}: cannot read format {fmt!r} from files")


def check_columns(
    path: str,
    what: str,
    required: Sequence[str],
    fmt: str = "csv",
    dialect: CsvDialect | None = None,
) -> list[str]:
    """Checks that the file at `path` has the `required` columns; returns its columns.

    Raises:
        ValueError: naming the file and every missing column.
    """
    columns = columns_of(path, fmt, dialect or csv_source.DEFAULT)
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValueError(f"{what} {path!r} is missing column(s) {missing}; it has {columns}")
    return columns


def read_rows(
    path: str,
    columns: Sequence[str],
    fmt: str = "csv",
    dialect: CsvDialect | None = None,
    allow_empty: bool = False,
) -> Iterator[tuple[int, Row]]:
    """Yields (line or record number, column -> value) for every row of `path`, in order.

    Args:
        path: The file.
        columns: Its columns (`check_columns`); Parquet reads only these.
        fmt: "csv", "parquet" or "tfrecord".
        dialect: The CSV dialect.
        allow_empty: Whether a file without rows is valid (a span of a log).

    Raises:
        ValueError: naming the file and row of an unreadable row, or the file
            if it holds no row (unless allowed).
    """
    if fmt == "csv":
        yield from csv_source.read_rows(path, columns, allow_empty, dialect or csv_source.DEFAULT)
        return
    found = False
    if fmt == "parquet":
        number = 0
        for batch in _parquet(path).iter_batches(batch_size=PARQUET_BATCH, columns=list(columns)):
            for row in batch.to_pylist():
                number += 1
                found = True
                yield number, {k: text(v) for k, v in row.items()}
    elif fmt == "tfrecord":
        for number, record in enumerate(_records(path), 1):
            found = True
            row = _example_row(record, path, number)
            yield number, {c: row.get(c, "") for c in columns}
    else:
        raise ValueError(f"{path!r}: cannot read format {fmt!r} from files")
    if not found and not allow_empty:
        raise ValueError(f"{path!r} holds no rows")
