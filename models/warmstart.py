"""Warm start: initialise a new model from the last blessed one across a vocabulary change.

The Trainer saves, next to the serving models, every trainable weight of the
model by its attribute path (`user_tower/embedding/embeddings`, ...) and the
row labels of each vocabulary-keyed embedding table. A later Trainer builds its
model on the new Transform output and carries over:

- rows of ids present in both vocabularies, re-ordered to the new vocabulary
  (`tf.keras.utils.warmstart_embedding_matrix`); new ids keep their fresh
  initialisation, vanished ids are dropped;
- every other weight whose shape is unchanged (dense layers, DCN, year buckets).

Weights whose shape changed (e.g. another `embedding_dim`) stay fresh, and the
summary says so.
"""

from __future__ import annotations

import io
import json
import logging
import os

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models import features as F

WEIGHTS_FILE = "weights.npz"
ROWS_FILE = "rows.json"
REPORT_FILE = "training.json"
"""How the model was trained: warm or cold, from which base, epochs and fit time."""
OOV_ROW, PAD_ROW = "\x00oov", "\x00pad"
"""Row labels of the OOV and padding rows: no id can be them (ids hold no NUL)."""

VOCABULARY_TABLES = {
    "user_tower/embedding/embeddings": (F.USER_VOCAB, False),
    "item_tower/item_embedding/embeddings": (F.ITEM_VOCAB, False),
    "user_tower/history_embedding/embeddings": (F.ITEM_VOCAB, True),
    **{
        f"item_tower/token_embeddings/{feature}/embeddings": (vocabulary, True)
        for feature, vocabulary in F.ITEM_TOKEN_VOCABULARIES.items()
    },
}
"""Embedding tables keyed by a Transform vocabulary: path -> (vocabulary, has a pad row 0)."""


def variable_paths(model: tf.keras.Model) -> dict[str, tf.Variable]:
    """Every trainable variable by its attribute path, stable across builds and processes.

    Keras variable names carry global counters (`dense_1`); attribute paths do
    not. A variable reachable by several paths takes the one with the fewest
    private (`_`) steps, then the shortest.
    """
    trainable = {id(v) for v in model.trainable_variables}
    best: dict[int, tuple[tuple[int, int, str], tf.Variable]] = {}
    for path, variable in model._flatten(
        predicate=lambda v: isinstance(v, tf.Variable), with_path=True
    ):
        if id(variable) not in trainable:
            continue
        name = "/".join(str(p) for p in path)
        key = (sum(str(p).startswith("_") for p in path), len(path), name)
        if id(variable) not in best or key < best[id(variable)][0]:
            best[id(variable)] = (key, variable)
    return {key[2]: variable for key, variable in best.values()}


def vocabularies(tf_transform_output: tft.TFTransformOutput) -> dict[str, list[str]]:
    """The ids of every vocabulary a table is keyed by, from Transform's output."""
    names = {vocabulary for vocabulary, _ in VOCABULARY_TABLES.values()}
    return {
        name: [v.decode() for v in tf_transform_output.vocabulary_by_name(name)] for name in names
    }


def table_rows(vocabs: dict[str, list[str]]) -> dict[str, list[str]]:
    """The label of every row of each vocabulary-keyed table (padding, ids, OOV)."""
    return {
        path: [PAD_ROW] * padded + list(vocabs[vocabulary]) + [OOV_ROW] * F.OOV_BUCKETS
        for path, (vocabulary, padded) in VOCABULARY_TABLES.items()
    }


def save(model: tf.keras.Model, vocabs: dict[str, list[str]], directory: str) -> None:
    """Writes the model's trainable weights and its tables' row labels to `directory`.

    Args:
        model: The trained model.
        vocabs: Its vocabularies (`vocabularies`), by vocabulary name.
        directory: Where to write (`contracts.layout.warmstart_dir`).
    """
    tf.io.gfile.makedirs(directory)
    buffer = io.BytesIO()
    np.savez(buffer, **{path: v.numpy() for path, v in variable_paths(model).items()})
    with tf.io.gfile.GFile(os.path.join(directory, WEIGHTS_FILE), "wb") as f:
        f.write(buffer.getvalue())
    with tf.io.gfile.GFile(os.path.join(directory, ROWS_FILE), "w") as f:
        json.dump(table_rows(vocabs), f)


def warm_start(
    model: tf.keras.Model, vocabs: dict[str, list[str]], directory: str
) -> dict[str, str]:
    """Initialises the built `model` from the weights saved in `directory`.

    Args:
        model: A built model (its variables exist).
        vocabs: The model's (new) vocabularies, by vocabulary name (`vocabularies`).
        directory: What `save` wrote for the base model.

    Returns:
        What happened to each weight: "carried", "remapped: n of m rows carried",
        or why it stayed fresh.

    Raises:
        ValueError: if `directory` holds no saved weights.
    """
    path = os.path.join(directory, WEIGHTS_FILE)
    if not tf.io.gfile.exists(path):
        raise ValueError(f"no warm-start weights at {path}")
    with tf.io.gfile.GFile(path, "rb") as f:
        base = dict(np.load(io.BytesIO(f.read())))
    with tf.io.gfile.GFile(os.path.join(directory, ROWS_FILE)) as f:
        base_rows = json.load(f)
    new_rows = table_rows(vocabs)
    summary = {}
    for name, variable in sorted(variable_paths(model).items()):
        old = base.get(name)
        if old is None:
            summary[name] = "fresh: not in the base model"
        elif name in VOCABULARY_TABLES and name in base_rows:
            if old.shape[1:] != tuple(variable.shape[1:]):
                summary[name] = f"fresh: width {old.shape[1:]} != {tuple(variable.shape[1:])}"
                continue
            remapped = tf.keras.utils.warmstart_embedding_matrix(
                base_vocabulary=base_rows[name],
                new_vocabulary=new_rows[name],
                base_embeddings=old,
                new_embeddings_initializer=tf.keras.initializers.Constant(variable.numpy()),
            )
            variable.assign(remapped)
            carried = len(set(base_rows[name]) & set(new_rows[name]))
            summary[name] = f"remapped: {carried} of {len(new_rows[name])} rows carried"
        elif old.shape == tuple(variable.shape):
            variable.assign(old)
            summary[name] = "carried"
        else:
            summary[name] = f"fresh: shape {old.shape} != {tuple(variable.shape)}"
    logging.info("Warm start from %s: %s", directory, summary)
    return summary


def trained_through(directory: str) -> int | None:
    """The latest training event's time of the model saved in `directory`, if recorded.

    Models trained before the report held it, or on events without times
    (time 0), give None.
    """
    path = os.path.join(directory, REPORT_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        value = json.load(f).get("trained_through")
    return int(value) if value else None


def write_report(directory: str, base: str | None, metrics: dict) -> None:
    """Records how the model saved in `directory` was trained (`REPORT_FILE`).

    Args:
        directory: The model's warm-start directory.
        base: The warm-start weights it started from; None for a cold start.
        metrics: `models.training.train`'s final metrics (epochs, fit seconds,
            and what the warm start did to each weight).
    """
    report = {"warm_start_from": base, **metrics}
    with tf.io.gfile.GFile(os.path.join(directory, REPORT_FILE), "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
