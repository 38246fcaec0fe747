"""The Trainer's datasets: training events with their histories, the early-stopping holdout, eval.

Every event is given exactly the history a served model would read for it. A
fitted event gets the user's items strictly before it (what `retrieve` read at
that moment; `models.history.event_histories`), so shuffling keeps event and
history together. Each user's latest training pairs (`ModelConfig.holdout_percent`,
the rule of `contracts.holdout`) are held out to decide when to stop (never the
evaluation split): they stand for what comes after training, so they get the
user's latest fitted items, as `retrieve` would serve them. Evaluation events
get the user's latest training items, exactly what the exported model serves.
A seeded share of the fitted events has its user id hidden
(`ModelConfig.user_dropout`) so that the query tower learns to answer from the
history alone.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from contracts.holdout import latest_pairs
from models import features as F
from models.config import ModelConfig
from models.data import (
    SCAN_BATCH,
    read_columns,
    read_transformed,
    with_item_probability,
    with_task_events,
)
from models.history import event_histories, latest_histories

HOLDOUT, DROP, FIT = "_holdout", "_drop_user", "_fit"
"""Aligned helper columns, removed before the model sees a batch."""
EVENT_COLUMNS = (F.USER_IDX, F.ITEM_IDX, F.TIMESTAMP)


@dataclasses.dataclass(frozen=True)
class TrainingInputs:
    """Batched datasets of one training.

    Attributes:
        fit: Shuffled training events (holdout left out), weighted per task.
        holdout: The held-out training events (None without early stopping, or
            when no user has enough pairs to hold one out).
        evaluation: The evaluation split, with the histories training gives it.
        fit_events: Events in one pass over `fit`.
        fit_after: Only events after this time are fitted (None: every event).
        trained_through: The latest training event's time (0 without times).
        known: (user, item) indices of the training events outside the holdout,
            the items a holdout event's user is known by when it is scored.
    """

    fit: tf.data.Dataset
    holdout: tf.data.Dataset | None
    evaluation: tf.data.Dataset
    fit_events: int
    fit_after: int | None = None
    trained_through: int = 0
    known: tuple[np.ndarray, np.ndarray] | None = None


def event_columns(
    pattern: str | list[str], tf_transform_output: tft.TFTransformOutput
) -> dict[str, np.ndarray]:
    """User, item and time of every event in file order (time 0 if Transform has none)."""
    spec = tf_transform_output.transformed_feature_spec()
    names = [n for n in EVENT_COLUMNS if n in spec]
    columns = read_columns(read_transformed(pattern, tf_transform_output, SCAN_BATCH), names)
    if F.TIMESTAMP not in columns:
        columns[F.TIMESTAMP] = np.zeros_like(columns[F.USER_IDX])
    return columns


def served_histories(
    users: np.ndarray, items: np.ndarray, times: np.ndarray, known: np.ndarray, length: int
) -> np.ndarray:
    """The history a served model gives each training event; int64 [E, length].

    Args:
        users: [E] user index of each training event.
        items: [E] item index.
        times: [E] event time.
        known: [E] bool, the events the model learns from (not held out).
        length: History length H.

    Returns:
        A known event: the user's known items strictly before it. A held-out
        event (what comes after training): the user's latest known items.
    """
    out = np.zeros((len(users), length), np.int64)
    out[known] = event_histories(users[known], items[known], times[known], length)
    if (~known).any():
        out[~known] = latest_histories(
            users[known], items[known], times[known], users[~known], length
        )
    return out


def rehearsal(older: np.ndarray, new_events: int, config: ModelConfig) -> np.ndarray:
    """A seeded sample of `older` events to fit beside `new_events` new ones.

    Args:
        older: [events] bool, the fittable events the base model already saw.
        new_events: How many new events are fitted.
        config: `warm_start_rehearsal` (older events per new one) and `seed`.

    Returns:
        [events] bool: `config.warm_start_rehearsal * new_events` of `older`
        (all of them if fewer), none when the share is 0.
    """
    chosen = np.zeros_like(older)
    wanted = min(int(round(config.warm_start_rehearsal * new_events)), int(older.sum()))
    if wanted:
        rng = np.random.default_rng([config.seed, 1])
        chosen[rng.choice(np.flatnonzero(older), wanted, replace=False)] = True
    return chosen


def training_inputs(
    config: ModelConfig,
    tf_transform_output: tft.TFTransformOutput,
    train_pattern: str | list[str],
    eval_pattern: str | list[str],
    item_probabilities: np.ndarray,
    map_events=None,
    fit_after: int | None = None,
) -> TrainingInputs:
    """The fit, holdout and evaluation datasets of `config` (see the module doc).

    Args:
        config: Hyperparameters (batch size, holdout, history length, seed).
        tf_transform_output: Transform output.
        train_pattern: Transformed training events.
        eval_pattern: Transformed evaluation events.
        item_probabilities: [items] sampling probability of each item (logQ).
        map_events: Rewrites each batch of training events.
        fit_after: Fit only the training events later than this time (a warm
            start's events the base model never saw); every event still gives
            histories and the holdout. Ignored (every event is fitted) when
            fewer than one batch of events is that recent. With
            `config.warm_start_rehearsal`, a sample of the older events is
            fitted with them (`rehearsal`).
    """
    train = event_columns(train_pattern, tf_transform_output)
    users, items, times = (train[c] for c in EVENT_COLUMNS)
    n = len(users)
    rng = np.random.default_rng(config.seed)
    held = np.zeros(n, bool)
    if config.early_stopping:
        held = latest_pairs(users, items, times, config.holdout_percent)
        if not held.any():
            logging.warning(
                "no user has enough training pairs to hold out %d%%: no early stopping",
                config.holdout_percent,
            )
    aligned = {HOLDOUT: held, DROP: rng.random(n) < config.user_dropout}
    known = fitted = ~held
    if fit_after is not None:
        recent = fitted & (times > fit_after)
        if recent.sum() >= config.batch_size:
            fitted = recent | rehearsal(fitted & ~recent, recent.sum(), config)
        else:
            logging.warning(
                "%d training events are after %d, less than a batch: fitting all %d",
                recent.sum(),
                fit_after,
                fitted.sum(),
            )
            fit_after = None
    aligned[FIT] = fitted
    if config.history_length:
        aligned[F.HISTORY] = served_histories(users, items, times, known, config.history_length)
    num_users = tf_transform_output.vocabulary_size_by_name(F.USER_VOCAB)

    def finish(dataset, drop_users: bool):
        def strip(features):
            out = {k: v for k, v in features.items() if k not in (HOLDOUT, DROP, FIT)}
            if drop_users:
                out[F.USER_IDX] = tf.where(
                    features[DROP], tf.constant(num_users, tf.int64), features[F.USER_IDX]
                )
            return out

        dataset = dataset.map(strip)
        if map_events:
            dataset = dataset.map(map_events)
        dataset = with_task_events(dataset, config.events)
        return with_item_probability(dataset, item_probabilities**config.sampling_correction)

    fit = read_transformed(
        train_pattern,
        tf_transform_output,
        config.batch_size,
        config.shuffle_buffer,
        config.seed,
        aligned=aligned,
        keep=lambda extra: extra[FIT],
    )
    holdout = None
    if held.any():
        held_out = read_transformed(
            train_pattern,
            tf_transform_output,
            SCAN_BATCH,
            aligned=aligned,
            keep=lambda e: e[HOLDOUT],
        )
        holdout = finish(held_out, drop_users=False)
    evaluation_aligned = None
    if config.history_length:
        evaluated = event_columns(eval_pattern, tf_transform_output)
        evaluation_aligned = {
            F.HISTORY: latest_histories(
                users, items, times, evaluated[F.USER_IDX], config.history_length
            )
        }
    evaluation = read_transformed(
        eval_pattern, tf_transform_output, SCAN_BATCH, aligned=evaluation_aligned
    )
    return TrainingInputs(
        finish(fit, drop_users=config.user_dropout > 0),
        holdout,
        evaluation,
        int(fitted.sum()),
        fit_after,
        int(times.max()) if n else 0,
        (users[known], items[known]),
    )
