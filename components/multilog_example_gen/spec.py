"""Typed description of the feedback logs and catalogue the ExampleGen ingests.

The specs are plain frozen dataclasses so the pipeline config can hold them and
the executor can rebuild them from the JSON `custom_config` TFX passes along.
"""

from __future__ import annotations

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


@dataclasses.dataclass(frozen=True)
class LogSpec:
    """One CSV feedback log, turned into events of a single type.

    Attributes:
        name: Short name used in messages and Beam step labels.
        file: Path of the CSV file relative to the data root; a glob pattern
            (e.g. "views/*.csv") reads every matching file, in name order, as one log.
            With `IngestSpec.spans`, it holds TFX's partition placeholder: `{SPAN}`
            (e.g. "views/span-{SPAN}/*.csv") or a date (`views/{YYYY}-{MM}-{DD}/*.csv`).
        event_type: Event type written on every event of this log (e.g. "watch").
        user_column: Column holding the user id.
        item_column: Column holding the item id.
        timestamp_column: Column holding the event time in Unix seconds.
        rating_column: Optional column holding an explicit rating; events of a log
            without one carry no rating.
    """

    name: str
    file: str
    event_type: str
    user_column: str = "userId"
    item_column: str = "movieId"
    timestamp_column: str = "timestamp"
    rating_column: str | None = None

    def __post_init__(self) -> None:
        for field in ("name", "file", "event_type", "user_column", "item_column"):
            if not getattr(self, field):
                raise ValueError(f"LogSpec.{field} must be non-empty, got {getattr(self, field)!r}")
        if self.event_type == CATALOG:
            raise ValueError(f"event_type {self.event_type!r} is reserved for catalogue rows")

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns the CSV header must contain."""
        cols = [self.user_column, self.item_column, self.timestamp_column]
        if self.rating_column:
            cols.append(self.rating_column)
        return tuple(cols)


@dataclasses.dataclass(frozen=True)
class CatalogSpec:
    """The item catalogue CSV: every row becomes a retrieval candidate.

    Attributes:
        file: Path of the CSV file relative to the data root. With
            `IngestSpec.spans` it may hold the logs' partition placeholder (a
            catalogue snapshot per span) or not (one catalogue, read with every span).
        item_column: Column holding the item id (same id space as the logs).
        title_column: Column holding the item title.
        genres_column: Column holding `genres_separator`-joined genres.
        genres_separator: Separator between genres.
        empty_genres: Placeholder value meaning "no genres".
    """

    file: str
    item_column: str = "movieId"
    title_column: str = "title"
    genres_column: str = "genres"
    genres_separator: str = "|"
    empty_genres: str = "(no genres listed)"

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns the CSV header must contain."""
        return (self.item_column, self.title_column, self.genres_column)


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


@dataclasses.dataclass(frozen=True)
class IngestSpec(jsonable.JsonDataclass):
    """Everything the ExampleGen needs besides the data root.

    Attributes:
        logs: The feedback logs, at least one.
        catalog: The item catalogue.
        eval_percent: Share of (user, item) pairs routed to the eval split, in (0, 100).
        seed: Salt of the split hash; another seed gives another random split.
        max_unknown_item_share: Largest share of a log's events whose item may be
            missing from the catalogue (they are kept, with no title or genres);
            above it ExampleGen fails, since the logs and the catalogue then
            most likely use different ids.
        spans: Set for time-partitioned logs (every log file holds a partition
            placeholder); None reads the logs as one snapshot, split by the pair hash.
    """

    logs: tuple[LogSpec, ...]
    catalog: CatalogSpec
    eval_percent: int = 20
    seed: int = 42
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
