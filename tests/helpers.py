"""Shared test helpers: a real Transform output, and hand-built towers for a served model."""

import os
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_data_validation as tfdv
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from models import features as F
from models.entrypoints import preprocessing_fn

SCHEMA_PATH = "schema/schema.pbtxt"


def raw_rows(rows: list[dict]) -> list[dict]:
    """Raw instance dicts (numpy values) for `rows` of feature -> list of values."""
    spec = schema_utils.schema_as_feature_spec(tfdv.load_schema_text(SCHEMA_PATH)).feature_spec
    out = []
    for row in rows:
        parsed = {}
        for name, feature in spec.items():
            values = row.get(name, [])
            dtype = {tf.string: object, tf.float32: np.float32, tf.int64: np.int64}[feature.dtype]
            parsed[name] = np.array(values, dtype=dtype)
        out.append(parsed)
    return out


def run_transform(rows: list[dict]) -> tuple[list[dict], tft.TFTransformOutput]:
    """`preprocessing_fn` through real tft_beam on raw rows; (transformed rows, output)."""
    metadata = dataset_metadata.DatasetMetadata(tfdv.load_schema_text(SCHEMA_PATH))
    with (
        tempfile.TemporaryDirectory() as tmp,
        tft_beam.Context(temp_dir=tmp, force_tf_compat_v1=False),
    ):
        (data, _), transform_fn = (raw_rows(rows), metadata) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing_fn, output_record_batches=False
        )
        out_dir = tempfile.mkdtemp()
        _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
    raw_dir = os.path.join(out_dir, tft.TFTransformOutput.RAW_METADATA_DIR)
    metadata_io.write_metadata(metadata, raw_dir)  # as TFX's Transform does
    return data, tft.TFTransformOutput(out_dir)


def event_row(user: str, item: str, event_type: str = "watch", rating=None) -> dict:
    """A raw event row (feature -> values) as ExampleGen writes it."""
    return {
        F.USER_ID: [user.encode()],
        F.ITEM_ID: [item.encode()],
        F.EVENT_TYPE: [event_type.encode()],
        F.RATING: [] if rating is None else [rating],
        F.TIMESTAMP: [1],
        F.TITLE: [b"Title (2000)"],
        F.GENRES: [b"Drama"],
    }


def users_transform(users: list[str]) -> tft.TFTransformOutput:
    """A Transform output whose user vocabulary holds exactly `users`."""
    return run_transform([event_row(u, "i0", rating=3.0) for u in users])[1]


def example(user: str, item: str, event_type: str = "watch", rating=None) -> bytes:
    """A serialized raw event tf.Example."""
    feature = {
        F.USER_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[user.encode()])),
        F.ITEM_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[item.encode()])),
        F.EVENT_TYPE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[event_type.encode()])),
        F.TITLE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"t"])),
    }
    if rating is not None:
        feature[F.RATING] = tf.train.Feature(float_list=tf.train.FloatList(value=[rating]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


class TableTower(tf.keras.layers.Layer):
    """Looks up a fixed (trainable) embedding table by a feature index."""

    def __init__(self, key, table):
        super().__init__()
        self.key = key
        self.table = tf.Variable(np.asarray(table, np.float32))

    def call(self, features):
        return tf.gather(self.table, features[self.key])


class DotRating(tf.keras.layers.Layer):
    """rating = w * <u, i> + b with trainable scalars w = 1, b = 0."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(1.0)
        self.b = tf.Variable(0.0)

    def call(self, inputs):
        user, item = inputs
        return self.w * tf.reduce_sum(user * item, axis=1, keepdims=True) + self.b


class HandBuiltModel(tf.Module):
    """What a served model takes from a trained recommender: a user tower and a rating tower."""

    def __init__(self, user_table):
        super().__init__()
        self.user_tower = TableTower(F.USER_IDX, user_table)
        self.rating_tower = DotRating()
