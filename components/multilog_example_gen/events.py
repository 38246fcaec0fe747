"""Log rows to events: one `tf.train.Example` per row, joined with its item.

Pure Python, shared by the Beam executor and the tests: the id rule
(`contracts.ids`), value checks that name the log, file and line, the pair-hash
split, de-duplication of re-delivered rows, and the catalogue-miss check.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import math
import re
from collections.abc import Iterator, Sequence

import apache_beam as beam
import tensorflow as tf

from components.multilog_example_gen.sources import read_rows
from components.multilog_example_gen.spec import CatalogSpec, CategoricalSpec, CsvDialect, LogSpec
from contracts.hashing import pair_bucket
from contracts.ids import id_text
from models import features as F

FUTURE_TOLERANCE_S = 86_400
"""Events may be stamped up to a day after ingest time (clock skew); later is an error."""
SAMPLE_IDS = 5


def split_of(user_id: str, item_id: str, seed: int, eval_percent: int) -> int:
    """Returns 0 (train) or 1 (eval) for a (user, item) pair; stable across runs."""
    return int(pair_bucket(user_id, item_id, seed) < eval_percent)


def _bytes(*values: str) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))


TRUE_FLAGS, FALSE_FLAGS = {"1", "true", "t", "yes", "y"}, {"0", "false", "f", "no", "n", ""}


def _flag(value: str, column: str) -> bool:
    text = str(value).strip().lower()
    if text in TRUE_FLAGS or text in FALSE_FLAGS:
        return text in TRUE_FLAGS
    raise ValueError(f"flag column {column!r} holds {value!r}: expected 1/0, true/false, yes/no")


def categories(row: dict, attribute: CategoricalSpec) -> list[str]:
    """The values of one categorical attribute of a catalogue row, in order, each once.

    Raises:
        ValueError: naming the column of a flag that is not 0/1, true/false or yes/no.
    """
    if attribute.flags:
        return [flag for flag in attribute.flags if _flag(row[flag], flag)]
    raw = row[attribute.column]
    if isinstance(raw, list):
        values = raw
    elif raw.strip() in ("", attribute.empty):
        values = []
    else:
        values = raw.split(attribute.separator)
    return list(dict.fromkeys(v.strip() for v in values if v.strip() and v != attribute.empty))


def catalog_features(row: dict, spec: CatalogSpec) -> dict[str, tf.train.Feature]:
    """Item features of one catalogue row: id, title, category tokens (and text).

    Raises:
        ValueError: naming the column of an unreadable flag.
    """
    tokens = [t for attribute in spec.categorical for t in categories(row, attribute)]
    feats = {
        F.ITEM_ID: _bytes(column_id(row, spec.item_column, "catalogue")),
        F.TITLE: _bytes(str(row[spec.title_column])),
        F.GENRES: _bytes(*dict.fromkeys(tokens)),
    }
    if spec.text_columns:
        feats[F.TEXT] = _bytes(" ".join(str(row[c]) for c in spec.text_columns if row[c]))
    return feats


def unknown_item_features(item: str, spec: CatalogSpec | None) -> dict[str, tf.train.Feature]:
    """Features of an item missing from the catalogue: its id, no title, no tokens."""
    feats = {F.ITEM_ID: _bytes(item), F.TITLE: _bytes(""), F.GENRES: _bytes()}
    if spec is not None and spec.text_columns:
        feats[F.TEXT] = _bytes("")
    return feats


_ISO_8601 = re.compile(
    r"(\d{4})-?(\d{2})-?(\d{2})"
    r"(?:[T ](\d{2}):?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?"
)


def _iso_8601(text: str) -> datetime.datetime:
    """The moment of an ISO-8601 date or time, extended or basic format (UTC if naive)."""
    match = _ISO_8601.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not an ISO-8601 date or time")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    offset = datetime.timezone.utc
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + int(digits[2:] or 0)
        offset = datetime.timezone(sign * datetime.timedelta(minutes=minutes))
    return datetime.datetime(
        int(year),
        int(month),
        int(day),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        int((fraction or "0")[:6].ljust(6, "0")),
        tzinfo=offset,
    )


MIN_MILLISECONDS = 1e11
"""Millisecond times below this are before March 1973: seconds written as milliseconds."""


def parse_timestamp(value: str, unit: str) -> int:
    """Unix seconds of a timestamp in `unit` ("seconds", "milliseconds", "iso8601").

    ISO-8601 text may be in the extended (`2026-12-04T10:15:30.12+01:00`) or
    basic (`20261204T101530Z`) format, with any fraction of a second and a
    zone of "Z", +hh, +hhmm or +hh:mm; a naive time is UTC.

    Raises:
        ValueError: if the value does not parse in that unit, or is a positive
            millisecond time before 1973 (a time in seconds in a milliseconds log).
    """
    text = str(value).strip()
    if unit == "iso8601":
        return math.floor(_iso_8601(text).timestamp())
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    if unit == "milliseconds" and 0 < number < MIN_MILLISECONDS:
        raise ValueError(
            f"{value!r} milliseconds is before 1973: the log's times look like seconds"
        )
    return math.floor(number / 1000 if unit == "milliseconds" else number)


def column_id(row: dict, column: str, where: str) -> str:
    """The id in `row[column]` by the one id rule (`contracts.ids.id_text`).

    Raises:
        ValueError: naming `where`, the column and the value's type when the
            value cannot be an id (a list, a boolean, a fractional number).
    """
    try:
        return id_text(row[column])
    except ValueError as e:
        raise ValueError(f"{where}: id column {column!r}: {e}") from e


def event_example(
    row: dict,
    log: LogSpec,
    catalog: dict[str, dict[str, tf.train.Feature]],
    max_timestamp: int | None = None,
    source: str = "",
    catalog_spec: CatalogSpec | None = None,
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
        catalog_spec: The catalogue's spec (which features an unknown item has).

    Raises:
        ValueError: naming the log and row on an empty id or event type, a timestamp
            that does not parse in the log's unit, a rating that is not a finite
            number, or a timestamp after `max_timestamp`.
    """
    where = f"log {log.name!r} ({source or 'row'})"
    user = column_id(row, log.user_column, where)
    item = column_id(row, log.item_column, where)
    if not user or not item:
        raise ValueError(f"{where}: empty user or item id in row {row}")
    feats = dict(catalog.get(item) or unknown_item_features(item, catalog_spec))
    feats[F.USER_ID] = _bytes(user)
    event_type = (
        str(row[log.event_type_column]).strip() if log.event_type_column else log.event_type
    )
    if not event_type:
        raise ValueError(f"{where}: empty event type in column {log.event_type_column!r}")
    feats[F.EVENT_TYPE] = _bytes(event_type)
    raw_time = row[log.timestamp_column]
    try:
        timestamp = parse_timestamp(raw_time, log.timestamp_unit)
    except (ValueError, OverflowError) as e:
        raise ValueError(
            f"{where}: timestamp {raw_time!r} in column {log.timestamp_column!r} is not "
            f"{log.timestamp_unit} ({e}) in row {row}"
        ) from e
    feats[F.TIMESTAMP] = tf.train.Feature(int64_list=tf.train.Int64List(value=[timestamp]))
    raw_rating = str(row[log.rating_column]).strip() if log.rating_column else ""
    if raw_rating:
        try:
            rating = float(raw_rating)
        except ValueError as e:
            raise ValueError(f"{where}: non-numeric rating in row {row}") from e
        if not math.isfinite(rating):
            raise ValueError(f"{where}: rating {raw_rating!r} is not a finite number")
        feats[F.RATING] = tf.train.Feature(float_list=tf.train.FloatList(value=[rating]))
    if max_timestamp is not None and timestamp > max_timestamp:
        raise ValueError(
            f"{where}: timestamp {timestamp} is in the future (later than "
            f"{max_timestamp}, ingest time + {FUTURE_TOLERANCE_S} s) in row {row}"
        )
    return tf.train.Example(features=tf.train.Features(feature=feats))


def unique_rows(
    files: Sequence[tuple[str, Sequence[str]]],
    id_columns: Sequence[str] = (),
    allow_empty: bool = False,
    fmt: str = "csv",
    dialect: CsvDialect | None = None,
) -> Iterator[tuple[str, int, dict]]:
    """(file, line, row) of the files' data rows, in order, without repeated rows.

    A row identical to an earlier one of any of the files (ids compared
    normalised) is left out, so the first occurrence is kept and the output
    order is the files', run after run. Memory: an 8-byte digest per distinct row.

    Args:
        files: (path, columns) of each file of one log, in reading order.
        id_columns: Columns holding ids.
        allow_empty: Whether a file may hold no rows (a span).
        fmt: The files' format ("csv", "parquet", "tfrecord").
        dialect: The CSV dialect.
    """
    seen: set[bytes] = set()
    for path, columns in files:
        for line, row in read_rows(path, columns, fmt, dialect, allow_empty=allow_empty):
            values = [
                column_id(row, k, f"{path} line {line}") if k in id_columns else str(v)
                for k, v in row.items()
            ]
            digest = hashlib.blake2b("\x1f".join(values).encode(), digest_size=8).digest()
            if digest not in seen:
                seen.add(digest)
                yield path, line, row


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
