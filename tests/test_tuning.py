"""Tuner plumbing: search space, hyperparameters into ModelConfig, the train-only holdout."""

import dataclasses

import numpy as np
import pytest
import testlib

from components.multilog_example_gen.events import split_of
from contracts.hashing import pair_bucket, pair_buckets
from models import features as F
from models.config import DCNConfig, ModelConfig, TuningConfig
from models.entrypoints import eval_and_catalog_files
from models.inputs import training_inputs
from models.tuning import apply_hyperparameters, search_space
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline
from pipeline.presets import MOVIELENS_INGEST


def test_tuned_values_override_the_config():
    base = ModelConfig(dcn=DCNConfig("stacked", 2, None, (64, 32)))
    tuned = apply_hyperparameters(
        base,
        {
            "retrieval_weight": 0.5,
            "rating_weight": 2.0,
            "dcn_structure": "parallel",
            "dcn_num_cross_layers": 3,
            "dcn_projection_dim": 16,
        },
    )
    assert tuned == dataclasses.replace(
        base,
        retrieval_weight=0.5,
        rating_weight=2.0,
        dcn=DCNConfig("parallel", 3, 16, (64, 32)),
    )
    assert apply_hyperparameters(base, {"dcn_projection_dim": 0}).dcn.projection_dim is None
    assert apply_hyperparameters(base, None) is base


def test_unknown_hyperparameter_is_rejected():
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['dropout'\]"):
        apply_hyperparameters(ModelConfig(), {"dropout": 0.1})


def test_search_space_names_match_what_is_applied():
    space = search_space(TuningConfig())
    values = {hp.name: hp.values[-1] for hp in space.space}
    config = apply_hyperparameters(ModelConfig(), values)
    assert config.retrieval_weight == 2.0 and config.dcn.projection_dim == 16
    assert (config.history_length, config.history_decay, config.rate_from_history) == (
        50,
        1.0,
        True,
    )


def test_tuning_config_validates():
    with pytest.raises(ValueError, match="validation_percent"):
        TuningConfig(validation_percent=0)
    with pytest.raises(ValueError, match="rating_weights must not be empty"):
        TuningConfig(rating_weights=())


def _holdout_world(tmp_path):
    rows = [
        testlib.event_row(f"u{n % 17}", f"i{n % 23}", rating=4.0, timestamp=n) for n in range(200)
    ]
    transformed, output = testlib.run_transform(rows)
    path = testlib.write_transformed(transformed, output, str(tmp_path / "events.gz"))
    users = {v.decode(): i for i, v in enumerate(output.vocabulary_by_name(F.USER_VOCAB))}
    items = {v.decode(): i for i, v in enumerate(output.vocabulary_by_name(F.ITEM_VOCAB))}
    events = [(users[f"u{n % 17}"], items[f"i{n % 23}"], n) for n in range(200)]
    return output, path, events


def _pairs(dataset):
    out, users = set(), []
    for batch in dataset:
        out |= set(zip(batch[F.USER_IDX].numpy(), batch[F.ITEM_IDX].numpy(), strict=True))
        users.extend(batch[F.USER_IDX].numpy())
    return out, users


def _latest_pairs(events, percent):
    """Hand-computed rule: each user's round(percent% of pairs) latest, by first event."""
    first = {}
    for u, i, t in events:
        first.setdefault((u, i), t)
    held = set()
    for user in {u for u, _ in first}:
        mine = sorted((t, i) for (u, i), t in first.items() if u == user)
        count = min(int(len(mine) * percent / 100 + 0.5), len(mine) - 1)
        held |= {(user, i) for _, i in mine[len(mine) - count :]} if count else set()
    return held


def test_holdout_is_each_users_latest_pairs_with_served_histories(tmp_path):
    """The Trainer's early-stopping holdout: each user's latest training pairs, given
    the history a served model would read (the user's latest fitted items)."""
    output, path, events = _holdout_world(tmp_path)
    config = ModelConfig(holdout_percent=20, history_length=3, user_dropout=0.25, batch_size=50)
    inputs = training_inputs(config, output, path, path, np.full(24, 1 / 24, np.float32))
    (held, _), (fit, fit_users) = _pairs(inputs.holdout), _pairs(inputs.fit)
    oov = output.vocabulary_size_by_name(F.USER_VOCAB)
    fit = {(u, i) for u, i in fit if u != oov}  # the users dropout hid
    assert held == _latest_pairs(events, 20)
    assert not held & fit
    assert 0.1 < np.mean(np.array(fit_users) == oov) < 0.4  # about a quarter hidden
    assert inputs.fit_events + sum(len(b[F.USER_IDX]) for b in inputs.holdout) == 200
    for batch in inputs.holdout:
        for user, history in zip(batch[F.USER_IDX].numpy(), batch[F.HISTORY].numpy(), strict=True):
            known = [i + 1 for u, i, _ in events if u == user and (u, i) not in held]
            assert history.tolist() == known[-3:]


def test_tuner_validation_is_each_users_latest_pairs(tmp_path):
    from models import training
    from models.tuning import tuning_datasets

    output, path, events = _holdout_world(tmp_path)
    setup = training.prepare(output, path, path)
    _, validation = tuning_datasets(
        ModelConfig(history_length=2), TuningConfig(validation_percent=30), output, path, setup
    )
    assert _pairs(validation)[0] == _latest_pairs(events, 30)


def test_tuner_feeds_the_trainer_when_enabled(tmp_path):
    config = PipelineConfig(
        pipeline_name="p",
        pipeline_root=str(tmp_path),
        data_root=str(tmp_path),
        schema_path="schema/schema.pbtxt",
        serving_root=str(tmp_path),
        ingest=MOVIELENS_INGEST,
        tuning=TuningConfig(max_trials=2),
    )
    nodes = {c.id: c for c in create_pipeline(config).components}
    assert "Tuner" in nodes
    assert "Tuner" in {u.id for u in nodes["Trainer"].upstream_nodes}
    off = dataclasses.replace(config, tuning=None)
    assert "Tuner" not in {c.id for c in create_pipeline(off).components}


def test_pair_hash_is_one_pinned_function():
    # Pinned: changing the hash would reshuffle every user's train/eval split.
    assert pair_bucket("1", "2", 42) == 75
    assert pair_bucket(b"1", b"2", 42) == 75
    assert pair_bucket("u", "i", 7) == 85
    users, items = np.array([1, 7, 3]), np.array([2, 2, 9])
    expected = [pair_bucket(str(u), str(i), 5) for u, i in zip(users, items, strict=True)]
    assert pair_buckets(users, items, 5).tolist() == expected
    assert split_of("1", "2", 42, 76) == 1 and split_of("1", "2", 42, 75) == 0


def test_trainer_eval_files_are_unpacked_by_split():
    files = ["ex1/Split-eval/*", "ex2/Split-eval/*", "ex1/Split-catalog/*", "ex2/Split-catalog/*"]
    assert eval_and_catalog_files(files) == (files[:2], files[2:])
    with pytest.raises(ValueError, match=r"splits \('eval', 'catalog'\)"):
        eval_and_catalog_files(files[:3])
