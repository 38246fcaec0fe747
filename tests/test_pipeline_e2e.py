"""End-to-end LocalDagRunner runs on a slice of the embedded MovieLens logs."""

import collections
import csv
import dataclasses
import json
import os

import pytest
import scann  # noqa: F401  (registers the ScaNN ops the _scann model needs)
import tensorflow as tf
import yaml
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.orchestration import metadata

from contracts.layout import WARMSTART_DIR_NAME
from contracts.names import CATALOG, EVAL, MODEL_CONFIG_KEY, TRAIN, TUNING_CONFIG_KEY
from models.config import TuningConfig
from models.entrypoints import tuner_fn
from models.tuning import OBJECTIVE
from models.warmstart import REPORT_FILE
from pipeline import logs_file
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline
from serving import client

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, os.pardir, "data", "movielens")
SCHEMA = os.path.join(HERE, os.pardir, "schema", "schema.pbtxt")
MAX_USER = 20  # users 1..20: about 3.2K ratings and their tags
COMPONENTS = {
    "MultiLogExampleGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "AnomaliesGate",
    "Transform",
    "Trainer",
    "RecommenderEvaluator",
    "RecommenderPusher",
}


COMPLETE = metadata_store_pb2.Execution.COMPLETE
CACHED = metadata_store_pb2.Execution.CACHED


def write_slice(target, mutate=None):
    """Copies users 1..MAX_USER of each log plus the full catalogue into `target`.

    The logs are written as a ';'-delimited export, as `logs_file_for` declares them.
    """
    os.makedirs(target, exist_ok=True)
    for name in ("ratings.csv", "tags.csv", "movies.csv"):
        with open(os.path.join(DATA, name), newline="") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], rows[1:]
        if name != "movies.csv":
            body = [r for r in body if int(r[0]) <= MAX_USER]
        if mutate:
            header, body = mutate(name, header, body)
        with open(os.path.join(target, name), "w", newline="") as f:
            csv.writer(f, delimiter=";" if name != "movies.csv" else ",").writerows([header, *body])
    return str(target)


def logs_file_for(tmp):
    """The run's only configuration: the shipped MovieLens logs file, adapted (a test's own)."""
    with open(os.path.join(HERE, os.pardir, "configs", "movielens.yaml")) as f:
        logs = yaml.safe_load(f)
    logs["schema"] = SCHEMA
    for log in logs["logs"]:
        log["csv"] = {"delimiter": ";"}
    # A 20-user slice trained for 3 epochs: the gate checks the mechanics here
    # (the margins over the trivial baselines are loosened, not the comparisons).
    logs["model"] = {"epochs": 3, "batch_size": 128, "embedding_dim": 16}
    logs["gate"] = {
        "rmse_margin": -0.5,
        "top_k_margin": -0.9,
        "max_rmse_increase": 0.05,
        "max_lift_decrease": 0.25,
    }
    path = os.path.join(tmp, "logs.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(logs, f)
    return path


def make_config(tmp, data_root, **overrides):
    fields = logs_file.load(logs_file_for(tmp))
    fields["pipeline_name"] = "recommender-e2e"
    config = PipelineConfig.from_json_dict(
        {
            **fields,
            "pipeline_root": os.path.join(tmp, "root"),
            "data_root": data_root,
            "serving_root": os.path.join(tmp, "serving"),
        }
    )
    return dataclasses.replace(config, **overrides)


def run(config, tmp):
    connection = metadata.sqlite_metadata_connection_config(os.path.join(tmp, "mlmd.sqlite"))
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config, connection))
    return connection


def slice_events(config):
    """(user, item) of every event of the slice."""
    events = []
    for name in ("ratings.csv", "tags.csv"):
        with open(os.path.join(DATA, name), newline="") as f:
            for r in csv.DictReader(f):
                if int(r["userId"]) <= MAX_USER:
                    events.append((r["userId"], r["movieId"]))
    return events


