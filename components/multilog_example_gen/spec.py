"""Typed description of the feedback logs and catalogue the ExampleGen ingests.

The specs are plain frozen dataclasses so the pipeline config can hold them and
the executor can rebuild them from the JSON `custom_config` TFX passes along.
"""

from __future__ import annotations

import codecs
import dataclasses
import re

from contracts import jsonable
from contracts.names import CATALOG

SPAN_SPECS = ("{SPAN}", "{YYYY}", "{MM}", "{DD}")
"""TFX's partition placeholders (`{SPAN}` or `{SPAN:width}`, or a date `{YYYY}{MM}{DD}`)."""


def partition_kind(pattern: str) -> str | None:
    """Which TFX partition placeholder a file pattern uses: "span", "date" or None.

    Raises:
        ValueError: if it mixes both kinds or lacks part of a date.
    """
    span = bool(re.search(r"\{SPAN(:\d+)?\}", pattern))
    dates = [spec in pattern for spec in SPAN_SPECS[1:]]
    if span and any(dates):
        raise ValueError(f"{pattern!r} mixes {{SPAN}} with a date placeholder: use one")
    if any(dates) and not all(dates):
        raise ValueError(f"{pattern!r} needs all of {{YYYY}}, {{MM}} and {{DD}}")
    return "span" if span else "date" if all(dates) else None


FORMATS = ("csv", "parquet", "tfrecord", "bigquery")
"""Log and catalogue formats: files (CSV, Parquet, TFRecord of tf.Example) or a
BigQuery table or query (the cloud path)."""
TIMESTAMP_UNITS = ("seconds", "milliseconds", "iso8601")


@dataclasses.dataclass(frozen=True)
class CsvDialect:
    """How a CSV export is written.

    Attributes:
        delimiter: Field separator (one character: a comma, semicolon, tab, pipe...).
        header: Whether the first line names the columns.
        columns: The column names when there is no header line.
        encoding: Text encoding ("utf-8-sig" also reads plain UTF-8 and skips a BOM).
        quotechar: Quote character of fields holding delimiters or newlines.
    """

    delimiter: str = ","
    header: bool = True
    columns: tuple[str, ...] = ()
    encoding: str = "utf-8-sig"
    quotechar: str = '"'

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1 or len(self.quotechar) != 1:
            raise ValueError(
                f"CSV delimiter and quotechar must be one character, got {self.delimiter!r}, "
                f"{self.quotechar!r}"
            )
        if not self.header and not self.columns:
            raise ValueError("a CSV without a header line needs its column names (columns)")
        try:
            codecs.lookup(self.encoding)
        except LookupError as e:
            raise ValueError(f"unknown encoding {self.encoding!r}") from e


def _check_source(where: str, fmt: str, file: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"{where}.format must be one of {FORMATS}, got {fmt!r}")
    if not file:
        raise ValueError(f"{where}.file must be set")


