"""Time-partitioned test logs: three daily spans of a MovieLens slice, and MLMD lookups."""

import csv
import dataclasses
import os
import shutil

from tfx.orchestration import metadata

from components.multilog_example_gen.spec import SpanConfig
from components.recommender_evaluator.spec import GateConfig
from datagen.partition import MOVIELENS_CATALOG, MOVIELENS_LOGS, partition, span_dir
from models.config import ModelConfig
from pipeline.config import PipelineConfig
from pipeline.local import METADATA_FILE, run_locally
from pipeline.presets import MOVIELENS_INGEST, PRESETS, partitioned

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, os.pardir, "data", "movielens")
SCHEMA = os.path.join(HERE, os.pardir, "schema", "schema.pbtxt")
MAX_USER = 20
NEW_USER, NEW_ITEM = "new-user", "new-item"


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def write(path, header, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def stage_spans(tmp):
    """Three spans of users 1..20; span 3 gets a new user, a new item and many tags."""
    src = os.path.join(tmp, "snapshot")
    os.makedirs(src)
    for name in ("ratings.csv", "tags.csv", "movies.csv"):
        header, rows = read(os.path.join(DATA, name))
        if name != "movies.csv":
            rows = [r for r in rows if int(r[0]) <= MAX_USER]
        write(os.path.join(src, name), header, rows)
    staged = os.path.join(tmp, "staged")
    partition(src, staged, MOVIELENS_LOGS, MOVIELENS_CATALOG, 3)
    ratings = os.path.join(staged, span_dir("ratings", 3), "ratings.csv")
    header, rows = read(ratings)
    stamp = rows[-1][3]
    extra = [[NEW_USER, r[1], "4.0", stamp] for r in rows[:30]]
    extra += [[str(u), NEW_ITEM, "5.0", stamp] for u in range(1, 6)]
    write(ratings, header, rows + extra)
    tags = os.path.join(staged, span_dir("tags", 3), "tags.csv")
    tag_header, tag_rows = read(tags)
    shifted = [[r[0], r[1], "shifted", r[3]] for r in rows]  # tags jump to ~half the events
    write(tags, tag_header, tag_rows + shifted)
    movies = os.path.join(staged, span_dir("movies", 3), "movies.csv")
    movie_header, movie_rows = read(movies)
    write(movies, movie_header, [*movie_rows, [NEW_ITEM, "Brand New (2018)", "Drama"]])
    return staged


def deliver(staged, data_root, span):
    for name in ("ratings", "tags", "movies"):
        shutil.copytree(
            os.path.join(staged, span_dir(name, span)),
            os.path.join(data_root, span_dir(name, span)),
        )


def executions(out):
    connection = metadata.sqlite_metadata_connection_config(os.path.join(out, METADATA_FILE))
    with metadata.Metadata(connection) as m:
        types = {t.id: t.name.split(".")[-1] for t in m.store.get_execution_types()}
        return [(types[e.type_id], e) for e in m.store.get_executions()]


def artifacts(out, type_name):
    connection = metadata.sqlite_metadata_connection_config(os.path.join(out, METADATA_FILE))
    with metadata.Metadata(connection) as m:
        return sorted(m.store.get_artifacts_by_type(type_name), key=lambda a: a.id)


def spans_config(out, data_root, **overrides) -> PipelineConfig:
    """A 14-span window with a 1-span holdout, a small model and a permissive gate."""
    config = PipelineConfig(
        pipeline_name="recommender-spans-e2e",
        pipeline_root=os.path.join(out, "root"),
        data_root=data_root,
        schema_path=SCHEMA,
        serving_root=os.path.join(out, "serving"),
        ingest=partitioned(MOVIELENS_INGEST, SpanConfig(window=14, holdout=1)),
        model=ModelConfig(
            epochs=3,
            warm_start_epochs=2,
            batch_size=128,
            embedding_dim=16,
            events=PRESETS["movielens"].model.events,
        ),
        gate=GateConfig(
            rmse_margin=-0.5, top_k_margin=-0.9, max_rmse_increase=0.1, max_lift_decrease=0.5
        ),
    )
    return dataclasses.replace(config, **overrides)


def run_deliveries(tmp: str, deliveries, **overrides):
    """Stages the spans, then runs the pipeline once per delivery (its spans added first).

    Returns:
        (config, output dir, one `RunReport` per run).
    """
    staged = stage_spans(tmp)
    data_root, out = os.path.join(tmp, "data"), os.path.join(tmp, "out")
    config = spans_config(out, data_root, **overrides)
    reports = []
    for spans in deliveries:
        for span in spans:
            deliver(staged, data_root, span)
        reports.append(run_locally(config, out))
    return config, out, reports
