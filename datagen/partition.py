"""Cuts a snapshot of CSV logs into time partitions (spans), as a growing data root looks.

Every log row goes to the span its timestamp falls in; span k of a log is
written to `<out>/<log>/span-<k>/<file>`. The catalogue is written per span
too, holding the items that exist by the end of that span: an item joins
the catalogue with its first event (items no event names are there from span
1), so later spans bring new items as a live catalogue would.

    python -m datagen.partition --src data/movielens --out /tmp/ml-spans --spans 8

The layout matches `partitioned(...)`'s patterns: `<log>/span-{SPAN}/<file>`.
"""

from __future__ import annotations

import argparse
import csv
import os
from collections.abc import Sequence

import numpy as np

MOVIELENS_LOGS = {"ratings": "ratings.csv", "tags": "tags.csv"}
MOVIELENS_CATALOG = ("movies", "movies.csv")


def span_dir(name: str, span: int) -> str:
    """Relative directory of span `span` of log (or catalogue) `name`."""
    return os.path.join(name, f"span-{span}")


def span_file_pattern(name: str, file: str) -> str:
    """TFX file pattern of a partitioned log written here: `<name>/span-{SPAN}/<file>`."""
    return os.path.join(name, "span-{SPAN}", file)


def _read(path: str) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _write(path: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])


def partition(
    src: str,
    out: str,
    logs: dict[str, str],
    catalog: tuple[str, str],
    num_spans: int,
    item_column: str = "movieId",
    timestamp_column: str = "timestamp",
    first_span: int = 1,
) -> list[int]:
    """Writes `num_spans` spans of equal event counts (by time) of every log and the catalogue.

    Args:
        src: Directory of the snapshot's CSV files.
        out: Data root to write the spans to.
        logs: Log name -> file name in `src`.
        catalog: (catalogue name, file name in `src`).
        num_spans: Spans to cut the events into; the boundaries are the
            quantiles of all events' timestamps.
        item_column: Column of the item id (every log and the catalogue).
        timestamp_column: Column of the Unix time (every log).
        first_span: Number of the oldest span.

    Returns:
        The span numbers written.

    Raises:
        ValueError: if `num_spans` is not positive or a log misses a column.
    """
    if num_spans <= 0:
        raise ValueError(f"num_spans must be positive, got {num_spans}")
    tables = {name: _read(os.path.join(src, file)) for name, file in logs.items()}
    stamps = []
    for name, (header, rows) in tables.items():
        for column in (item_column, timestamp_column):
            if column not in header:
                raise ValueError(f"log {name!r} has no column {column!r}: {header}")
        stamps += [int(r[header.index(timestamp_column)]) for r in rows]
    edges = np.quantile(np.array(stamps), np.linspace(0, 1, num_spans + 1)[1:-1])
    first_seen: dict[str, int] = {}
    for name, (header, rows) in tables.items():
        t, i = header.index(timestamp_column), header.index(item_column)
        by_span: dict[int, list[list[str]]] = {k: [] for k in range(num_spans)}
        for row in rows:
            k = int(np.searchsorted(edges, int(row[t]), side="right"))
            by_span[k].append(row)
            first_seen[row[i]] = min(first_seen.get(row[i], k), k)
        for k, chosen in by_span.items():
            _write(os.path.join(out, span_dir(name, first_span + k), logs[name]), header, chosen)
    name, file = catalog
    header, rows = _read(os.path.join(src, file))
    i = header.index(item_column)
    for k in range(num_spans):
        existing = [r for r in rows if first_seen.get(r[i], 0) <= k]
        _write(os.path.join(out, span_dir(name, first_span + k), file), header, existing)
    return list(range(first_span, first_span + num_spans))


def main() -> None:
    """CLI: cuts the embedded MovieLens logs (or logs in that layout) into spans."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--spans", type=int, default=8)
    args = parser.parse_args()
    spans = partition(args.src, args.out, MOVIELENS_LOGS, MOVIELENS_CATALOG, args.spans)
    print(f"Wrote spans {spans[0]}..{spans[-1]} to {args.out}")


if __name__ == "__main__":
    main()
