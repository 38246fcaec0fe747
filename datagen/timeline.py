"""Synthetic funnel logs over days: a data root that grows a span a day.

Built on `datagen.synthetic`'s planted structure (user and item factors plus
popularity, the view > click > cart > purchase funnel), with time:

- every day some returning users come back (by their activity) and new users
  arrive and are active on their first day;
- new items launch every day and join the catalogue that day;
- item popularity drifts (a random walk), and launched items start with a
  novelty boost that fades;
- a span is a day: `<behaviour>/span-<day>/<file>` and `items/span-<day>/items.csv`
  (the catalogue as of that day), `pipeline.presets.partitioned`'s layout.

    python -m datagen.timeline --out /tmp/timeline --days 10
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from datagen.partition import span_dir
from datagen.synthetic import CATEGORIES, FILES, FUNNEL, sigmoid, star_rating, write_csv

DAY = 86_400
CATALOG_NAME, CATALOG_FILE = "items", "items.csv"


@dataclasses.dataclass(frozen=True)
class TimelineConfig:
    """Size and dynamics of the daily logs.

    Attributes:
        days: Spans to write (day 1 is span `first_span`).
        users: Users present before day 1.
        new_users_per_day: Users arriving each day (active on their first day).
        returning_share: Share of the known users active on a given day.
        items: Items in the catalogue before day 1.
        new_items_per_day: Items launched each day.
        views_per_day: Approximate view events per day.
        rank: Latent dimension of the planted structure.
        personal_scale: Weight of the user-item factor term in the affinity.
        popularity_scale: Spread of the items' popularity term.
        popularity_drift: Daily standard deviation of each item's popularity walk.
        novelty: Popularity boost of a launched item on its launch day (halves daily).
        rated_share: Share of purchases that carry a 1-5 rating.
        seed: Seed of every random draw.
        start_time: Unix time of the start of day 1.
        first_span: Span number of day 1.
    """

    days: int = 10
    users: int = 3000
    new_users_per_day: int = 150
    returning_share: float = 0.35
    items: int = 1500
    new_items_per_day: int = 40
    views_per_day: int = 25_000
    rank: int = 8
    personal_scale: float = 2.0
    popularity_scale: float = 0.7
    popularity_drift: float = 0.1
    novelty: float = 1.0
    rated_share: float = 1.0
    seed: int = 7
    start_time: int = 1_700_006_400
    first_span: int = 1

    def __post_init__(self) -> None:
        for name in ("days", "users", "items", "views_per_day", "rank"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"TimelineConfig.{name} must be positive, got {getattr(self, name)}"
                )
        for name in ("returning_share", "rated_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"TimelineConfig.{name} must be in [0, 1]")


def write(config: TimelineConfig, out_dir: str) -> list[int]:
    """Writes every day's logs and catalogue under `out_dir`; returns the spans written."""
    rng = np.random.default_rng(config.seed)
    total_users = config.users + config.days * config.new_users_per_day
    total_items = config.items + config.days * config.new_items_per_day
    user_factors = rng.normal(size=(total_users, config.rank))
    item_factors = rng.normal(size=(total_items, config.rank))
    popularity = rng.normal(scale=config.popularity_scale, size=total_items)
    activity = rng.lognormal(sigma=0.8, size=total_users)
    launch = np.concatenate(
        [
            np.zeros(config.items, int),
            1 + np.arange(total_items - config.items) // max(1, config.new_items_per_day),
        ]
    )
    top = np.argmax(item_factors[:, :2] @ rng.normal(size=(2, len(CATEGORIES))), axis=1)
    spans = []
    for day in range(1, config.days + 1):
        span = config.first_span + day - 1
        spans.append(span)
        known = config.users + (day - 1) * config.new_users_per_day
        new = np.arange(known, known + config.new_users_per_day)
        returning = np.flatnonzero(rng.random(known) < config.returning_share)
        users = np.concatenate([returning, new])
        items = np.flatnonzero(launch <= day)
        popularity += rng.normal(scale=config.popularity_drift, size=total_items)
        boost = config.novelty * 0.5 ** np.maximum(day - launch[items], 0)
        views = np.maximum(
            1, rng.poisson(config.views_per_day * activity[users] / activity[users].sum())
        )
        logs = _day(
            config, rng, users, views, items, user_factors, item_factors, popularity[items] + boost
        )
        start = config.start_time + (day - 1) * DAY
        for event, rows in logs.items():
            header = ["user_id", "item_id", "timestamp"] + (
                ["rating"] if event == "purchase" else []
            )
            rows = [(u, i, start + t, *rest) for u, i, t, *rest in rows]
            write_csv(
                os.path.join(out_dir, span_dir(f"{event}s", span), FILES[event]), header, rows
            )
        catalog = [
            (
                i,
                f"Item {i} ({2000 + i % 25})",
                "|".join(sorted({CATEGORIES[top[i]], CATEGORIES[i % 16]})),
            )
            for i in items
        ]
        path = os.path.join(out_dir, span_dir(CATALOG_NAME, span), CATALOG_FILE)
        write_csv(path, ["item_id", "title", "genres"], catalog)
    return spans


def _day(config, rng, users, views, items, user_factors, item_factors, popularity) -> dict:
    """One day's funnel events: (user, item, seconds into the day[, rating]) per behaviour."""
    logs: dict[str, list[tuple]] = {event: [] for event in FUNNEL}
    for start in range(0, len(users), 512):
        chunk = users[start : start + 512]
        personal = user_factors[chunk] @ item_factors[items].T / np.sqrt(config.rank)
        scores = config.personal_scale * personal + popularity
        probs = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        for row, user in enumerate(chunk):
            n = views[start + row]
            picked = rng.choice(len(items), size=n, p=probs[row])
            affinity = scores[row, picked]
            z = (affinity - affinity.mean()) / (affinity.std() + 1e-9)
            steps = [np.ones(n, bool)]
            for bias in (-1.6, -1.6, -2.1):  # click, cart, purchase
                steps.append(steps[-1] & (rng.random(n) < sigmoid(bias + 0.8 * z)))
            times = np.sort(rng.integers(0, DAY - 300, size=n))
            for event, mask in zip(FUNNEL, steps, strict=True):
                offset = FUNNEL.index(event) * 60
                for pick, t in zip(picked[mask], times[mask], strict=True):
                    item = items[pick]
                    if event != "purchase":
                        logs[event].append((user, item, t + offset))
                        continue
                    rated = rng.random() < config.rated_share
                    rating = star_rating(personal[row, pick], rng)
                    logs[event].append((user, item, t + offset, rating if rated else ""))
    return logs


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: writes the daily spans."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    for field in dataclasses.fields(TimelineConfig):
        parser.add_argument(f"--{field.name}", type=type(field.default), default=field.default)
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    spans = write(TimelineConfig(**args), out)
    print(f"Wrote spans {spans[0]}..{spans[-1]} to {out}")


if __name__ == "__main__":
    main()
