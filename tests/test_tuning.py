"""Tuner plumbing: search space, hyperparameters into ModelConfig, the train-only holdout."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from components.multilog_example_gen.events import split_of
from contracts.hashing import pair_bucket, pair_buckets
from models import features as F
from models.config import DCNConfig, ModelConfig, TuningConfig
from models.entrypoints import eval_and_catalog_files
from models.tuning import apply_hyperparameters, holdout, search_space
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


def test_holdout_splits_pairs_disjointly_and_completely():
    users = tf.range(200, dtype=tf.int64) % 17
    items = tf.range(200, dtype=tf.int64) % 23
    events = tf.data.Dataset.from_tensor_slices({F.USER_IDX: users, F.ITEM_IDX: items}).batch(64)

    def pairs(keep):
        out = set()
        for batch in holdout(events, 20, keep=keep, batch_size=50, seed=3):
            out |= set(zip(batch[F.USER_IDX].numpy(), batch[F.ITEM_IDX].numpy(), strict=True))
        return out

    held, fit = pairs(True), pairs(False)
    assert not held & fit
    assert len(held) + len(fit) == len({(u % 17, u % 23) for u in range(200)})
    assert 0 < len(held) < len(fit)


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
