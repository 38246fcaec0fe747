"""Unit tests of the multi-log ExampleGen helpers and specs."""

import pytest

from components.multilog_example_gen import executor
from components.multilog_example_gen.spec import CatalogSpec, IngestSpec, LogSpec
from models import features as F
from pipeline.presets import MOVIELENS_INGEST as MOVIELENS

CATALOG = CatalogSpec(file="movies.csv")
RATINGS = MOVIELENS.logs[0]


def test_parse_row_handles_quoted_commas_and_rejects_bad_rows():
    header = ["movieId", "title", "genres"]
    row = executor.parse_row('11,"American President, The (1995)",Comedy', header, "movies.csv")
    assert row["title"] == "American President, The (1995)"
    with pytest.raises(ValueError, match="malformed row in movies.csv: expected 3"):
        executor.parse_row("11,Too,Many,Fields", header, "movies.csv")


def test_split_is_stable_seeded_and_near_the_requested_share():
    splits = [executor.split_of(str(u), str(i), 42, 20) for u in range(100) for i in range(50)]
    assert splits == [
        executor.split_of(str(u), str(i), 42, 20) for u in range(100) for i in range(50)
    ]
    assert 0.18 < sum(splits) / len(splits) < 0.22
    other = [executor.split_of(str(u), str(i), 7, 20) for u in range(100) for i in range(50)]
    assert other != splits


def test_event_example_joins_catalogue_and_keeps_optional_rating():
    catalog = dict(
        [executor._catalog_entry({"movieId": "1", "title": "Toy Story", "genres": "A|B"}, CATALOG)]
    )
    row = {"userId": "7", "movieId": "1", "rating": "4.5", "timestamp": "100"}
    ex = executor.event_example(row, RATINGS, catalog).features.feature
    assert ex[F.USER_ID].bytes_list.value == [b"7"]
    assert ex[F.GENRES].bytes_list.value == [b"A", b"B"]
    assert ex[F.RATING].float_list.value == [4.5]
    assert ex[F.EVENT_TYPE].bytes_list.value == [b"watch"]
    unrated = executor.event_example({**row, "rating": ""}, RATINGS, {}).features.feature
    assert F.RATING not in unrated
    assert unrated[F.TITLE].bytes_list.value == [b""]  # unknown item keeps its event


def test_event_example_rejects_non_numeric_rating():
    row = {"userId": "7", "movieId": "1", "rating": "great", "timestamp": "100"}
    with pytest.raises(ValueError, match="log 'ratings': non-numeric"):
        executor.event_example(row, RATINGS, {})


def test_no_genres_placeholder_means_no_genres():
    feats = executor.catalog_features(
        {"movieId": "9", "title": "X", "genres": "(no genres listed)"}, CATALOG
    )
    assert list(feats[F.GENRES].bytes_list.value) == []


def test_check_columns_names_missing_columns(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,timestamp\n1,2,3\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['rating'\]"):
        executor.check_columns(str(path), "log 'ratings'", RATINGS.required_columns)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        executor.read_header(str(empty))
    with pytest.raises(ValueError, match="does not exist"):
        executor.read_header(str(tmp_path / "nope.csv"))


def test_catalogue_duplicates_are_rejected():
    with pytest.raises(ValueError, match="duplicate item ids"):
        executor._check_unique([("1", {}), ("2", {}), ("1", {})])


def test_ingest_spec_round_trips_and_validates():
    assert IngestSpec.from_json_dict(MOVIELENS.to_json_dict()) == MOVIELENS
    with pytest.raises(ValueError, match="unique"):
        IngestSpec(logs=(RATINGS, RATINGS), catalog=CATALOG)
    with pytest.raises(ValueError, match="eval_percent"):
        IngestSpec(logs=(RATINGS,), catalog=CATALOG, eval_percent=0)
    with pytest.raises(ValueError, match="reserved"):
        LogSpec(name="x", file="x.csv", event_type="catalog")


def test_event_from_the_future_is_rejected():
    row = {"userId": "7", "movieId": "1", "rating": "4", "timestamp": "2000"}
    at_limit = executor.event_example(row, RATINGS, {}, max_timestamp=2000).features.feature
    assert at_limit[F.TIMESTAMP].int64_list.value == [2000]
    with pytest.raises(ValueError, match="timestamp 2000 is in the future"):
        executor.event_example(row, RATINGS, {}, max_timestamp=1999)


def test_read_csv_drops_blank_and_duplicate_rows_only(tmp_path):
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    path = tmp_path / "log.csv"
    path.write_text("u,i,t\n1,2,10\n\n1,2,10\n1,2,11\n")
    with beam.Pipeline() as p:
        rows = executor._read_csv(p, "log", str(path), ["u", "i", "t"], dedupe=True)
        assert_that(
            rows | beam.Map(lambda r: (r["u"], r["i"], r["t"])),
            equal_to([("1", "2", "10"), ("1", "2", "11")]),
        )


def test_extra_columns_are_ignored():
    header = ["userId", "movieId", "rating", "timestamp", "device"]
    row = executor.parse_row("7,1,4.0,100,phone", header, "ratings.csv")
    ex = executor.event_example(row, RATINGS, {}).features.feature
    assert set(ex) == {F.USER_ID, F.ITEM_ID, F.TITLE, F.GENRES, F.EVENT_TYPE, F.TIMESTAMP, F.RATING}
