"""Transform's logic: raw events and catalogue rows to model features.

`models.entrypoints.preprocessing_fn` calls `transform_features`.

The same graph runs in Transform (analysis + materialisation) and inside the
exported SavedModel, so training and serving see identical vocabularies.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from models import features as F
from models.config import FeatureConfig


def first_value(x: tf.Tensor | tf.SparseTensor, default) -> tuple[tf.Tensor, tf.Tensor]:
    """Returns the first value per row and a 0/1 presence mask, both shaped [batch].

    Args:
        x: A [batch, n] dense or sparse tensor (n may be 0 in a sparse batch).
        default: Value used where a row holds no value.
    """
    if isinstance(x, tf.SparseTensor):
        batch = x.dense_shape[0]
        first = tf.sparse.reset_shape(tf.sparse.slice(x, [0, 0], [batch, 1]), [batch, 1])
        ones = tf.ones_like(first.values, dtype=tf.float32)
        present = tf.sparse.to_dense(tf.SparseTensor(first.indices, ones, first.dense_shape))
        present = tf.reshape(present, [-1])
        return tf.reshape(tf.sparse.to_dense(first, default_value=default), [-1]), present
    flat = tf.reshape(x, [tf.shape(x)[0], -1])[:, 0]
    return flat, tf.ones_like(flat, dtype=tf.float32)


def genre_ids(genres: tf.SparseTensor) -> tf.Tensor:
    """Maps a sparse [batch, n] genre string tensor to [batch, MAX_GENRES] ids; 0 pads."""
    ids = tft.compute_and_apply_vocabulary(
        genres, num_oov_buckets=F.OOV_BUCKETS, vocab_filename=F.GENRE_VOCAB
    )
    dense = tf.sparse.to_dense(tf.sparse.map_values(tf.add, ids, tf.constant(1, tf.int64)))
    dense = tf.pad(dense, [[0, 0], [0, F.MAX_GENRES]])[:, : F.MAX_GENRES]
    return tf.ensure_shape(dense, [None, F.MAX_GENRES])


_YEAR = r".*\((\d{4})\)\s*$"
_YEAR_SUFFIX = r"\(\d{4}\)\s*$"


def title_tokens(title: tf.Tensor) -> tf.Tensor:
    """Maps [batch] texts to [batch, MAX_TITLE_TOKENS] word ids (vocabulary index + 1; 0 pads).

    Words are lower-cased and split on non-alphanumerics; words rarer than
    TITLE_MIN_COUNT share the OOV id.
    """
    text = tf.strings.lower(title)
    words = tf.strings.split(tf.strings.regex_replace(text, r"[^a-z0-9]+", " ")).to_sparse()
    ids = tft.compute_and_apply_vocabulary(
        words,
        frequency_threshold=F.TITLE_MIN_COUNT,
        num_oov_buckets=F.OOV_BUCKETS,
        vocab_filename=F.TITLE_VOCAB,
    )
    dense = tf.sparse.to_dense(tf.sparse.map_values(tf.add, ids, tf.constant(1, tf.int64)))
    dense = tf.pad(dense, [[0, 0], [0, F.MAX_TITLE_TOKENS]])[:, : F.MAX_TITLE_TOKENS]
    return tf.ensure_shape(dense, [None, F.MAX_TITLE_TOKENS])


def year_bucket(title: tf.Tensor) -> tf.Tensor:
    """Maps [batch] titles to [batch, 1] release-year quantile buckets + 1 (0: no year)."""
    has_year = tf.strings.regex_full_match(title, _YEAR)
    digits = tf.strings.regex_replace(title, _YEAR, r"\1")
    year = tf.where(has_year, tf.strings.to_number(tf.where(has_year, digits, "0")), 0.0)
    buckets = tft.bucketize(year, F.YEAR_BUCKETS, weights=tf.cast(has_year, tf.float32))
    return tf.expand_dims(tf.where(has_year, buckets + 1, tf.zeros_like(buckets)), -1)


def transform_features(
    inputs: dict[str, tf.Tensor | tf.SparseTensor], features: FeatureConfig | None = None
) -> dict[str, tf.Tensor]:
    """Builds user/item/genre vocabularies and the model's features.

    Args:
        inputs: Raw features as parsed by the curated schema (see models.features);
            a `text` feature, when the schema has one, is tokenised with the title.
        features: Data-set specific features (the title's release year).

    Returns:
        Transformed features, each shaped [batch] except the padded id lists
        `genre_ids` [batch, MAX_GENRES], `title_tokens` [batch, MAX_TITLE_TOKENS]
        and, with `features.title_year`, `year_bucket` [batch, 1]:
        user_idx, item_idx (int64, OOV bucket = vocabulary size),
        rating (0 where absent), rating_mask (1 where a rating exists), and the
        user_id, item_id, title and event_type strings passed through (known
        items of users outside the vocabulary, candidate export, per-task event
        selection; "" where a row has none).
    """
    features = features or FeatureConfig()
    user, has_user = first_value(inputs[F.USER_ID], b"")
    rating, has_rating = first_value(inputs[F.RATING], 0.0)
    passthrough = {name: first_value(inputs[name], b"")[0] for name in F.PASSTHROUGH}
    item, title = passthrough[F.ITEM_ID], passthrough[F.TITLE]
    words = title
    if features.title_year:
        words = tf.strings.regex_replace(title, _YEAR_SUFFIX, "")
    if F.TEXT in inputs:
        words = tf.strings.join([words, first_value(inputs[F.TEXT], b"")[0]], separator=" ")

    # Catalogue rows carry no user: weight 0 keeps "" out of the user vocabulary.
    user_vocab = tft.vocabulary(
        user, weights=has_user, frequency_threshold=1, vocab_filename=F.USER_VOCAB
    )
    out = {
        F.USER_IDX: tft.apply_vocabulary(user, user_vocab, num_oov_buckets=F.OOV_BUCKETS),
        F.ITEM_IDX: tft.compute_and_apply_vocabulary(
            item, num_oov_buckets=F.OOV_BUCKETS, vocab_filename=F.ITEM_VOCAB
        ),
        F.GENRE_IDS: genre_ids(inputs[F.GENRES]),
        F.TITLE_TOKENS: title_tokens(words),
        F.RATING: rating,
        F.RATING_MASK: has_rating,
        F.TIMESTAMP: first_value(inputs[F.TIMESTAMP], tf.constant(0, tf.int64))[0],
        **passthrough,
    }
    if features.title_year:
        out[F.YEAR_BUCKET] = year_bucket(title)
    return out