def split_records(connection, split):
    """Serialized raw events of one split of the first run's ExampleGen output."""
    with metadata.Metadata(connection) as m:
        produced = [
            a for a in m.store.get_artifacts_by_type("Examples") if "MultiLogExampleGen" in a.uri
        ]
    first = min(produced, key=lambda a: a.id)
    files = sorted(tf.io.gfile.glob(os.path.join(first.uri, f"Split-{split}", "*")))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def split_events(connection, split):
    """(user, item, time) of every event of one split of the first run."""
    out = []
    for record in split_records(connection, split):
        feature = tf.train.Example.FromString(record).features.feature
        out.append(
            (
                feature["user_id"].bytes_list.value[0].decode(),
                feature["item_id"].bytes_list.value[0].decode(),
                feature["timestamp"].int64_list.value[0],
            )
        )
    return out


def known_items(user, config):
    """Items `user` rated or tagged in the slice, in either split."""
    return {item for u, item in slice_events(config) if u == user}


def executions_by_component(connection):
    with metadata.Metadata(connection) as m:
        types = {t.id: t.name for t in m.store.get_execution_types()}
        result = {}
        for e in m.store.get_executions():
            name = types[e.type_id].split(".")[-1]
            result.setdefault(name, []).append(e.last_known_state)
        return result


def pushed_versions(config, suffix=""):
    """Every entry of the model's serving directory (a stray temp dir would show)."""
    model_dir = os.path.join(config.serving_root, config.model_name + suffix)
    return sorted(os.listdir(model_dir)) if os.path.isdir(model_dir) else []


def read_tree(directory):
    return {
        os.path.relpath(os.path.join(d, f), directory): open(os.path.join(d, f), "rb").read()
        for d, _, files in os.walk(directory)
        for f in files
    }


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("e2e"))
    config = make_config(tmp, write_slice(os.path.join(tmp, "data")))
    connection = run(config, tmp)
    return tmp, config, connection


def test_every_component_completes(first_run):
    _, _, connection = first_run
    states = executions_by_component(connection)
    assert COMPONENTS <= set(states), f"missing executions: {COMPONENTS - set(states)}"
    for name in COMPONENTS:
        assert states[name] == [COMPLETE], (name, states[name])


def test_model_is_blessed_and_pushed_in_serving_layout(first_run):
    _, config, connection = first_run
    with metadata.Metadata(connection) as m:
        blessings = m.store.get_artifacts_by_type("ModelBlessing")
        model = min(m.store.get_artifacts_by_type("Model"), key=lambda a: a.id)
    assert [b.custom_properties["blessed"].int_value for b in blessings] == [1]
    with open(os.path.join(model.uri, WARMSTART_DIR_NAME, REPORT_FILE)) as f:
        blend = json.load(f)["recommend_blend"]  # recommend's weight, chosen on the holdout
    assert blend["retrieval_weight"] in config.model.recommend.blend_weights
    assert blend["hit_rate"][str(blend["retrieval_weight"])] == max(blend["hit_rate"].values())
    versions = pushed_versions(config)
    assert len(versions) == 1 and versions[0].isdigit()
    assert pushed_versions(config, "_scann") == versions
    for suffix in ("", "_scann"):
        version_dir = os.path.join(config.serving_root, config.model_name + suffix, versions[0])
        assert tf.saved_model.contains_saved_model(version_dir)
        assert len(client.read_warmup_requests(version_dir)) == 4


def test_pushed_model_answers_raw_requests(first_run):
    _, config, _ = first_run
    version_dir = os.path.join(config.serving_root, config.model_name, pushed_versions(config)[0])
    loaded = tf.saved_model.load(version_dir)
    assert set(loaded.signatures) == {
        "serving_default",
        "retrieve",
        "retrieve_with_seen",
        "rate",
        "recommend",
        "evaluate",
        "eval_features",
    }
    with open(os.path.join(DATA, "movies.csv"), newline="") as f:
        catalogue = {r["movieId"] for r in csv.DictReader(f)}
    out = loaded.signatures["serving_default"](
        user_id=tf.constant([b"1", b"unknown-user"]), k=tf.constant(10)
    )
    ids = out["item_ids"].numpy()
    assert ids.shape == (2, 10)
    assert {i.decode() for i in ids.ravel()} <= catalogue
    scores = out["scores"].numpy()
    assert (scores[:, :-1] >= scores[:, 1:]).all()  # best first
    rating = loaded.signatures["rate"](user_id=tf.constant([b"1"]), item_id=tf.constant([b"1"]))
    assert 0.5 <= float(rating["rating"][0]) <= 5.0  # clipped to the schema's rating range
    known = known_items("1", config)
    top = loaded.signatures["retrieve"](user_id=tf.constant([b"1"]), k=tf.constant(100))
    assert len(known) > 100
    # Known items are never served: training and evaluation events alike.
    assert not known & {i.decode() for i in top["item_ids"].numpy()[0]}


