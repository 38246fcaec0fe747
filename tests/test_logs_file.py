"""Logs described in a file: the shipped presets, every format read alike, and the mistakes."""

import datetime
import gzip
import json
import os

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
import yaml
from tensorflow_transform.tf_metadata import schema_utils
from tfx.orchestration import metadata
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.multilog_example_gen import executor
from components.multilog_example_gen.read import bigquery_query
from components.multilog_example_gen.spec import IngestSpec
from models.config import TaskEvents
from pipeline import logs_check, logs_file
from pipeline.bootstrap import bootstrap_schema
from pipeline.presets import CONFIG_DIR, PRESETS

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.join(HERE, os.pardir, "schema", "schema.pbtxt")
RATINGS = [  # user, item, unix seconds, rating
    ("u1", "10", 1_600_000_000, 4.0),
    ("u2", "10", 1_600_000_100, 3.5),
    ("u2", "20", 1_600_000_200, 5.0),
    ("u3", "30", 1_600_000_300, 2.0),
]
ITEMS = [
    ("10", "Heat (1995)", ["Action", "Crime"]),
    ("20", "Up (2009)", []),
    ("30", "Ran", ["Drama"]),
]
GENRES = ["Action", "Crime", "Drama"]


def base_config(**log_overrides):
    log = {
        "name": "ratings",
        "file": "ratings.csv",
        "event_type": "watch",
        "columns": {"user": "userId", "item": "movieId", "timestamp": "ts", "rating": "stars"},
        "rating": True,
        **log_overrides,
    }
    return {
        "name": "fixture",
        "schema": SCHEMA,
        "logs": [log],
        "catalog": {
            "file": "movies.csv",
            "columns": {"item": "movieId", "title": "title"},
            "categorical": [{"column": "genres", "separator": "|"}],
        },
    }


def write_config(tmp_path, config, name="logs.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_the_shipped_presets_are_logs_files():
    assert sorted(os.listdir(CONFIG_DIR)) == sorted(f"{n}.yaml" for n in PRESETS)
    movielens = PRESETS["movielens"]
    assert movielens.model.events == TaskEvents(
        retrieval=(("watch", 1.0), ("tag", 1.0)), rating=("watch",), retrieval_eval=("watch",)
    )
    assert movielens.features.title_year and movielens.schema_file == "schema.pbtxt"
    assert PRESETS["synthetic"].gate.max_rmse == 1.5
    spans = PRESETS["synthetic_spans"]  # extends synthetic.yaml
    assert spans.ingest.spans.window == 14 and spans.gate.max_rmse is None
    assert spans.model.events == PRESETS["synthetic"].model.events


@pytest.mark.parametrize(
    "change, key, message",
    [
        (lambda c: c.update(colour="red"), "<top>", r"unknown key\(s\) \['colour'\]"),
        (
            lambda c: c["logs"][0]["columns"].pop("user"),
            "logs[0].columns",
            r"missing key\(s\) \['user'\]",
        ),
        (lambda c: c["logs"][0].update(format="xlsx"), "logs[0]", "format must be one of"),
        (
            lambda c: c["logs"].append(dict(c["logs"][0])),
            "logs",
            r"\['ratings'\] appear more than once",
        ),
        (lambda c: c["logs"][0]["columns"].pop("rating"), "logs[0].rating", "no rating column"),
        (lambda c: c["logs"][0].update(timestamp_unit="days"), "logs[0]", "timestamp_unit must be"),
        (
            lambda c: c.update(split={"eval_percent": "twenty"}),
            "split.eval_percent",
            "expected int",
        ),
        (lambda c: c["logs"][0].update(csv={"delimiter": ";;"}), "logs[0].csv", "one character"),
        (
            lambda c: c["logs"][0].update(evaluate=["click"]),
            "logs[0].evaluate",
            r"\['click'\] are not",
        ),
        (lambda c: c.update(schema="nowhere.pbtxt"), "schema", "no schema file"),
        (lambda c: c["logs"][0].update(optional="false"), "logs[0].optional", "expected bool"),
        (
            lambda c: c.update(model={"exclude_seen": "false"}),
            "model.exclude_seen",
            r"expected bool, got 'false' \(str\)",
        ),
        (
            lambda c: c.update(gate={"require_baseline": "no"}),
            "gate.require_baseline",
            "expected bool",
        ),
        (lambda c: c.update(gate={"rmse_margin": "0.01"}), "gate.rmse_margin", "expected float"),
        (
            lambda c: c.update(model={"dcn": {"num_cross_layers": "2"}}),
            "model.dcn.num_cross_layers",
            "expected int",
        ),
        (lambda c: c.update(model={"dcn": {"crosses": 2}}), "model.dcn", r"\['crosses'\]"),
        (lambda c: c.update(split={"by": "random"}), "split.by", "expected one of"),
        (
            lambda c: c["catalog"]["categorical"].append({"column": "a", "flags": ["b"]}),
            "catalog.categorical[1]",
            "list column or flag",
        ),
    ],
)
def test_mistakes_name_the_file_and_the_key(tmp_path, change, key, message):
    config = base_config()
    change(config)
    path = write_config(tmp_path, config)
    with pytest.raises(logs_file.LogsFileError, match=message) as info:
        logs_file.load(path)
    assert str(info.value).startswith(f"{path}: {key}: ")


def test_an_extends_cycle_is_named(tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"extends": "b.yaml"}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"extends": "a.yaml"}))
    with pytest.raises(
        logs_file.LogsFileError,
        match=r"extends: a cycle of logs files: .*a\.yaml -> .*b\.yaml -> .*a\.yaml",
    ):
        logs_file.load(str(tmp_path / "a.yaml"))


