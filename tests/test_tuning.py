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


def test_tuning_config_validates():
    with pytest.raises(ValueError, match="validation_percent"):
        TuningConfig(validation_percent=0)
    with pytest.raises(ValueError, match="rating_weights must not be empty"):
        TuningConfig(rating_weights=())


def test_holdout_splits_pairs_disjointly_and_completely(tmp_path):
    """The Trainer's (and Tuner's) holdout of training events, by pair hash, with histories."""
    rows = [testlib.event_row(f"u{n % 17}", f"i{n % 23}", timestamp=n) for n in range(200)]
    transformed, output = testlib.run_transform(rows)
    path = testlib.write_transformed(transformed, output, str(tmp_path / "events.gz"))
    config = ModelConfig(holdout_percent=20, history_length=3, user_dropout=0.25, batch_size=50)
    inputs = training_inputs(config, output, path, path, np.full(24, 1 / 24, np.float32))

    def pairs(dataset):
        out, users = set(), []
        for batch in dataset:
            out |= set(zip(batch[F.USER_IDX].numpy(), batch[F.ITEM_IDX].numpy(), strict=True))
            users.extend(batch[F.USER_IDX].numpy())
            assert batch[F.HISTORY].shape[1] == 3
        return out, users

    (held, _), (fit, fit_users) = pairs(inputs.holdout), pairs(inputs.fit)
    oov = output.vocabulary_size_by_name(F.USER_VOCAB)
    fit = {(u, i) for u, i in fit if u != oov}  # the users dropout hid
    assert not held & fit
    assert 0 < len(held) < len(fit)
    assert 0.1 < np.mean(np.array(fit_users) == oov) < 0.4  # about a quarter hidden
    assert inputs.fit_events + sum(len(b[F.USER_IDX]) for b in inputs.holdout) == 200
    # Each event's history is its user's earlier items: event n's user u = n % 17 had
    # the items of events n - 17, n - 34, ... (item index + 1, newest last).
    vocab = {v.decode(): i for i, v in enumerate(output.vocabulary_by_name(F.ITEM_VOCAB))}
    for batch in inputs.holdout:
        for item, user, history in zip(
            batch[F.ITEM_IDX].numpy(),
            batch[F.USER_IDX].numpy(),
            batch[F.HISTORY].numpy(),
            strict=True,
        ):
            events = [
                n
                for n in range(200)
                if f"u{n % 17}" == output.vocabulary_by_name(F.USER_VOCAB)[user].decode()
            ]
            n = next(n for n in events if vocab[f"i{n % 23}"] == item)
            earlier = [vocab[f"i{m % 23}"] + 1 for m in events if m < n][-3:]
            assert history.tolist()[3 - len(earlier) :] == earlier


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
