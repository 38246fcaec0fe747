"""RecommenderPusher's executor on real TFX artifacts and small SavedModels."""

import os

import pytest
import tensorflow as tf
from tfx.dsl.io.filesystem import NotFoundError
from tfx.types import standard_artifacts

from components.recommender_pusher.executor import Executor, versions


def saved_model(directory, value):
    module = tf.Module()
    module.v = tf.Variable(value)
    module.f = tf.function(lambda: module.v, input_signature=[])
    tf.saved_model.save(module, directory)


@pytest.fixture
def model(tmp_path):
    artifact = standard_artifacts.Model()
    artifact.uri = str(tmp_path / "model")
    saved_model(os.path.join(artifact.uri, "Format-Serving"), 1.0)
    saved_model(os.path.join(artifact.uri, "Format-Serving-ScaNN"), 2.0)
    return artifact


def push(tmp_path, model, blessed):
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    Executor().Do(
        {"model": [model], "model_blessing": [blessing]},
        {"pushed_model": [pushed]},
        {"serving_root": str(tmp_path / "serving"), "model_name": "rec"},
    )
    return pushed


def listing(tmp_path):
    root = tmp_path / "serving"
    return {n: sorted(os.listdir(root / n)) for n in os.listdir(root)} if root.exists() else {}


def test_unblessed_model_is_not_pushed(tmp_path, model):
    pushed = push(tmp_path, model, blessed=False)
    assert pushed.get_int_custom_property("pushed") == 0
    assert listing(tmp_path) == {}


def test_blessed_model_lands_in_both_layouts_once(tmp_path, model):
    first = push(tmp_path, model, blessed=True)
    version = first.get_string_custom_property("pushed_version")
    assert listing(tmp_path) == {"rec": [version], "rec_scann": [version]}
    loaded = tf.saved_model.load(str(tmp_path / "serving" / "rec_scann" / version))
    assert float(loaded.f()) == 2.0
    again = push(tmp_path, model, blessed=True)
    assert again.get_string_custom_property("pushed_version") == version
    assert listing(tmp_path) == {"rec": [version], "rec_scann": [version]}


def test_a_new_model_gets_a_higher_version(tmp_path, model):
    first = int(push(tmp_path, model, blessed=True).get_string_custom_property("pushed_version"))
    saved_model(os.path.join(model.uri, "Format-Serving"), 3.0)
    second = int(push(tmp_path, model, blessed=True).get_string_custom_property("pushed_version"))
    assert second > first
    assert versions(str(tmp_path / "serving" / "rec")) == [first, second]


def test_interrupted_push_leaves_served_versions_intact(tmp_path, model):
    version = push(tmp_path, model, blessed=True).get_string_custom_property("pushed_version")
    before = listing(tmp_path)
    saved_model(os.path.join(model.uri, "Format-Serving"), 4.0)
    scann = os.path.join(model.uri, "Format-Serving-ScaNN")
    os.symlink(os.path.join(scann, "does-not-exist"), os.path.join(scann, "broken"))
    with pytest.raises(NotFoundError):  # the copy fails half way through
        push(tmp_path, model, blessed=True)
    assert listing(tmp_path) == before  # no new version, no leftover .tmp-* directory
    assert before == {"rec": [version], "rec_scann": [version]}


def test_missing_scann_twin_is_a_clear_error(tmp_path, model):
    tf.io.gfile.rmtree(os.path.join(model.uri, "Format-Serving-ScaNN"))
    with pytest.raises(ValueError, match="has no serving model at .*Format-Serving-ScaNN"):
        push(tmp_path, model, blessed=True)
    assert listing(tmp_path) == {}