@pytest.mark.parametrize(
    "name, text",
    [
        ("twice.yaml", "name: a\nmodel: {}\nname: b\n"),
        ("twice.json", '{"name": "a", "name": "b"}'),
    ],
)
def test_a_key_written_twice_is_refused(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    with pytest.raises(logs_file.LogsFileError, match=r"does not parse: .*'name'.* twice"):
        logs_file.load(str(tmp_path / name))


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-04T10:15:30Z",
        "2026-12-04T10:15:30.12Z",
        "2026-12-04T10:15:30.123456789Z",
        "2026-12-04T10:15:30+0000",
        "2026-12-04T11:15:30+01:00",
        "2026-12-04T05:15:30-05",
        "20261204T101530Z",
        "2026-12-04 10:15:30",
    ],
)
def test_iso_8601_times_parse_in_every_standard_form(text):
    from components.multilog_example_gen.events import parse_timestamp

    moment = datetime.datetime(2026, 12, 4, 10, 15, 30, tzinfo=datetime.timezone.utc)
    assert parse_timestamp(text, "iso8601") == int(moment.timestamp())


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "2026-12-04T25:00", "12/04/2026"])
def test_a_time_that_is_not_iso_8601_is_refused(text):
    from components.multilog_example_gen.events import parse_timestamp

    with pytest.raises(ValueError):
        parse_timestamp(text, "iso8601")


def test_mistakes_against_the_data_name_the_key_and_the_data_file(tmp_path):
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n10,Heat,Action\n")
    (tmp_path / "ratings.csv").write_text("userId,movieId,ts,score\nu1,10,1,4\n")
    path = write_config(tmp_path, base_config())
    with pytest.raises(
        logs_file.LogsFileError,
        match=r"logs\[0\].columns: column\(s\) \['stars'\] are not in .*ratings.csv'",
    ):
        logs_check.check_data(path, str(tmp_path))
    path = write_config(tmp_path, base_config(file="missing/*.csv"))
    with pytest.raises(logs_file.LogsFileError, match=r"logs\[0\].file: no file matches"):
        logs_check.check_data(path, str(tmp_path))
    optional = write_config(
        tmp_path,
        {
            **base_config(),
            "logs": [
                base_config()["logs"][0],
                {
                    **base_config(file="tags/*.csv", name="tags", rating=False)["logs"][0],
                    "optional": True,
                },
            ],
        },
    )
    (tmp_path / "ratings.csv").write_text("userId,movieId,ts,stars\nu1,10,1,4\n")
    logs_check.check_data(optional, str(tmp_path))  # an optional log may be absent


