"""Log rows to events: one `tf.train.Example` per row, joined with its item.

Pure Python, shared by the Beam executor and the tests: the id rule
(`contracts.ids`), value checks that name the log, file and line, the pair-hash
split, de-duplication of re-delivered rows, and the catalogue-miss check.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterator, Sequence

import apache_beam as beam
import tensorflow as tf

from components.multilog_example_gen.csv_source import read_rows
from components.multilog_example_gen.spec import CatalogSpec, LogSpec
from contracts.hashing import pair_bucket
from contracts.ids import normalize_id
from models import features as F

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
    files: Sequence[tuple[str, Sequence[str]]],
    id_columns: Sequence[str] = (),
    allow_empty: bool = False,
) -> Iterator[tuple[str, int, dict[str, str]]]:
    """(file, line, row) of the files' data rows, in order, without repeated rows.

    A row identical to an earlier one of any of the files (ids compared
    normalised) is left out, so the first occurrence is kept and the output
    order is the files', run after run. Memory: an 8-byte digest per distinct row.

    Args:
        files: (path, header) of each file of one log, in reading order.
        id_columns: Columns holding ids.
        allow_empty: Whether a file may hold a header and no rows (a span).
    """
    seen: set[bytes] = set()
    for path, header in files:
        for line, row in read_rows(path, header, allow_empty=allow_empty):
            values = [normalize_id(v) if k in id_columns else v for k, v in row.items()]
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