def test_serving_edge_cases_get_defined_answers(first_run):
    _, config, connection = first_run
    version = pushed_versions(config)[0]
    loaded = tf.saved_model.load(os.path.join(config.serving_root, config.model_name, version))
    retrieve, rate = loaded.signatures["retrieve"], loaded.signatures["rate"]
    unknown = retrieve(user_id=tf.constant([b"nobody", b""]), k=tf.constant(10))["item_ids"]
    assert unknown.shape == (2, 10)
    assert unknown.numpy()[0].tolist() == unknown.numpy()[1].tolist()  # both: the OOV user
    # Unknown users get the training events' most popular items.
    counts = collections.Counter(item for _, item, _ in split_events(connection, TRAIN))
    served = [counts[i.decode()] for i in unknown.numpy()[0]]
    assert served == sorted(counts.values(), reverse=True)[:10]
    with open(os.path.join(DATA, "movies.csv"), newline="") as f:
        catalogue = [r["movieId"] for r in csv.DictReader(f)]
    huge = [
        i.decode()
        for i in retrieve(user_id=tf.constant([b"1"]), k=tf.constant(10**9))["item_ids"].numpy()[0]
    ]
    assert sorted(huge) == sorted(catalogue)  # every item once: the whole catalogue, ranked
    known = known_items("1", config)
    assert set(huge[-len(known) :]) == known  # user 1's known items fill the tail
    empty = retrieve(user_id=tf.constant([], tf.string), k=tf.constant(5))["item_ids"]
    assert empty.shape[0] == 0
    with pytest.raises(tf.errors.InvalidArgumentError, match="k must be a positive"):
        retrieve(user_id=tf.constant([b"1"]), k=tf.constant(0))
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError), match="string"):
        retrieve(user_id=tf.constant([1]), k=tf.constant(5))
    items = [b"1", b"2", b"3", b"no-such-item", b"also-missing"]
    ratings = rate(user_id=tf.constant([b"1"] * 5), item_id=tf.constant(items))["rating"].numpy()
    assert len(set(ratings[:3].tolist())) == 3  # the rating depends on the item
    assert ratings[3] == ratings[4]  # every unknown item is the item tower's one OOV item
    assert ratings[3] not in ratings[:3].tolist()
    with pytest.raises(tf.errors.InvalidArgumentError, match="must align"):
        rate(user_id=tf.constant([b"1", b"2"]), item_id=tf.constant([b"1"]))


def test_eval_split_is_each_users_future(first_run):
    _, _, connection = first_run
    train, evaluation = split_events(connection, TRAIN), split_events(connection, EVAL)
    assert evaluation and {(u, i) for u, i, _ in train}.isdisjoint(
        {(u, i) for u, i, _ in evaluation}
    )
    first_seen = {}
    for u, i, t in train:
        first_seen[u, i] = min(t, first_seen.get((u, i), t))
    latest_train_pair = collections.defaultdict(int)
    for (u, _), t in first_seen.items():
        latest_train_pair[u] = max(latest_train_pair[u], t)
    assert all(t > latest_train_pair[u] for u, _, t in evaluation)


