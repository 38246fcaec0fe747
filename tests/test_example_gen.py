"""The multi-log ExampleGen: CSV reading, events, ids, splits, and the Beam executor."""

import gzip
import json
import os

import apache_beam as beam
import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.multilog_example_gen import csv_source, events, executor, read
from components.multilog_example_gen.spec import CatalogSpec, IngestSpec, LogSpec
from contracts.names import CATALOG as CATALOG_SPLIT
from contracts.names import EVAL, TRAIN
from models import features as F
from pipeline.presets import MOVIELENS_INGEST as MOVIELENS

CATALOG = CatalogSpec(file="movies.csv")
RATINGS = MOVIELENS.logs[0]
HEADER = ["userId", "movieId", "rating", "timestamp"]


def rows_of(path, header=HEADER):
    return list(csv_source.read_rows(str(path), header))


def test_quoted_fields_may_hold_commas_and_newlines(tmp_path):
    path = tmp_path / "movies.csv"
    path.write_text('movieId,title,genres\n11,"President, The\n(1995)",Comedy\n12,Heat,Crime\n')
    header = csv_source.read_header(str(path))
    rows = rows_of(path, header)
    assert rows == [
        (2, {"movieId": "11", "title": "President, The\n(1995)", "genres": "Comedy"}),
        (4, {"movieId": "12", "title": "Heat", "genres": "Crime"}),
    ]


def test_malformed_row_names_file_and_line(tmp_path):
    path = tmp_path / "movies.csv"
    path.write_text("movieId,title,genres\n11,Heat,Crime\n\n12,Too,Many,Fields\n")
    with pytest.raises(ValueError, match=r"malformed row in .*movies.csv' line 4: expected 3"):
        rows_of(path, ["movieId", "title", "genres"])


def test_bom_and_gzip_content_are_read(tmp_path):
    body = "userId,movieId,rating,timestamp\n7,1,4.5,100\n"
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + body.encode())
    zipped = tmp_path / "ratings.csv"  # gzip content behind a .csv name
    zipped.write_bytes(gzip.compress(body.encode()))
    for path in (bom, zipped):
        assert csv_source.read_header(str(path)) == HEADER
        assert rows_of(path) == [
            (2, {"userId": "7", "movieId": "1", "rating": "4.5", "timestamp": "100"})
        ]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"userId,movieId,rating,timestamp\n7,1,4.5,100\n7,\xff\xfe,4,1\n", "not valid UTF-8"),
        (b"userId,movieId,rating,timestamp\n7,1,4.5,100\n7,1\x00,4,1\n", "line 3"),
        (b"userId,movieId,rating,timestamp\n", "has a header but no rows"),
        (b"userId,movieId,rating,timestamp\n\n\n", "has a header but no rows"),
    ],
)
def test_unreadable_content_names_the_file(tmp_path, content, message):
    path = tmp_path / "ratings.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        rows_of(path)
    assert "ratings.csv" in str(info.value)


def test_an_undecodable_byte_is_named_by_its_line(tmp_path):
    rows = b"".join(b"7,%d,4.0,100\n" % i for i in range(28))
    path = tmp_path / "ratings.csv"
    path.write_bytes(b"userId,movieId,rating,timestamp\n" + rows + b"7,Caf\xe9,4,1\n")
    with pytest.raises(ValueError, match="not valid UTF-8 on line 30 "):
        rows_of(path)


