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


def write_transformed(rows: list[dict], output: tft.TFTransformOutput, path: str) -> str:
    """Writes transformed rows (`run_transform`'s) as the gzipped TFRecords Transform writes."""
    spec = output.transformed_feature_spec()
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for row in rows:
            feature = {}
            for name, value in row.items():
                values = np.atleast_1d(value).tolist()
                if spec[name].dtype == tf.string:
                    feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
                elif spec[name].dtype == tf.int64:
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
                else:
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
            writer.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )
    return path


def event_row(
    user: str, item: str, event_type: str = "watch", rating=None, timestamp: int = 1
) -> dict:
    """A raw event row (feature -> values) as ExampleGen writes it."""
    return {
        F.USER_ID: [user.encode()],
        F.ITEM_ID: [item.encode()],
        F.EVENT_TYPE: [event_type.encode()],
        F.RATING: [] if rating is None else [rating],
        F.TIMESTAMP: [timestamp],
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
    """rating = w * <u, i> + b with trainable scalars w (1) and b (0)."""

    def __init__(self, w=1.0, b=0.0):
        super().__init__()
        self.w = tf.Variable(float(w))
        self.b = tf.Variable(float(b))

    def call(self, inputs):
        user, item = inputs
        return self.w * tf.reduce_sum(user * item, axis=1, keepdims=True) + self.b


class HandBuiltModel(tf.Module):
    """What a served model takes from a trained recommender: a user tower and a rating tower."""

    def __init__(self, user_table, rating_scale=1.0, rating_offset=0.0):
        super().__init__()
        self.user_tower = TableTower(F.USER_IDX, user_table)
        self.rating_tower = DotRating(rating_scale, rating_offset)


# A small served world with hand-worked answers (tests of the served module and the Evaluator).
ITEMS = [b"i1", b"i2", b"i3", b"i4"]
# Item embeddings (d = 2) and the OOV item row last.
ITEM_EMB = np.array([[1.0, 0.0], [0.8, 0.0], [0.5, 0.5], [0.0, 1.0], [0.0, 0.0]], np.float32)
# Queries: u1 ranks i1 i2 i3 i4 (1, .8, .5, 0); u2 ranks i4 i3 (1, .5) then i1 i2 (0);
# u3 ranks i4 i3 i1 i2 (1, .6, .2, .16).
QUERIES = {"u1": [1.0, 0.0], "u2": [0.0, 1.0], "u3": [0.2, 1.0]}
# Known pairs (user, item row, training?): u1 trained on i1 and has i3 in eval;
# u2 and u3 trained on i4. Popularity (training events): i4 2/3, i1 1/3, i2 0, i3 0.
KNOWN = [("u1", 0, True), ("u1", 2, False), ("u2", 3, True), ("u3", 3, True)]
POPULARITY = np.array([1 / 3, 0.0, 0.0, 2 / 3])
# Bias baseline: mean 3, user u1 +0.5, item i1 +0.25 (others 0).
BIAS_MEAN, U1_BIAS, I1_BIAS = 3.0, 0.5, 0.25


def small_world_module(
    output,
    kind="brute_force",
    seen=True,
    rating_range=None,
    events=None,
    scale=1.0,
    offset=0.0,
    outside=None,
):
    """A ServingModule over the small world, for a Transform output of users u1, u2, u3.

    Ratings are `scale * (<u, i> + offset)`; the bias baseline is scaled alike.
    `outside` ({raw id: catalogue rows}) adds evaluation events of users outside
    the vocabulary to the known items.
    """
    from models.baselines import BiasModel
    from models.serving_module import ServingModule
    from models.serving_state import Catalogue, TrainingFacts

    vocab = [u.decode() for u in output.vocabulary_by_name(F.USER_VOCAB)]
    table = np.zeros([len(vocab) + 1, 2], np.float32)
    for user, query in QUERIES.items():
        table[vocab.index(user)] = query
    known = None
    if seen:
        from models.index import SeenItems

        outside = outside or {}
        extra = [(len(vocab) + 1 + j, r) for j, u in enumerate(outside) for r in outside[u]]
        users = np.array([vocab.index(u) for u, _, _ in KNOWN] + [u for u, _ in extra])
        rows = np.array([r for _, r, _ in KNOWN] + [r for _, r in extra])
        in_train = np.array([t for _, _, t in KNOWN] + [False] * len(extra))
        known = SeenItems(
            users,
            rows,
            in_train,
            num_users=len(vocab) + 1,
            num_rows=4,
            outside_users=np.array([u.encode() for u in outside], object),
        )
    activity = np.zeros(len(vocab) + 1, np.int64)
    for user, _, train in KNOWN:
        activity[vocab.index(user)] += train
    user_bias = np.zeros(len(vocab) + 1, np.float32)
    user_bias[vocab.index("u1")] = U1_BIAS * scale
    item_bias = np.array([I1_BIAS * scale, 0, 0, 0, 0], np.float32)
    bias = BiasModel(BIAS_MEAN * scale, user_bias, item_bias)
    return ServingModule(
        HandBuiltModel(table, scale, offset * scale),
        output,
        Catalogue(
            tf.constant(ITEMS), tf.constant([b"T" + i for i in ITEMS]), tf.constant(ITEM_EMB)
        ),
        TrainingFacts(POPULARITY, activity, bias, rating_range),
        events=events,
        index_kind=kind,
        top_k=2,
        seen=known,
    )
