"""Typed description of the feedback logs and catalogue the ExampleGen ingests.

The specs are plain frozen dataclasses so the pipeline config can hold them and
the executor can rebuild them from the JSON `custom_config` TFX passes along.
"""

from __future__ import annotations

import dataclasses

from contracts import jsonable
from contracts.names import CATALOG


@dataclasses.dataclass(frozen=True)
class LogSpec:
    """One CSV feedback log, turned into events of a single type.

    Attributes:
        name: Short name used in messages and Beam step labels.
        file: Path of the CSV file relative to the data root; a glob pattern
            (e.g. "views/*.csv") reads every matching file, in name order, as one log.
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
        file: Path of the CSV file relative to the data root.
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
    """

    logs: tuple[LogSpec, ...]
    catalog: CatalogSpec
    eval_percent: int = 20
    seed: int = 42
    max_unknown_item_share: float = 0.5

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
