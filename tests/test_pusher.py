"""RecommenderPusher's executor on real TFX artifacts, small SavedModels and real file faults."""

import json
import os
import shutil
import time

import pytest
import tensorflow as tf
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.recommender_pusher.executor import STAGING_DIR, Executor, versions


def saved_model(directory, value):
    module = tf.Module()
    module.v = tf.Variable(value)
    module.f = tf.function(lambda: module.v, input_signature=[])
    tf.saved_model.save(module, directory)


def scann_gate(model, recall):
    with open(os.path.join(model.uri, "scann_gate.json"), "w") as f:
        json.dump(
            {"recall": recall, "min_recall": 0.95, "k": 100, "users": 9, "passed": recall >= 0.95},
            f,
        )


@pytest.fixture
def model(tmp_path):
    artifact = standard_artifacts.Model()
    artifact.uri = str(tmp_path / "model")
    saved_model(os.path.join(artifact.uri, "Format-Serving"), 1.0)
    saved_model(os.path.join(artifact.uri, "Format-Serving-ScaNN"), 2.0)
    scann_gate(artifact, 0.99)
    return artifact


def push(tmp_path, model, blessed=True, infra_blessed=None):
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    inputs = {"model": [model], "model_blessing": [blessing]}
    if infra_blessed is not None:
        infra = standard_artifacts.InfraBlessing()
        infra.uri = str(tmp_path / "infra")
        infra.set_int_custom_property("blessed", int(infra_blessed))
        inputs["infra_blessing"] = [infra]
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed" / str(time.time_ns()))
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(
            base_directory=str(tmp_path / "serving" / "rec")
        )
    )
    Executor().Do(
        inputs,
        {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
        {
            standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination),
            standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps(None),
        },
    )
    return pushed


def listing(tmp_path):
    root = tmp_path / "serving"
    return {n: sorted(os.listdir(root / n)) for n in os.listdir(root)} if root.exists() else {}


def served(tmp_path, name, version):
    loaded = tf.saved_model.load(str(tmp_path / "serving" / name / version))
    return float(loaded.f())


def test_unblessed_model_is_not_pushed(tmp_path, model):
    pushed = push(tmp_path, model, blessed=False)
    assert pushed.get_int_custom_property("pushed") == 0
    assert listing(tmp_path) == {}


def test_infra_blessing_is_honoured(tmp_path, model):
    assert push(tmp_path, model, infra_blessed=False).get_int_custom_property("pushed") == 0
    assert listing(tmp_path) == {}
    assert push(tmp_path, model, infra_blessed=True).get_int_custom_property("pushed") == 1


def test_blessed_model_lands_in_both_layouts_once(tmp_path, model):
    first = push(tmp_path, model)
    version = first.get_string_custom_property("pushed_version")
    assert first.get_int_custom_property("pushed") == 1
    assert first.get_string_custom_property("pushed_destination") == str(
        tmp_path / "serving" / "rec" / version
    )
    assert listing(tmp_path) == {"rec": [version], "rec_scann": [version], STAGING_DIR: []}
    assert (served(tmp_path, "rec", version), served(tmp_path, "rec_scann", version)) == (1.0, 2.0)
    assert tf.saved_model.contains_saved_model(first.uri)  # the stock Pusher's archive copy
    again = push(tmp_path, model)
    assert again.get_int_custom_property("pushed") == 0  # identical: not pushed, and says so
    assert again.get_string_custom_property("pushed_version") == version
    assert listing(tmp_path)["rec"] == [version]


def test_a_new_model_gets_a_higher_version(tmp_path, model):
    first = int(push(tmp_path, model).get_string_custom_property("pushed_version"))
    saved_model(os.path.join(model.uri, "Format-Serving"), 3.0)
    second = int(push(tmp_path, model).get_string_custom_property("pushed_version"))
    assert second > first
    assert versions(str(tmp_path / "serving" / "rec")) == [first, second]


