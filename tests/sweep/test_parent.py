"""common/sweep/parent.py on a real sqlite store: the parent run, and closing its children."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from common.base.tracking import get_or_create_experiment, prepare_store
from common.sweep.parent import (
    classifier_tags,
    close_interrupted_runs,
    close_orphan_runs,
    load_recorded_plugins,
    open_parent,
)


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prepare_store(uri)
    client = MlflowClient(uri)
    return uri, client, get_or_create_experiment(client, "exp", (tmp_path / "artifacts").as_uri())


def _child(client, exp_id, parent_id, status="running", finished=False):
    run = client.create_run(
        exp_id, tags={"mlflow.parentRunId": parent_id, "sweep.role": "trial", "trial_status": status}
    )
    if finished:
        client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def test_a_parent_is_opened_with_its_tags_and_params_and_reopened_on_resume(store):
    uri, client, exp_id = store
    parent = open_parent(uri, exp_id, "gan_ttur", None, {"sweep.space": "sweeps/gan_ttur.py"}, {"num_samples": 8})
    run = client.get_run(parent.run_id)
    assert run.info.run_name.startswith("sweep-gan_ttur-") and run.data.params == {"num_samples": "8"}
    assert run.data.tags["sweep.role"] == "parent" and run.data.tags["sweep.space"] == "sweeps/gan_ttur.py"
    parent.finish("KILLED")
    again = open_parent(uri, exp_id, "gan_ttur", parent.run_id, {}, {})
    assert again.run_id == parent.run_id and client.get_run(parent.run_id).info.status == "RUNNING"


def test_ctrl_c_ends_the_running_children_interrupted_and_leaves_the_rest(store):
    uri, client, exp_id = store
    parent = open_parent(uri, exp_id, "s", None, {}, {}).run_id
    other = open_parent(uri, exp_id, "t", None, {}, {}).run_id
    running, done = _child(client, exp_id, parent), _child(client, exp_id, parent, "completed", finished=True)
    elsewhere = _child(client, exp_id, other)
    close_interrupted_runs(client, exp_id, parent)
    status = lambda r: (client.get_run(r).info.status, client.get_run(r).data.tags["trial_status"])
    assert status(running) == ("KILLED", "interrupted") and status(done) == ("FINISHED", "completed")
    assert status(elsewhere) == ("RUNNING", "running") and client.get_run(parent).info.status == "KILLED"


def test_after_a_resume_the_children_left_running_or_interrupted_are_ended_as_orphans(store):
    uri, client, exp_id = store
    parent = open_parent(uri, exp_id, "s", None, {}, {}).run_id
    running, interrupted = _child(client, exp_id, parent), _child(client, exp_id, parent, "interrupted", finished=True)
    done = _child(client, exp_id, parent, "completed", finished=True)
    close_orphan_runs(client, exp_id, parent)
    for r in (running, interrupted):
        run = client.get_run(r)
        assert run.info.status == "KILLED" and run.data.tags["trial_status"] == "failed"
        assert run.data.tags["error"].startswith("orphaned")
    assert (
        client.get_run(done).data.tags["trial_status"] == "completed" and "error" not in client.get_run(done).data.tags
    )


def test_classifier_tags_say_which_classifier_scored_the_trials_and_how_well():
    tags = classifier_tags(
        {"name": "classifier-ab12"}, {"test_acc": 0.91234, "n_test": 256, "n_train": 512, "train_seconds": 3.6}
    )
    assert tags == {
        "classifier.name": "classifier-ab12",
        "classifier.test_acc": "0.9123",
        "classifier.n_test": "256",
        "classifier.n_train": "512",
        "classifier.train_seconds": "4",
    }


def test_recorded_plugins_are_read_from_the_parents_and_a_wrong_model_alias_is_left_to_the_caller(store):
    uri, client, exp_id = store
    open_parent(uri, exp_id, "s", None, {"plugins": "[]"}, {})
    assert load_recorded_plugins(uri, ["exp", "no-such-experiment"], "models:/nothing@best") == []
