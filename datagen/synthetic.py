"""Synthetic multi-behaviour e-commerce logs with a planted structure, deterministic by seed.

Users and items carry rank-`rank` latent factors; an item's appeal to a user is
`affinity = personal_scale * <p_u, q_i> / sqrt(rank) + popularity_i`. Each user views items
drawn from softmax(affinity), and each view walks down a funnel
view > click > add-to-cart > purchase whose step probabilities rise with the
affinity (calibrated to roughly 100 : 20 : 5 : 1). A share of purchases carries
an explicit 1-5 rating that follows the user's taste for the item (the factor
term; `star_rating`).

Output, in the format the pipeline ingests (`pipeline.presets.SYNTHETIC_INGEST`): one CSV
per behaviour (`views.csv`, `clicks.csv`, `carts.csv`, `purchases.csv` with a
`rating` column that is empty for unrated purchases) and `items.csv`.

    python -m datagen.synthetic --out data/synthetic --users 50000 --items 20000 --views 800000
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
from collections.abc import Sequence

import numpy as np

FUNNEL = ("view", "click", "cart", "purchase")
FILES = {
    "view": "views.csv",
    "click": "clicks.csv",
    "cart": "carts.csv",
    "purchase": "purchases.csv",
}
CATEGORIES = tuple(f"cat{c:02d}" for c in range(16))


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of the generated logs.

    Attributes:
        users: Number of users.
        items: Number of items.
        views: Approximate number of view events (the other behaviours follow).
        rank: Latent dimension of the planted structure.
        rated_share: Share of purchases that carry a rating.
        personal_scale: Weight of the user-item factor term in the affinity.
        popularity_scale: Spread of the items' popularity term in the affinity.
        seed: Seed of every random draw.
        start_time: Unix time of the first event.
    """

    users: int = 2000
    items: int = 1000
    views: int = 40_000
    rank: int = 8
    rated_share: float = 0.3
    personal_scale: float = 2.0
    popularity_scale: float = 0.7
    seed: int = 42
    start_time: int = 1_700_000_000

    def __post_init__(self) -> None:
        for name in ("users", "items", "views", "rank"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"SyntheticConfig.{name} must be positive, got {getattr(self, name)}"
                )
        if not 0 <= self.rated_share <= 1:
            raise ValueError(f"rated_share must be in [0, 1], got {self.rated_share}")


@dataclasses.dataclass(frozen=True)
class PlantedStructure:
    """The ground truth the logs were drawn from (for tests and benchmarks)."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    popularity: np.ndarray
    personal_scale: float = 1.0

    def affinity(self, users: np.ndarray) -> np.ndarray:
        """Affinity [len(users), items] of the given users to every item."""
        rank = self.user_factors.shape[1]
        personal = self.user_factors[users] @ self.item_factors.T / np.sqrt(rank)
        return self.personal_scale * personal + self.popularity


def star_rating(taste: float, rng: np.random.Generator) -> int:
    """A 1-5 rating of a bought item: 3 + the user's taste for it + noise (sd 0.5), rounded.

    The taste is <p_u, q_i> / sqrt(rank), the planted factors that also drive what
    the user views. The rating follows the same latent taste as the implicit behaviours, so a model
    that learns it from views can predict ratings beyond the user's and item's means.
    """
    return int(np.clip(np.rint(3.0 + taste + rng.normal(0, 0.5)), 1, 5))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, elementwise."""
    return 1.0 / (1.0 + np.exp(-x))


def generate(
    config: SyntheticConfig,
) -> tuple[dict[str, list[tuple]], list[tuple], PlantedStructure]:
    """Draws the logs.

    Returns:
        Rows per behaviour (user, item, timestamp[, rating]), catalogue rows
        (item, title, genres) and the planted structure.
    """
    rng = np.random.default_rng(config.seed)
    truth = PlantedStructure(
        user_factors=rng.normal(size=(config.users, config.rank)),
        item_factors=rng.normal(size=(config.items, config.rank)),
        popularity=rng.normal(scale=config.popularity_scale, size=config.items),
        personal_scale=config.personal_scale,
    )
    activity = rng.lognormal(sigma=0.8, size=config.users)
    per_user = np.maximum(1, rng.poisson(config.views * activity / activity.sum()))
    logs: dict[str, list[tuple]] = {event: [] for event in FUNNEL}
    clock = config.start_time
    for start in range(0, config.users, 512):
        users = np.arange(start, min(start + 512, config.users))
        scores = truth.affinity(users)
        taste = truth.user_factors[users] @ truth.item_factors.T / np.sqrt(config.rank)
        probs = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        for row, user in enumerate(users):
            items = rng.choice(config.items, size=per_user[user], p=probs[row])
            affinity = scores[row, items]
            z = (affinity - affinity.mean()) / (affinity.std() + 1e-9)
            steps = [np.ones(len(items), bool)]
            for bias in (-1.6, -1.6, -2.1):  # click, cart, purchase
                steps.append(steps[-1] & (rng.random(len(items)) < sigmoid(bias + 0.8 * z)))
            times = clock + np.sort(rng.integers(0, 86_400 * 30, size=len(items)))
            for event, mask in zip(FUNNEL, steps, strict=True):
                for item, t in zip(items[mask], times[mask], strict=True):
                    offset = FUNNEL.index(event) * 60
                    if event == "purchase":
                        rated = rng.random() < config.rated_share
                        rating = star_rating(taste[row, item], rng)
                        logs[event].append((user, item, t + offset, rating if rated else ""))
                    else:
                        logs[event].append((user, item, t + offset))
    top = np.argmax(truth.item_factors[:, :2] @ rng.normal(size=(2, len(CATEGORIES))), axis=1)
    catalog = [
        (
            i,
            f"Item {i} ({2000 + i % 25})",
            "|".join(sorted({CATEGORIES[top[i]], CATEGORIES[i % 16]})),
        )
        for i in range(config.items)
    ]
    return logs, catalog, truth


def write(config: SyntheticConfig, out_dir: str) -> PlantedStructure:
    """Generates the logs and writes them as the pipeline's CSV files into `out_dir`."""
    logs, catalog, truth = generate(config)
    os.makedirs(out_dir, exist_ok=True)
    for event, rows in logs.items():
        header = ["user_id", "item_id", "timestamp"] + (["rating"] if event == "purchase" else [])
        write_csv(os.path.join(out_dir, FILES[event]), header, rows)
    write_csv(os.path.join(out_dir, "items.csv"), ["item_id", "title", "genres"], catalog)
    return truth


def write_csv(path: str, header: Sequence[str], rows: Sequence[tuple]) -> None:
    """Writes a CSV file atomically (a temporary name, then a rename), creating its directory."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: writes a synthetic data set and prints its event counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    for field in dataclasses.fields(SyntheticConfig):
        parser.add_argument(f"--{field.name}", type=type(field.default), default=field.default)
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    config = SyntheticConfig(**args)
    write(config, out)
    for event in FUNNEL:
        with open(os.path.join(out, FILES[event])) as f:
            print(f"{event}: {sum(1 for _ in f) - 1:,} events")


if __name__ == "__main__":
    main()