def test_the_gate_ranks_what_retrieve_serves(first_run):
    """Every eval event of a known user: the Evaluator's rank (the `evaluate`
    signature TFMA calls) is 1 + the items `retrieve` ranks above the event's
    item, leaving out only the user's training items. An Evaluator that built
    any input serving does not (a history from the event's time, another
    exclusion) moves these ranks."""
    _, config, connection = first_run
    version = pushed_versions(config)[0]
    loaded = tf.saved_model.load(os.path.join(config.serving_root, config.model_name, version))
    records = split_records(connection, EVAL)
    ranks = loaded.signatures["evaluate"](examples=tf.constant(records))["rank"].numpy()
    trained = collections.defaultdict(set)
    for u, i, _ in split_events(connection, TRAIN):
        trained[u].add(i)
    with open(os.path.join(DATA, "movies.csv"), newline="") as f:
        catalogue_size = sum(1 for _ in csv.DictReader(f))
    users = sorted(trained)
    served = loaded.signatures["retrieve_with_seen"](
        user_id=tf.constant(users), k=tf.constant(catalogue_size)
    )
    lists = {
        u: ([i.decode() for i in ids], scores)
        for u, ids, scores in zip(
            users, served["item_ids"].numpy(), served["scores"].numpy(), strict=True
        )
    }
    compared = exact = 0
    for (user, item, _), rank in zip(split_events(connection, EVAL), ranks, strict=True):
        ids, scores = lists[user]
        if item not in ids:
            assert rank == catalogue_size + 1
            continue
        kept = [(i, s) for i, s in zip(ids, scores, strict=True) if i not in trained[user]]
        position = [i for i, _ in kept].index(item)
        score = kept[position][1]
        # Ties between float scores computed in two graphs may order either way.
        above = sum(s > score + 1e-4 for _, s in kept)
        at_most = sum(s > score - 1e-4 for _, s in kept)
        assert above + 1 <= rank <= at_most, (user, item, rank, position + 1)
        exact += rank == position + 1
        compared += 1
    assert compared > 100 and exact >= 0.95 * compared


def test_scann_twin_agrees_with_brute_force(first_run):
    _, config, _ = first_run
    version = pushed_versions(config)[0]
    answers = []
    for suffix in ("", "_scann"):
        loaded = tf.saved_model.load(
            os.path.join(config.serving_root, config.model_name + suffix, version)
        )
        request = client.retrieve_request([str(u) for u in range(1, MAX_USER + 1)], 100, "m")
        answers.append(client.parse_retrieve_response(client.predict_in_process(loaded, request)))
    overlap = [
        len({r.item_id for r in bf} & {r.item_id for r in sc}) / 100
        for bf, sc in zip(*answers, strict=True)
    ]
    assert sum(overlap) / len(overlap) >= 0.9


def test_second_run_reuses_cached_executions(first_run):
    """Run 2: everything up to Trainer is cached; the Evaluator re-runs because the
    resolver now supplies run 1's blessed model as baseline, and the Pusher sees
    that this very model is already the latest pushed version and pushes nothing."""
    tmp, config, connection = first_run
    before = pushed_versions(config)
    run(config, tmp)
    states = executions_by_component(connection)
    for name in COMPONENTS - {"RecommenderEvaluator", "RecommenderPusher"}:
        assert states[name] == [COMPLETE, CACHED], (name, states[name])
    assert states["RecommenderEvaluator"] == [COMPLETE, COMPLETE]
    with metadata.Metadata(connection) as m:
        blessings = m.store.get_artifacts_by_type("ModelBlessing")
        models = m.store.get_artifacts_by_type("Model")
        pushes = m.store.get_artifacts_by_type("PushedModel")
    assert len(models) == 1
    latest = max(blessings, key=lambda b: b.id)
    assert latest.custom_properties["baseline_model_id"].int_value == models[0].id
    assert latest.custom_properties["blessed"].int_value == 1
    assert pushed_versions(config) == pushed_versions(config, "_scann") == before
    latest_push = max(pushes, key=lambda p: p.id)
    assert latest_push.custom_properties["pushed"].int_value == 0  # identical: not pushed
    assert latest_push.custom_properties["pushed_version"].string_value == before[0]


def test_worse_model_is_not_pushed_and_served_version_stays(first_run):
    """Run 3: a barely trained model is worse than the blessed baseline; the gate
    refuses it and the pushed versions stay byte for byte as they were."""
    tmp, config, connection = first_run
    served = {
        s: read_tree(os.path.join(config.serving_root, config.model_name + s))
        for s in ("", "_scann")
    }
    worse = dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, epochs=1, learning_rate=1e-5),
        gate=dataclasses.replace(config.gate, max_rmse_increase=0.0, max_lift_decrease=0.0),
    )
    run(worse, tmp)
    with metadata.Metadata(connection) as m:
        latest = max(m.store.get_artifacts_by_type("ModelBlessing"), key=lambda b: b.id)
        push = max(m.store.get_artifacts_by_type("PushedModel"), key=lambda p: p.id)
        evaluation = max(m.store.get_artifacts_by_type("ModelEvaluation"), key=lambda e: e.id)
    assert latest.custom_properties["blessed"].int_value == 0
    message = latest.custom_properties["blessing_message"].string_value
    assert "baseline" in message
    assert push.custom_properties["pushed"].int_value == 0
    with open(os.path.join(evaluation.uri, "gate.json")) as f:
        gate = json.load(f)
    refused = [t for t in gate["thresholds"] if t["passed"] is False]
    assert refused and not gate["blessed"]
    assert all(t["metric"].split(" ")[0] in message for t in refused)
    assert {t["metric"] for t in gate["thresholds"]} >= {"rmse_lift", "top_100_lift"}
    for suffix, tree in served.items():
        assert read_tree(os.path.join(config.serving_root, config.model_name + suffix)) == tree