@dataclasses.dataclass(frozen=True)
class LogSpec:
    """One feedback log, turned into events of one type (or of a type column's values).

    Attributes:
        name: Short name used in messages and Beam step labels.
        file: Path of the file(s) relative to the data root; a glob pattern
            (e.g. "views/*.csv") reads every matching file, in name order, as one log.
            With `IngestSpec.spans`, it holds TFX's partition placeholder: `{SPAN}`
            (e.g. "views/span-{SPAN}/*.csv") or a date (`views/{YYYY}-{MM}-{DD}/*.csv`).
            For BigQuery: a table `project.dataset.table`, or a `SELECT` query.
        event_type: Event type written on every event of this log (e.g. "watch").
        user_column: Column holding the user id.
        item_column: Column holding the item id.
        timestamp_column: Column holding the event time (see `timestamp_unit`).
        rating_column: Optional column holding an explicit rating; events of a log
            without one carry no rating.
        event_type_column: Optional column whose value is each event's type
            (instead of `event_type`, which then names the log's events in messages).
        format: One of `FORMATS`.
        csv: The CSV dialect (format "csv").
        timestamp_unit: Unix "seconds", Unix "milliseconds", or "iso8601" text
            (a naive time is UTC).
        optional: A log with no file is skipped (logged) instead of failing, and
            its files may hold no rows.
    """

    name: str
    file: str
    event_type: str
    user_column: str = "userId"
    item_column: str = "movieId"
    timestamp_column: str = "timestamp"
    rating_column: str | None = None
    event_type_column: str | None = None
    format: str = "csv"
    csv: CsvDialect = CsvDialect()
    timestamp_unit: str = "seconds"
    optional: bool = False

    def __post_init__(self) -> None:
        for field in ("name", "event_type", "user_column", "item_column", "timestamp_column"):
            if not getattr(self, field):
                raise ValueError(f"LogSpec.{field} must be non-empty, got {getattr(self, field)!r}")
        _check_source(f"log {self.name!r}", self.format, self.file)
        if self.event_type == CATALOG:
            raise ValueError(f"event_type {self.event_type!r} is reserved for catalogue rows")
        if self.timestamp_unit not in TIMESTAMP_UNITS:
            raise ValueError(
                f"log {self.name!r}: timestamp_unit must be one of {TIMESTAMP_UNITS}, got "
                f"{self.timestamp_unit!r}"
            )

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns every row must have."""
        optional = (self.rating_column, self.event_type_column)
        return (self.user_column, self.item_column, self.timestamp_column) + tuple(
            c for c in optional if c
        )


@dataclasses.dataclass(frozen=True)
class CategoricalSpec:
    """One categorical attribute of the catalogue's items (genres, category, brand).

    Either a column holding a delimited list of values, or one 0/1 flag column
    per value (the value is the column's name). All of a catalogue's
    categorical attributes become the items' category tokens.

    Attributes:
        column: The delimited list column (None with `flags`).
        separator: Separator of the list.
        empty: A value meaning "none" (e.g. "(no genres listed)").
        flags: Flag columns: a value is present where its column is 1/true/yes.
    """

    column: str | None = None
    separator: str = "|"
    empty: str = ""
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if bool(self.column) == bool(self.flags):
            raise ValueError(
                f"a categorical attribute is a list column or flag columns, got column="
                f"{self.column!r}, flags={list(self.flags)}"
            )

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns it reads."""
        return (self.column,) if self.column else self.flags


@dataclasses.dataclass(frozen=True)
class CatalogSpec:
    """The item catalogue: every row becomes a retrieval candidate.

    Attributes:
        file: Path of the file relative to the data root (a BigQuery table or query
            with format "bigquery"). With `IngestSpec.spans` it may hold the logs'
            partition placeholder (a catalogue snapshot per span) or not (one
            catalogue, read with every span).
        item_column: Column holding the item id (same id space as the logs).
        title_column: Column holding the item title (what `retrieve` returns).
        categorical: The items' categorical attributes (their category tokens).
        text_columns: More text columns, tokenised with the title.
        format: One of `FORMATS`.
        csv: The CSV dialect (format "csv").
    """

    file: str
    item_column: str = "movieId"
    title_column: str = "title"
    categorical: tuple[CategoricalSpec, ...] = (
        CategoricalSpec(column="genres", empty="(no genres listed)"),
    )
    text_columns: tuple[str, ...] = ()
    format: str = "csv"
    csv: CsvDialect = CsvDialect()

    def __post_init__(self) -> None:
        _check_source("catalog", self.format, self.file)
        if not self.item_column or not self.title_column:
            raise ValueError("catalog.item_column and title_column must be set")

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns every row must have."""
        columns = [self.item_column, self.title_column]
        for attribute in self.categorical:
            columns.extend(attribute.columns)
        return tuple(dict.fromkeys([*columns, *self.text_columns]))


@dataclasses.dataclass(frozen=True)
class SpanConfig:
    """Time-partitioned logs: a span at a time, a rolling window, a temporal holdout.

    ExampleGen ingests one span per run (the newest, as TFX's file-based driver
    resolves it); the model trains on the `window` spans before the newest
    `holdout` spans and is evaluated on those: trained on the past, judged on
    what happened next.

    Attributes:
        window: Spans the model trains on.
        holdout: Newest spans the Evaluator scores (days, with date partitions).
        drift_blocks: Whether drift of a span from the previous one (the drift
            comparators of the curated schema) stops the run; False reports it
            and goes on.
    """

    window: int = 14
    holdout: int = 1
    drift_blocks: bool = False

    def __post_init__(self) -> None:
        if self.window <= 0 or self.holdout <= 0:
            raise ValueError(
                f"SpanConfig.window and holdout must be positive, got {self.window}, {self.holdout}"
            )

    def split(self, spans: list[int]) -> tuple[list[int], list[int]]:
        """(train spans, eval spans): the newest `holdout` spans and up to `window` before.

        Raises:
            ValueError: with fewer than `holdout + 1` spans.
        """
        spans = sorted(spans)
        if len(spans) <= self.holdout:
            raise ValueError(
                f"the temporal window needs {self.holdout + 1} accepted spans ({self.holdout} "
                f"to evaluate, at least one before them to train on), found {spans}. Ingest "
                "earlier spans first (local_runner.py ingests every span it has not seen)"
            )
        return spans[: -self.holdout][-self.window :], spans[-self.holdout :]


SPLIT_RULES = ("temporal", "pair_hash")
"""How a snapshot's events are split into train and eval (`IngestSpec.split_by`)."""


@dataclasses.dataclass(frozen=True)
class IngestSpec(jsonable.JsonDataclass):
    """Everything the ExampleGen needs besides the data root.

    Attributes:
        logs: The feedback logs, at least one.
        catalog: The item catalogue.
        split_by: How a snapshot is split. "temporal" (default): each user's latest
            `eval_percent`% of (user, item) pairs, dated by their first event, are
            the eval split (`contracts.holdout`), so the model is judged on what
            comes after what it learned from, as a served model is. "pair_hash":
            a seeded hash of the pair routes it (a random split of pairs).
        eval_percent: Share of each user's pairs (temporal) or of all pairs (pair
            hash) routed to the eval split, in (0, 100).
        seed: Salt of the pair hash; another seed gives another random split.
        max_unknown_item_share: Largest share of a log's events whose item may be
            missing from the catalogue (they are kept, with no title or genres);
            above it ExampleGen fails, since the logs and the catalogue then
            most likely use different ids.
        spans: Set for time-partitioned logs (every log file holds a partition
            placeholder); None reads the logs as one snapshot, split by `split_by`.
    """

    logs: tuple[LogSpec, ...]
    catalog: CatalogSpec
    eval_percent: int = 20
    seed: int = 42
    split_by: str = "temporal"
    max_unknown_item_share: float = 0.5
    spans: SpanConfig | None = None

    def __post_init__(self) -> None:
        if not self.logs:
            raise ValueError("IngestSpec.logs must name at least one log")
        names = [log.name for log in self.logs]
        if len(set(names)) != len(names):
            raise ValueError(f"log names must be unique, got {names}")
        if not 0 < self.eval_percent < 100:
            raise ValueError(f"eval_percent must be in (0, 100), got {self.eval_percent}")
        if self.split_by not in SPLIT_RULES:
            raise ValueError(f"split_by must be one of {SPLIT_RULES}, got {self.split_by!r}")
        if not 0 <= self.max_unknown_item_share <= 1:
            raise ValueError(
                f"max_unknown_item_share must be in [0, 1], got {self.max_unknown_item_share}"
            )
        kinds = {log.name: partition_kind(log.file) for log in self.logs}
        catalog_kind = partition_kind(self.catalog.file)
        if self.spans is None:
            marked = sorted(n for n, k in kinds.items() if k) + (
                ["catalog"] if catalog_kind else []
            )
            if marked:
                raise ValueError(
                    f"file patterns of {marked} hold a partition placeholder but "
                    "IngestSpec.spans is not set"
                )
            return
        if CATALOG in kinds:
            raise ValueError(f"a log may not be called {CATALOG!r} with spans (reserved)")
        queried = sorted(log.name for log in self.logs if log.format == "bigquery") + (
            [CATALOG] if self.catalog.format == "bigquery" else []
        )
        if queried:
            raise ValueError(
                f"{queried} read BigQuery, which is a snapshot: time partitions need files"
            )
        unmarked = sorted(n for n, k in kinds.items() if k is None)
        if unmarked:
            raise ValueError(
                f"IngestSpec.spans needs a partition placeholder ({{SPAN}} or "
                f"{{YYYY}}{{MM}}{{DD}}) in the file of every log; {unmarked} have none"
            )
        used = set(kinds.values()) | ({catalog_kind} if catalog_kind else set())
        if len(used) > 1:
            raise ValueError(
                f"every partitioned file must use the same placeholder kind, got {sorted(used)}"
            )

    def partitioned_patterns(self) -> dict[str, str]:
        """File pattern of every partitioned input, keyed by log name (and `catalog`)."""
        patterns = {log.name: log.file for log in self.logs}
        if partition_kind(self.catalog.file):
            patterns[CATALOG] = self.catalog.file
        return patterns