def write_formats(root):
    """The same ratings and catalogue in four encodings; returns a logs config for each."""
    configs = {}
    # 1. Plain CSV, Unix seconds, genres as a |-list.
    plain = root / "plain"
    plain.mkdir()
    (plain / "ratings.csv").write_text(
        "userId,movieId,ts,stars\n" + "".join(f"{u},{i},{t},{r}\n" for u, i, t, r in RATINGS)
    )
    (plain / "movies.csv").write_text(
        "movieId,title,genres\n" + "".join(f'{i},"{t}",{"|".join(g)}\n' for i, t, g in ITEMS)
    )
    configs["plain"] = base_config()
    # 2. An export dialect: ';' without a header, latin-1, gzip, ISO-8601 times, genre flags.
    dialect = root / "dialect"
    dialect.mkdir()
    lines = "".join(
        f"{u};{i};{datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat()};{r}\n"
        for u, i, t, r in RATINGS
    )
    (dialect / "ratings.csv.gz").write_bytes(gzip.compress(lines.encode("latin-1")))
    flags = "".join(
        f"{i};{t};" + ";".join(str(int(g in genres)) for g in GENRES) + "\n"
        for i, t, genres in ITEMS
    )
    (dialect / "movies.csv").write_bytes(
        ("id;name;" + ";".join(GENRES) + "\n" + flags).encode("latin-1")
    )
    config = base_config(
        file="ratings.csv.gz",
        csv={
            "delimiter": ";",
            "header": False,
            "columns": ["userId", "movieId", "ts", "stars"],
            "encoding": "latin-1",
        },
        timestamp_unit="iso8601",
    )
    config["catalog"] = {
        "file": "movies.csv",
        "csv": {"delimiter": ";", "encoding": "latin-1"},
        "columns": {"item": "id", "title": "name"},
        "categorical": [{"flags": GENRES}],
    }
    configs["dialect"] = config
    # 3. Parquet, milliseconds.
    parquet = root / "parquet"
    parquet.mkdir()
    pq.write_table(
        pa.table(
            {
                "userId": [u for u, *_ in RATINGS],
                "movieId": [int(i) for _, i, *_ in RATINGS],
                "ts": [t * 1000 for *_, t, _ in RATINGS],
                "stars": [r for *_, r in RATINGS],
            }
        ),
        parquet / "ratings.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "movieId": [i for i, *_ in ITEMS],
                "title": [t for _, t, _ in ITEMS],
                "genres": ["|".join(g) for *_, g in ITEMS],
            }
        ),
        parquet / "movies.parquet",
    )
    config = base_config(file="ratings.parquet", format="parquet", timestamp_unit="milliseconds")
    config["catalog"].update(file="movies.parquet", format="parquet")
    configs["parquet"] = config
    # 4. TFRecord of tf.Example, genres as a list feature.
    records = root / "tfrecord"
    records.mkdir()

    def example(**features):
        out = {}
        for key, value in features.items():
            values = value if isinstance(value, list) else [value]
            if values and isinstance(values[0], str):
                out[key] = tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[v.encode() for v in values])
                )
            elif values and isinstance(values[0], float):
                out[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
            else:
                out[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        return tf.train.Example(features=tf.train.Features(feature=out)).SerializeToString()

    with tf.io.TFRecordWriter(str(records / "ratings.gz"), options="GZIP") as w:
        for u, i, t, r in RATINGS:
            w.write(example(userId=u, movieId=i, ts=t, stars=r))
    with tf.io.TFRecordWriter(str(records / "movies.tfrecord")) as w:
        for i, t, g in ITEMS:
            w.write(example(movieId=i, title=t, genres=g))
    config = base_config(file="ratings.gz", format="tfrecord")
    config["catalog"].update(file="movies.tfrecord", format="tfrecord")
    configs["tfrecord"] = config
    return configs


def ingest(root, config_path):
    spec = IngestSpec.from_json_dict(logs_file.load(config_path)["ingest"])
    properties = {
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(
            example_gen_pb2.Input(splits=executor.input_splits(spec))
        ),
        standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps(
            {executor.INGEST_SPEC_KEY: spec.to_json_dict()}
        ),
        standard_component_specs.INPUT_BASE_KEY: str(root),
    }
    out = {}
    with beam.Pipeline() as p:
        for name, records in executor.Executor().GenerateExamplesByBeam(p, properties).items():
            path = os.path.join(root, f"out-{name}")
            records | f"Write{name}" >> beam.io.WriteToTFRecord(path, shard_name_template="")
            out[name] = path
    return {
        name: sorted(r.numpy() for r in tf.data.TFRecordDataset(path)) for name, path in out.items()
    }


def test_every_format_gives_the_same_examples(tmp_path):
    configs = write_formats(tmp_path)
    results = {}
    for name, config in configs.items():
        path = write_config(tmp_path, config, f"{name}.yaml")
        logs_check.check_data(path, str(tmp_path / name))
        results[name] = ingest(tmp_path / name, path)
    assert sum(len(results["plain"][s]) for s in ("train", "eval")) == len(RATINGS)
    assert len(results["plain"]["catalog"]) == len(ITEMS)
    for name in ("dialect", "parquet", "tfrecord"):
        assert results[name] == results["plain"], name
    heat = [tf.train.Example.FromString(r) for r in results["plain"]["catalog"]]
    genres = {
        e.features.feature["item_id"].bytes_list.value[0]: list(
            e.features.feature["genres"].bytes_list.value
        )
        for e in heat
    }
    assert genres == {b"10": [b"Action", b"Crime"], b"20": [], b"30": [b"Drama"]}


def test_bigquery_reads_the_needed_columns_once():
    assert bigquery_query("proj.ds.ratings", ["userId", "movieId", "ts"]) == (
        "SELECT DISTINCT `userId`, `movieId`, `ts` FROM `proj.ds.ratings`"
    )
    assert bigquery_query("SELECT * FROM ds.t WHERE d > 1;", ["u", "u"]) == (
        "SELECT DISTINCT `u` FROM (SELECT * FROM ds.t WHERE d > 1)"
    )
    with pytest.raises(ValueError, match="needs a source and columns"):
        bigquery_query(" ", ["u"])
    # Beam's BigQuery read of that query builds here; it queries only when run on the cloud.
    read = beam.io.ReadFromBigQuery(query=bigquery_query("p.d.t", ["u"]), use_standard_sql=True)
    assert isinstance(read, beam.PTransform)
    config = base_config(format="bigquery", file="proj.ds.ratings")
    spec = IngestSpec.from_json_dict(logs_file.load_dict(config, "<test>")["ingest"])
    assert (spec.logs[0].format, spec.logs[0].file) == ("bigquery", "proj.ds.ratings")
    config["spans"] = {"window": 2}
    config["logs"][0]["file"] = "proj.ds.ratings_{YYYY}{MM}{DD}"
    with pytest.raises(logs_file.LogsFileError, match="BigQuery, which is a snapshot"):
        logs_file.load_dict(config, "<test>")


def test_schema_bootstrap_infers_the_domains_of_other_logs(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [
        (f"u{u}", str(10 + (u + k) % 4), 1_600_000_000 + u * 10 + k, 1 + (u + k) % 5)
        for u in range(30)
        for k in range(3)
    ]
    (data / "ratings.csv").write_text(
        "userId,movieId,ts,stars\n" + "".join(f"{u},{i},{t},{r}\n" for u, i, t, r in rows)
    )
    (data / "movies.csv").write_text(
        "movieId,title,genres\n10,Sholay,Bollywood|Action\n11,Akira,Anime\n12,Lagaan,Bollywood\n13,Ran,Drama\n"
    )
    config = base_config()
    config["schema"] = str(tmp_path / "schema" / "mine.pbtxt")  # not curated yet
    path = write_config(tmp_path, config)
    with pytest.raises(logs_file.LogsFileError, match="bootstrap it"):
        logs_file.load(path)
    report = bootstrap_schema(path, str(data), str(tmp_path / "out"))
    assert report.schema == str(tmp_path / "schema" / "mine.inferred.pbtxt")
    schema = tfdv.load_schema_text(report.schema)
    domain = tfdv.get_domain(schema, "genres")
    assert set(domain.value) == {"Action", "Anime", "Bollywood", "Drama"}  # not MovieLens' domain
    assert {f.name for f in schema.feature} >= {
        "user_id",
        "item_id",
        "event_type",
        "rating",
        "genres",
    }
    text = open(report.report).read()
    assert "| genres | BYTES | train, eval, catalog |" in text
    assert "4 values: Action, Anime, Bollywood, Drama" in text and "a closed set?" in text
    assert "| user_id | BYTES | train, eval |" in text
    assert "absent from ['catalog']: presence dropped" in text
    assert not tfdv.get_feature(schema, "user_id").HasField("domain")  # ids grow
    spec = schema_utils.schema_as_feature_spec(schema).feature_spec
    assert set(spec) == {
        "user_id",
        "item_id",
        "event_type",
        "rating",
        "timestamp",
        "title",
        "genres",
    }
    assert tfdv.get_feature(schema, "rating").float_domain.max == 5.0
    # As written, the inferred schema fits every split of these logs: no anomaly.
    connection = metadata.sqlite_metadata_connection_config(
        str(tmp_path / "out" / "schema_bootstrap" / "metadata.sqlite")
    )
    with metadata.Metadata(connection) as m:
        [stats] = m.store.get_artifacts_by_type("ExampleStatistics")
    for split in ("train", "eval", "catalog"):
        stats_dir = os.path.join(stats.uri, f"Split-{split}")
        found = tfdv.load_stats_binary(os.path.join(stats_dir, "FeatureStats.pb"))
        anomalies = tfdv.validate_statistics(found, schema)
        assert not anomalies.anomaly_info, (split, anomalies)
    assert "save it as `mine.pbtxt`" in text


def _numeric_ids(root, users, items):
    root.mkdir()
    pq.write_table(
        pa.table(
            {
                "userId": users,
                "movieId": items,
                "ts": [t for *_, t, _ in RATINGS],
                "stars": [r for *_, r in RATINGS],
            }
        ),
        root / "ratings.parquet",
    )
    pq.write_table(
        pa.table({"movieId": [10, 20, 30], "title": ["A", "B", "C"], "genres": ["", "", ""]}),
        root / "movies.parquet",
    )
    config = base_config(file="ratings.parquet", format="parquet")
    config["catalog"].update(file="movies.parquet", format="parquet")
    return config


def test_numeric_ids_are_one_identity_whatever_the_column_type(tmp_path):
    """Float, integer and text columns of the same ids give the same users and items."""
    results = []
    for name, users, items in (
        ("floats", [1.0, 2.0, 2.0, 3.0], [10.0, 10.0, 20.0, 30.0]),
        ("ints", [1, 2, 2, 3], [10, 10, 20, 30]),
        ("text", ["1", "2", "2", "3"], ["10", "10", "20", "30"]),
    ):
        config = _numeric_ids(tmp_path / name, users, items)
        results.append(ingest(tmp_path / name, write_config(tmp_path, config, f"{name}.yaml")))
    assert results[0] == results[1] == results[2]
    users = {
        tf.train.Example.FromString(r).features.feature["user_id"].bytes_list.value[0]
        for split in ("train", "eval")
        for r in results[0][split]
    }
    assert users == {b"1", b"2", b"3"}


@pytest.mark.parametrize(
    "users, message",
    [
        ([[1], [2], [2], [3]], r"id column 'userId': a list"),
        ([["1", "x"], ["2"], ["2"], ["3"]], r"id column 'userId': a list"),
    ],
)
def test_ids_that_cannot_be_ids_are_refused_by_column(tmp_path, users, message):
    config = _numeric_ids(tmp_path / "bad", users, [10, 10, 20, 30])
    with pytest.raises(Exception, match=message):
        ingest(tmp_path / "bad", write_config(tmp_path, config))


@pytest.mark.parametrize("tags", [None, "userId,movieId,tag,timestamp\n"])
def test_the_movielens_preset_runs_on_a_release_without_tags(tmp_path, tags):
    data = os.path.join(os.path.dirname(__file__), os.pardir, "data", "movielens")
    with open(os.path.join(data, "ratings.csv")) as f:
        ratings = f.readlines()[:201]
    (tmp_path / "ratings.csv").write_text("".join(ratings))
    with open(os.path.join(data, "movies.csv")) as f:
        (tmp_path / "movies.csv").write_text(f.read())
    if tags is not None:
        (tmp_path / "tags.csv").write_text(tags)  # a header and no rows
    preset = os.path.join(CONFIG_DIR, "movielens.yaml")
    logs_check.check_data(preset, str(tmp_path))
    examples = ingest(tmp_path, preset)
    assert len(examples["train"]) + len(examples["eval"]) == 200