def drop_rating_column(name, header, body):
    if name != "ratings.csv":
        return header, body
    keep = [i for i, col in enumerate(header) if col != "rating"]
    return [header[i] for i in keep], [[r[i] for i in keep] for r in body]


def rating_out_of_range(name, header, body):
    if name == "ratings.csv":
        body = [list(body[0][:2]) + ["7.5"] + list(body[0][3:]), *body[1:]]
    return header, body


def new_genre(name, header, body):
    if name == "movies.csv":
        body = [[*body[0][:2], "Bollywood"], *body[1:]]
    return header, body


def nan_rating(name, header, body):
    if name == "ratings.csv":
        body = [list(body[0][:2]) + ["NaN"] + list(body[0][3:]), *body[1:]]
    return header, body


def header_only_ratings(name, header, body):
    return header, ([] if name == "ratings.csv" else body)


def drop_genres_column(name, header, body):
    if name != "movies.csv":
        return header, body
    return header[:2], [r[:2] for r in body]


@pytest.mark.parametrize(
    "mutate,message",
    [
        (drop_rating_column, r"log 'ratings' .* missing column\(s\) \['rating'\]"),
        (
            rating_out_of_range,
            r"(?s)data does not match \S*schema.pbtxt.*train/rating: Out-of-range values",
        ),
        (
            new_genre,
            r"(?s)data does not match \S*schema.pbtxt.*catalog/genres: Unexpected string values",
        ),
        (drop_genres_column, r"catalogue .* missing column\(s\) \['genres'\]"),
        (nan_rating, r"log 'ratings' \(.*ratings.csv' line 2\): rating 'NaN' is not a finite"),
        (header_only_ratings, r"ratings.csv' has a header but no rows"),
    ],
)
def test_bad_log_fails_clearly_and_pushes_nothing(tmp_path, mutate, message):
    tmp = str(tmp_path)
    config = make_config(tmp, write_slice(os.path.join(tmp, "data"), mutate))
    with pytest.raises(Exception, match=message) as info:
        run(config, tmp)
    assert isinstance(info.value, ValueError) or "ValueError" in repr(info.value)
    assert pushed_versions(config) == []


def test_tuner_fn_searches_on_the_train_split(first_run, tmp_path):
    """The Tuner's entry point on run 1's Transform output: two real trials."""
    tmp, config, connection = first_run
    with metadata.Metadata(connection) as m:
        [examples] = m.store.get_artifacts_by_type("Examples")[-1:]
        [graph] = m.store.get_artifacts_by_type("TransformGraph")
    fn_args = tfx.components.FnArgs(
        train_files=[os.path.join(examples.uri, f"Split-{TRAIN}", "*")],
        eval_files=[os.path.join(examples.uri, f"Split-{s}", "*") for s in (EVAL, CATALOG)],
        transform_graph_path=graph.uri,
        working_dir=str(tmp_path),
        custom_config={
            MODEL_CONFIG_KEY: config.model.to_json_dict(),
            TUNING_CONFIG_KEY: TuningConfig(max_trials=2, epochs=1).to_json_dict(),
        },
    )
    result = tuner_fn(fn_args)
    result.tuner.search(**result.fit_kwargs)
    trials = list(result.tuner.oracle.trials.values())
    assert len(trials) == 2
    scores = [t.metrics.get_last_value(OBJECTIVE.name) for t in trials]
    assert all(s == s for s in scores), scores  # both trials scored, no NaN
    best_trial = trials[scores.index(min(scores))]
    best = result.tuner.get_best_hyperparameters(1)[0].values
    assert best == best_trial.hyperparameters.values
    assert trials[0].hyperparameters.values != trials[1].hyperparameters.values