@pytest.mark.parametrize("damage", ["saved_model.pb", "variables"])
def test_a_damaged_pushed_version_is_repaired(tmp_path, model, damage):
    version = push(tmp_path, model).get_string_custom_property("pushed_version")
    target = tmp_path / "serving" / "rec" / version / damage
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    repaired = push(tmp_path, model)
    assert repaired.get_int_custom_property("pushed") == 1
    new = repaired.get_string_custom_property("pushed_version")
    assert int(new) > int(version)
    assert (served(tmp_path, "rec", new), served(tmp_path, "rec_scann", new)) == (1.0, 2.0)


def test_failed_copy_leaves_served_versions_intact(tmp_path, model):
    version = push(tmp_path, model).get_string_custom_property("pushed_version")
    before = listing(tmp_path)
    saved_model(os.path.join(model.uri, "Format-Serving"), 4.0)
    scann = os.path.join(model.uri, "Format-Serving-ScaNN")
    os.symlink(os.path.join(scann, "does-not-exist"), os.path.join(scann, "broken"))
    with pytest.raises(Exception, match="does-not-exist|No such file"):
        push(tmp_path, model)
    assert listing(tmp_path) == before  # no new version, no leftover staging
    assert before["rec"] == before["rec_scann"] == [version]


def test_failure_between_the_two_renames_publishes_no_half_pair(tmp_path, model):
    """The brute-force root lives on another filesystem (tmpfs): its rename fails
    (EXDEV) after the ScaNN twin was renamed into place, which must be undone."""
    version = push(tmp_path, model).get_string_custom_property("pushed_version")
    other = f"/dev/shm/rec-{os.getpid()}-{time.time_ns()}"
    shutil.move(str(tmp_path / "serving" / "rec"), other)
    os.symlink(other, tmp_path / "serving" / "rec")
    try:
        saved_model(os.path.join(model.uri, "Format-Serving"), 5.0)
        with pytest.raises(Exception, match="cross-device"):
            push(tmp_path, model)
        assert listing(tmp_path) == {"rec": [version], "rec_scann": [version], STAGING_DIR: []}
        assert (served(tmp_path, "rec", version), served(tmp_path, "rec_scann", version)) == (
            1.0,
            2.0,
        )
    finally:
        shutil.rmtree(other)


def test_staging_left_by_a_killed_push_is_removed(tmp_path, model):
    stale = tmp_path / "serving" / STAGING_DIR / "123-killed"
    (stale / "brute_force").mkdir(parents=True)
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / "serving" / STAGING_DIR / "456-running"
    fresh.mkdir()
    push(tmp_path, model)
    assert sorted(os.listdir(tmp_path / "serving" / STAGING_DIR)) == ["456-running"]


def test_missing_scann_twin_is_a_clear_error(tmp_path, model):
    tf.io.gfile.rmtree(os.path.join(model.uri, "Format-Serving-ScaNN"))
    with pytest.raises(ValueError, match="has no serving model at .*Format-Serving-ScaNN"):
        push(tmp_path, model)
    assert listing(tmp_path) == {}


@pytest.mark.parametrize("recall", [0.9, None])
def test_a_scann_twin_below_its_recall_floor_is_not_pushed(tmp_path, model, recall):
    version = push(tmp_path, model).get_string_custom_property("pushed_version")
    saved_model(os.path.join(model.uri, "Format-Serving"), 6.0)
    saved_model(os.path.join(model.uri, "Format-Serving-ScaNN"), 7.0)
    if recall is None:
        os.remove(os.path.join(model.uri, "scann_gate.json"))  # no verdict: fail closed
    else:
        scann_gate(model, recall)
    pushed = push(tmp_path, model)
    new = pushed.get_string_custom_property("pushed_version")
    assert pushed.get_int_custom_property("pushed") == 1
    assert pushed.get_int_custom_property("scann_pushed") == 0
    reason = pushed.get_string_custom_property("scann_not_pushed_reason")
    assert ("0.9000 on 9 evaluation users" if recall else "no ScaNN recall verdict") in reason
    assert listing(tmp_path)["rec"] == [version, new]
    assert listing(tmp_path)["rec_scann"] == [version]  # the previous twin keeps serving
    assert served(tmp_path, "rec", new) == 6.0
