"""Reading CSV logs as real exports write them, with the file and line of every row.

A file is read whole by one worker with Python's `csv` module in the declared
dialect (`spec.CsvDialect`: delimiter, quote, header line or given column
names, encoding), so quoted fields may hold delimiters and newlines. A UTF-8
byte-order mark is skipped, and gzip content is decompressed whatever the
file is called. Undecodable bytes, NUL bytes, a duplicated column name, and a
header with no rows fail with a `ValueError` naming the file and line.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
from collections.abc import Iterator, Sequence

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from components.multilog_example_gen.spec import CsvDialect

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT = CsvDialect()


def open_binary(path: str):
    """Opens `path` (local or any Beam filesystem, e.g. gs://) for reading, gunzipping if needed.

    Raises:
        ValueError: if the file does not exist.
    """
    if not FileSystems.exists(path):
        raise ValueError(f"{path!r} does not exist")
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    head = raw.read(2)
    raw.seek(0)
    return gzip.GzipFile(fileobj=raw) if head == GZIP_MAGIC else raw


def _rows(path: str, dialect: CsvDialect) -> Iterator[tuple[int, list[str]]]:
    """Yields (line number of the row's first line, values) for every CSV row."""
    text = io.TextIOWrapper(open_binary(path), encoding=dialect.encoding, newline="")
    with text:
        reader = csv.reader(text, delimiter=dialect.delimiter, quotechar=dialect.quotechar)
        line = 1
        try:
            for values in reader:
                yield line, values
                line = reader.line_num + 1
        except UnicodeDecodeError as e:
            name = codecs.lookup(dialect.encoding).name
            shown = "UTF-8" if name in ("utf-8", "utf-8-sig") else dialect.encoding
            bad = _undecodable_line(path, dialect.encoding) or line
            raise ValueError(
                f"{path!r} is not valid {shown} on line {bad} ({e.reason}); "
                "re-export it, or declare its encoding (CsvDialect.encoding)"
            ) from e
        except (csv.Error, EOFError, OSError) as e:
            raise ValueError(f"{path!r}, line {line}: unreadable CSV ({e})") from e


def _undecodable_line(path: str, encoding: str) -> int | None:
    """The first line of `path` that does not decode in `encoding` (None if none does not)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    with open_binary(path) as raw:
        for number, line in enumerate(raw, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError:
                return number
    return None


def _looks_like_data(names: list[str]) -> bool:
    """Whether a header's every name is a number: the file's first row is data."""
    for name in names:
        try:
            float(name)
        except ValueError:
            return False
    return bool(names)


def read_header(path: str, dialect: CsvDialect = DEFAULT) -> list[str]:
    """Returns the column names of `path` (its header line, or the dialect's), checked.

    Raises:
        ValueError: if the file is missing, empty, unreadable, starts with data
            instead of a header, or repeats a column name.
    """
    if not dialect.header:
        header = list(dialect.columns)
    else:
        header = None
        for _, names in _rows(path, dialect):
            header = [name.strip() for name in names]
            break
        if header is None:
            raise ValueError(f"{path!r} is empty: expected a CSV header")
        if _looks_like_data(header):
            raise ValueError(
                f"{path!r} has no header: its first line is data ({header}); add a header "
                "line, or declare the columns (CsvDialect.header false, CsvDialect.columns)"
            )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ValueError(f"{path!r} repeats column name(s) {repeated} in its header")
    return header


def check_columns(
    path: str, what: str, required: Sequence[str], dialect: CsvDialect = DEFAULT
) -> list[str]:
    """Checks that the CSV at `path` has the `required` columns; returns its header.

    Raises:
        ValueError: naming the file and every missing column.
    """
    header = read_header(path, dialect)
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{what} {path!r} is missing column(s) {missing}; header has {header}")
    return header


def read_rows(
    path: str,
    header: Sequence[str],
    allow_empty: bool = False,
    dialect: CsvDialect = DEFAULT,
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yields (line, column -> value) for every data row; blank lines are skipped.

    Args:
        path: The CSV file.
        header: Its checked column names (`read_header`).
        allow_empty: Whether a file with no rows is valid (a span of a log may
            hold no event; a whole log or a catalogue may not).
        dialect: How the file is written.

    Raises:
        ValueError: naming the file and line of a row whose field count differs
            from the header's, or the file if it holds no data row (unless allowed).
    """
    rows = _rows(path, dialect)
    if dialect.header:
        next(rows, None)  # the header, checked by read_header
    found = False
    for line, values in rows:
        if not values or (len(values) == 1 and not values[0].strip()):
            continue
        if any("\x00" in value for value in values):
            raise ValueError(f"{path!r} line {line} holds a NUL byte: {values!r}")
        if len(values) != len(header):
            raise ValueError(
                f"malformed row in {path!r} line {line}: expected {len(header)} fields "
                f"{list(header)}, got {len(values)}: {values!r}"
            )
        found = True
        yield line, dict(zip(header, values, strict=True))
    if not found and not allow_empty:
        raise ValueError(f"{path!r} has a header but no rows")
