"""preprocessing_fn through real tft_beam on a handful of rows."""

import functools
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from contracts.names import FEATURES_CONFIG_KEY
from models import features as F
from models.config import FeatureConfig
from models.entrypoints import preprocessing_fn

SCHEMA = tfdv.load_schema_text("schema/schema.pbtxt")

ROWS = [
    # Events: u1 watches i1 (rated), u1 tags i2, u2 watches i1 (rated).
    {
        "user_id": [b"u1"],
        "item_id": [b"i1"],
        "event_type": [b"watch"],
        "rating": [4.0],
        "timestamp": [1],
        "title": [b"One Night (1995)"],
        "genres": [b"Drama", b"War"],
    },
    {
        "user_id": [b"u1"],
        "item_id": [b"i2"],
        "event_type": [b"tag"],
        "rating": [],
        "timestamp": [2],
        "title": [b"Two Nights (2001)"],
        "genres": [b"Drama"],
    },
    {
        "user_id": [b"u2"],
        "item_id": [b"i1"],
        "event_type": [b"watch"],
        "rating": [2.5],
        "timestamp": [3],
        "title": [b"One Night (1995)"],
        "genres": [b"Drama", b"War"],
    },
    # Catalogue row: no user, no event; item i3 exists only here.
    {
        "user_id": [],
        "item_id": [b"i3"],
        "event_type": [],
        "rating": [],
        "timestamp": [],
        "title": [b"Three: Night, Day"],
        "genres": [],
    },
]


def _analyze_and_transform(title_year: bool):
    metadata = dataset_metadata.DatasetMetadata(SCHEMA)
    spec = schema_utils.schema_as_feature_spec(SCHEMA).feature_spec
    rows = []
    for row in ROWS:
        parsed = {}
        for name, feature in spec.items():
            values = row[name]
            if isinstance(feature, tf.io.FixedLenFeature):
                parsed[name] = np.array(
                    values, dtype=object if feature.dtype == tf.string else None
                )
            else:
                parsed[name] = np.array(
                    values,
                    dtype=object
                    if feature.dtype == tf.string
                    else (np.float32 if feature.dtype == tf.float32 else np.int64),
                )
        rows.append(parsed)
    with (
        tempfile.TemporaryDirectory() as tmp,
        tft_beam.Context(temp_dir=tmp, force_tf_compat_v1=False),
    ):
        config = {FEATURES_CONFIG_KEY: FeatureConfig(title_year=title_year).to_json_dict()}
        (data, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            functools.partial(preprocessing_fn, custom_config=config),
            output_record_batches=False,
        )
        out_dir = tempfile.mkdtemp()
        _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
    return data, tft.TFTransformOutput(out_dir)


@pytest.fixture(scope="module")
def transformed():
    return _analyze_and_transform(title_year=True)


@pytest.fixture(scope="module")
def transformed_without_year():
    return _analyze_and_transform(title_year=False)


def test_vocabularies_exclude_missing_users_and_include_catalogue_items(transformed):
    _, output = transformed
    assert sorted(output.vocabulary_by_name(F.USER_VOCAB)) == [b"u1", b"u2"]
    assert sorted(output.vocabulary_by_name(F.ITEM_VOCAB)) == [b"i1", b"i2", b"i3"]
    # Drama appears 3 times, War 2: vocabularies are frequency-ordered.
    assert output.vocabulary_by_name(F.GENRE_VOCAB) == [b"Drama", b"War"]


def test_features(transformed):
    data, output = transformed
    users = output.vocabulary_by_name(F.USER_VOCAB)
    items = output.vocabulary_by_name(F.ITEM_VOCAB)
    assert [int(r[F.USER_IDX]) for r in data] == [
        users.index(b"u1"),
        users.index(b"u1"),
        users.index(b"u2"),
        len(users),
    ]
    assert [int(r[F.ITEM_IDX]) for r in data] == [
        items.index(i) for i in (b"i1", b"i2", b"i1", b"i3")
    ]
    # Genre ids are vocabulary index + 1, padded with 0 to MAX_GENRES.
    assert list(data[0][F.GENRE_IDS]) == [1, 2] + [0] * (F.MAX_GENRES - 2)
    assert list(data[3][F.GENRE_IDS]) == [0] * F.MAX_GENRES
    assert [float(r[F.RATING]) for r in data] == [4.0, 0.0, 2.5, 0.0]
    assert [float(r[F.RATING_MASK]) for r in data] == [1.0, 0.0, 1.0, 0.0]
    assert [r[F.EVENT_TYPE] for r in data] == [b"watch", b"tag", b"watch", b""]
    assert [r[F.TITLE] for r in data] == [
        b"One Night (1995)",
        b"Two Nights (2001)",
        b"One Night (1995)",
        b"Three: Night, Day",
    ]


def test_title_tokens_and_year_buckets(transformed):
    data, output = transformed
    # "night" occurs 3 times, "one" twice; the others once (< TITLE_MIN_COUNT: OOV).
    vocab = output.vocabulary_by_name(F.TITLE_VOCAB)
    assert vocab == [b"night", b"one"]
    oov = len(vocab) + 1
    night, one = vocab.index(b"night") + 1, vocab.index(b"one") + 1
    pad = [0] * (F.MAX_TITLE_TOKENS - 2)
    assert list(data[0][F.TITLE_TOKENS]) == [one, night, *pad]
    assert list(data[1][F.TITLE_TOKENS]) == [oov, oov, *pad]
    assert list(data[3][F.TITLE_TOKENS]) == [oov, night, oov, *pad[:-1]]
    years = [int(r[F.YEAR_BUCKET][0]) for r in data]
    assert years[0] == years[2] and years[1] > years[0] > 0  # 1995 < 2001
    assert years[3] == 0  # no year in the title


def test_without_the_title_year_the_year_is_a_word_and_no_bucket(transformed_without_year):
    data, output = transformed_without_year
    # Off by default: "(1995)" is an ordinary word (twice: in the vocabulary), no bucket.
    assert output.vocabulary_by_name(F.TITLE_VOCAB) == [b"night", b"one", b"1995"]
    assert F.YEAR_BUCKET not in data[0]


def test_serving_layer_maps_unknown_user_to_oov(transformed):
    _, output = transformed
    layer = output.transform_features_layer()
    out = layer({F.USER_ID: tf.sparse.from_dense(tf.constant([[b"u2"], [b"nobody"]]))})
    users = output.vocabulary_by_name(F.USER_VOCAB)
    assert out[F.USER_IDX].numpy().tolist() == [users.index(b"u2"), len(users)]