def test_a_log_without_a_header_is_told_so(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("1,1,4.0,964982703\n1,3,4.0,964981247\n")
    with pytest.raises(ValueError, match=r"has no header: its first line is data"):
        csv_source.read_header(str(path))


def test_header_problems_are_named(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,rating,timestamp\n1,2,3,4,5\n")
    with pytest.raises(ValueError, match=r"repeats column name\(s\) \['rating'\]"):
        csv_source.read_header(str(path))
    path.write_text("userId,movieId,timestamp\n1,2,3\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['rating'\]"):
        csv_source.check_columns(str(path), "log 'ratings'", RATINGS.required_columns)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        csv_source.read_header(str(empty))
    with pytest.raises(ValueError, match="does not exist"):
        csv_source.read_header(str(tmp_path / "nope.csv"))


def test_split_is_stable_seeded_and_near_the_requested_share():
    splits = [events.split_of(str(u), str(i), 42, 20) for u in range(100) for i in range(50)]
    assert splits == [
        events.split_of(str(u), str(i), 42, 20) for u in range(100) for i in range(50)
    ]
    assert 0.18 < sum(splits) / len(splits) < 0.22
    other = [events.split_of(str(u), str(i), 7, 20) for u in range(100) for i in range(50)]
    assert other != splits


def catalog_of(*rows):
    return dict(read._catalog_entry(("movies.csv", i + 2, r), CATALOG) for i, r in enumerate(rows))


def test_event_example_joins_catalogue_and_keeps_optional_rating():
    catalog = catalog_of({"movieId": "1", "title": "Toy Story", "genres": "A|B"})
    row = {"userId": "7", "movieId": "1", "rating": "4.5", "timestamp": "100"}
    ex = events.event_example(row, RATINGS, catalog).features.feature
    assert ex[F.USER_ID].bytes_list.value == [b"7"]
    assert ex[F.TITLE].bytes_list.value == [b"Toy Story"]
    assert ex[F.GENRES].bytes_list.value == [b"A", b"B"]
    assert ex[F.RATING].float_list.value == [4.5]
    assert ex[F.TIMESTAMP].int64_list.value == [100]
    assert ex[F.EVENT_TYPE].bytes_list.value == [b"watch"]
    unrated = events.event_example({**row, "rating": ""}, RATINGS, {}).features.feature
    assert F.RATING not in unrated
    assert unrated[F.TITLE].bytes_list.value == [b""]  # unknown item keeps its event


def test_ids_are_normalised_the_same_in_logs_and_catalogue():
    catalog = catalog_of({"movieId": " 1\t", "title": "Toy Story", "genres": "A"})
    assert list(catalog) == ["1"]
    row = {"userId": " 7 ", "movieId": "1 ", "rating": "4", "timestamp": "100"}
    ex = events.event_example(row, RATINGS, catalog).features.feature
    assert ex[F.USER_ID].bytes_list.value == [b"7"]
    assert ex[F.ITEM_ID].bytes_list.value == [b"1"]
    assert ex[F.TITLE].bytes_list.value == [b"Toy Story"]  # joined after normalisation
    padded = {**row, "movieId": "001"}
    assert events.event_example(padded, RATINGS, catalog).features.feature[
        F.ITEM_ID
    ].bytes_list.value == [b"001"]  # "001" is not "1": ids are opaque strings
    with pytest.raises(ValueError, match="empty user or item id"):
        events.event_example({**row, "userId": "  "}, RATINGS, catalog)
    with pytest.raises(ValueError, match="movies.csv' line 2: empty item id"):
        catalog_of({"movieId": " ", "title": "X", "genres": ""})


@pytest.mark.parametrize("rating", ["great", "NaN", "nan", "inf", "-Infinity"])
def test_event_example_rejects_ratings_that_are_not_finite_numbers(rating):
    row = {"userId": "7", "movieId": "1", "rating": rating, "timestamp": "100"}
    with pytest.raises(ValueError, match=r"log 'ratings' \(ratings.csv line 9\).*rating"):
        events.event_example(row, RATINGS, {}, source="ratings.csv line 9")


def test_no_genres_placeholder_means_no_genres():
    feats = events.catalog_features(
        {"movieId": "9", "title": "X", "genres": "(no genres listed)"}, CATALOG
    )
    assert list(feats[F.GENRES].bytes_list.value) == []


def test_catalogue_duplicates_are_rejected():
    with pytest.raises(ValueError, match="duplicate item ids"):
        read._check_unique([("1", {}), ("2", {}), ("1", {})])


def test_ingest_spec_round_trips_and_validates():
    assert IngestSpec.from_json_dict(MOVIELENS.to_json_dict()) == MOVIELENS
    with pytest.raises(ValueError, match="unique"):
        IngestSpec(logs=(RATINGS, RATINGS), catalog=CATALOG)
    with pytest.raises(ValueError, match="eval_percent"):
        IngestSpec(logs=(RATINGS,), catalog=CATALOG, eval_percent=0)
    with pytest.raises(ValueError, match="max_unknown_item_share"):
        IngestSpec(logs=(RATINGS,), catalog=CATALOG, max_unknown_item_share=1.5)
    with pytest.raises(ValueError, match="reserved"):
        LogSpec(name="x", file="x.csv", event_type="catalog")


def test_event_from_the_future_is_rejected():
    row = {"userId": "7", "movieId": "1", "rating": "4", "timestamp": "2000"}
    at_limit = events.event_example(row, RATINGS, {}, max_timestamp=2000).features.feature
    assert at_limit[F.TIMESTAMP].int64_list.value == [2000]
    with pytest.raises(ValueError, match="timestamp 2000 is in the future"):
        events.event_example(row, RATINGS, {}, max_timestamp=1999)


def test_seconds_in_a_milliseconds_log_are_refused_by_row():
    import dataclasses

    log = dataclasses.replace(RATINGS, timestamp_unit="milliseconds")
    row = {"userId": "7", "movieId": "1", "rating": "4", "timestamp": "1600000000000"}
    feature = events.event_example(row, log, {}).features.feature
    assert feature[F.TIMESTAMP].int64_list.value == [1_600_000_000]
    with pytest.raises(ValueError, match=r"line 9.*'1600000000' milliseconds is before 1973"):
        events.event_example({**row, "timestamp": "1600000000"}, log, {}, source="line 9")


def test_identical_rows_are_kept_once_in_file_order(tmp_path):
    first, second = tmp_path / "log-1.csv", tmp_path / "log-2.csv"
    first.write_text("u,i,t\n1,2,10\n\n 1,2 ,10\n1,2,11\n1,2,10\n")
    second.write_text("u,i,t\n1,2,11\n3,4,12\n")  # a re-delivered row, then a new one
    files = [(str(first), ["u", "i", "t"]), (str(second), ["u", "i", "t"])]
    rows = list(events.unique_rows(files, id_columns=("u", "i")))
    assert [(p[-9:], line, row["t"]) for p, line, row in rows] == [
        ("log-1.csv", 2, "10"),
        ("log-1.csv", 5, "11"),
        ("log-2.csv", 3, "12"),
    ]


def test_a_log_is_every_file_its_pattern_matches(tmp_path):
    (tmp_path / "views").mkdir()
    for day in ("2024-01-02", "2024-01-01"):
        (tmp_path / "views" / f"{day}.csv").write_text("u,i,t\n1,2,3\n")
    assert [p[-14:] for p in read.match_files(str(tmp_path), "views/*.csv", "log 'v'")] == [
        "2024-01-01.csv",
        "2024-01-02.csv",
    ]
    with pytest.raises(ValueError, match=r"log 'v': no file matches '.*clicks/\*.csv'"):
        read.match_files(str(tmp_path), "clicks/*.csv", "log 'v'")


def test_unknown_item_share_is_checked():
    events.check_unknown_items("ratings", (0, 10, []), 0.5)
    events.check_unknown_items("ratings", (5, 10, ["a"]), 0.5)  # at the limit: a warning
    with pytest.raises(ValueError, match=r"log 'ratings': 6 of 10 events \(60.0%\).*\['a', 'b'\]"):
        events.check_unknown_items("ratings", (6, 10, ["b", "a"]), 0.5)


def generate(tmp_path, files, spec):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    input_config = example_gen_pb2.Input(
        splits=[
            example_gen_pb2.Input.Split(name=TRAIN, pattern="*"),
            example_gen_pb2.Input.Split(name=EVAL, pattern="*"),
            example_gen_pb2.Input.Split(name=CATALOG_SPLIT, pattern="movies.csv"),
        ]
    )
    properties = {
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config),
        standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps(
            {executor.INGEST_SPEC_KEY: spec.to_json_dict()}
        ),
        standard_component_specs.INPUT_BASE_KEY: str(tmp_path),
    }
    out = {}
    with beam.Pipeline() as p:
        splits = executor.Executor().GenerateExamplesByBeam(p, properties)
        for name, records in splits.items():
            path = os.path.join(tmp_path, f"out-{name}")
            records | f"Write{name}" >> beam.io.WriteToTFRecord(path, shard_name_template="")
            out[name] = path
    return {
        name: [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
        for name, path in out.items()
    }


SPEC = IngestSpec(logs=(RATINGS,), catalog=CATALOG)
MOVIES = 'movieId,title,genres\n1,"A, the\nfilm (1995)",Drama\n2,B,Comedy\n'


def test_executor_reads_real_exports_end_to_end(tmp_path):
    ratings = "\ufeffuserId,movieId,rating,timestamp\n 7,1,4.5,100\n7 ,1,4.5,100\n8,2,3,200\n"
    splits = generate(tmp_path, {"movies.csv": MOVIES, "ratings.csv": ratings}, SPEC)
    events = splits[TRAIN] + splits[EVAL]
    assert sorted(
        (
            e.features.feature[F.USER_ID].bytes_list.value[0],
            e.features.feature[F.TITLE].bytes_list.value[0],
        )
        for e in events
    ) == [(b"7", b"A, the\nfilm (1995)"), (b"8", b"B")]  # the re-delivered row is kept once
    assert len(splits[CATALOG_SPLIT]) == 2


def test_executor_fails_when_most_events_miss_the_catalogue(tmp_path):
    ratings = "userId,movieId,rating,timestamp\n7,x1,4,100\n7,x2,4,100\n8,1,3,200\n"
    with pytest.raises(Exception, match=r"2 of 3 events \(66.7%\) name items that are not"):
        generate(tmp_path, {"movies.csv": MOVIES, "ratings.csv": ratings}, SPEC)


def test_extra_columns_are_ignored(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp,device\n7,1,4.0,100,phone\n")
    [(_, row)] = rows_of(path, csv_source.read_header(str(path)))
    ex = events.event_example(row, RATINGS, {}).features.feature
    assert set(ex) == {F.USER_ID, F.ITEM_ID, F.TITLE, F.GENRES, F.EVENT_TYPE, F.TIMESTAMP, F.RATING}


def test_the_same_logs_give_the_same_examples_in_the_same_order(tmp_path):
    """Two logs, read by the real executor twice: no random interleaving or reshuffle."""
    ratings = "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{1 + (u * 7 + i) % 2},{1 + i % 5},{100 + i}\n" for u in range(300) for i in range(5)
    )
    tags = "userId,movieId,tag,timestamp\n" + "".join(
        f"{u},{1 + u % 2},t{u},{900 + u}\n" for u in range(300)
    )
    spec = IngestSpec(logs=MOVIELENS.logs, catalog=CATALOG)
    files = {"movies.csv": MOVIES, "ratings.csv": ratings, "tags.csv": tags}
    runs = []
    for attempt in range(2):
        run_dir = tmp_path / str(attempt)
        run_dir.mkdir()
        examples = standard_artifacts.Examples()
        examples.uri = str(run_dir / "out")
        for name, text in files.items():
            (run_dir / name).write_text(text)
        input_config = example_gen_pb2.Input(
            splits=[
                example_gen_pb2.Input.Split(name=TRAIN, pattern="*"),
                example_gen_pb2.Input.Split(name=EVAL, pattern="*"),
                example_gen_pb2.Input.Split(name=CATALOG_SPLIT, pattern="movies.csv"),
            ]
        )
        executor.Executor().Do(
            {},
            {standard_component_specs.EXAMPLES_KEY: [examples]},
            {
                standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config),
                standard_component_specs.OUTPUT_CONFIG_KEY: "{}",
                standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps(
                    {executor.INGEST_SPEC_KEY: spec.to_json_dict()}
                ),
                standard_component_specs.INPUT_BASE_KEY: str(run_dir),
            },
        )
        runs.append(
            {
                split: [
                    r.numpy()
                    for r in tf.data.TFRecordDataset(
                        tf.io.gfile.glob(f"{examples.uri}/Split-{split}/*"), compression_type="GZIP"
                    )
                ]
                for split in (TRAIN, EVAL)
            }
        )
    assert len(runs[0][TRAIN]) + len(runs[0][EVAL]) == 300 * 5 + 300
    assert runs[0] == runs[1]


def _events_of(examples):
    return [
        (
            e.features.feature[F.USER_ID].bytes_list.value[0].decode(),
            e.features.feature[F.ITEM_ID].bytes_list.value[0].decode(),
            e.features.feature[F.TIMESTAMP].int64_list.value[0],
        )
        for e in examples
    ]


def test_snapshot_eval_split_is_each_users_latest_pairs(tmp_path):
    """The default split: every user's eval events come after all their training pairs."""
    movies = "movieId,title,genres\n" + "".join(f"{i},M{i},Drama\n" for i in range(1, 13))
    rows = [(u, 1 + (u + i) % 12, 1000 * u + 10 * i) for u in range(20) for i in range(10)]
    rows += [(u, 1 + u % 12, 1000 * u + 500) for u in range(20)]  # a repeat of the first pair
    ratings = "userId,movieId,rating,timestamp\n" + "".join(f"{u},{m},4,{t}\n" for u, m, t in rows)
    splits = generate(tmp_path, {"movies.csv": movies, "ratings.csv": ratings}, SPEC)
    train, evaluation = _events_of(splits[TRAIN]), _events_of(splits[EVAL])
    assert len(train) + len(evaluation) == len(rows)
    assert {(u, i) for u, i, _ in train}.isdisjoint({(u, i) for u, i, _ in evaluation})
    for user in {u for u, _, _ in train}:
        held = sorted(t for u, _, t in evaluation if u == user)
        first = {}
        for u, i, t in train:
            if u == user:
                first[i] = min(t, first.get(i, t))
        assert len(held) == 2  # 20% of 10 pairs
        assert held[0] > max(first.values())


def test_pair_hash_split_is_still_available(tmp_path):
    ratings = "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{1 + u % 2},4,{u}\n" for u in range(400)
    )
    spec = IngestSpec(logs=(RATINGS,), catalog=CATALOG, split_by="pair_hash")
    splits = generate(tmp_path, {"movies.csv": MOVIES, "ratings.csv": ratings}, spec)
    expected = sum(events.split_of(str(u), str(1 + u % 2), 42, 20) for u in range(400))
    assert len(splits[EVAL]) == expected > 0
    with pytest.raises(ValueError, match="split_by must be one of"):
        IngestSpec(logs=(RATINGS,), catalog=CATALOG, split_by="random")


def test_the_id_rule_gives_one_text_per_id_whatever_its_type():
    import numpy as np

    from contracts.ids import id_text

    assert [id_text(v) for v in (" 1 ", b"1", 1, np.int64(1), 1.0, np.float64(1.0))] == ["1"] * 6
    assert id_text("001") == "001" and id_text(None) == ""
    for bad, message in (([1], "a list"), (1.5, "not whole"), (True, "boolean")):
        with pytest.raises(ValueError, match=message):
            id_text(bad)
