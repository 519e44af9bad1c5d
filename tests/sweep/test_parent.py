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
    assert load_recorded_plugins(uri, ["exp", "no-such-experiment"], "models:/nothing@best") == ([], [])


EVIL = """
from pathlib import Path
Path({marker!r}).write_text("imported")  # what a module named by a rewritten tag could do on import
"""


def test_a_recorded_plugin_is_imported_only_on_the_users_word(store, tmp_path, capsys):
    import json
    import sys

    import run_sweep
    from common.trial.plugins import PluginError

    uri, client, exp_id = store
    marker = tmp_path / "was-imported"
    evil = tmp_path / "evil_plugin.py"
    evil.write_text(EVIL.format(marker=str(marker)))
    open_parent(uri, exp_id, "s", None, {"plugins": json.dumps([str(evil)])}, {})  # a rewritten tag
    assert load_recorded_plugins(uri, ["exp"]) == ([], [str(evil)]) and not marker.exists()
    assert run_sweep.main(["--report", "exp", "--tracking-uri", uri, "--out", str(tmp_path / "r")]) in (0, 1, 2)
    assert not marker.exists()  # --report did not import it
    assert f"note: the store names plugin(s) {evil}, not imported" in capsys.readouterr().err
    # named by the user (--plugin's recorded spec) or trusted: imported (it registers no family: refused)
    with pytest.raises(PluginError, match="registered no model family"):
        load_recorded_plugins(uri, ["exp"], allowed=[str(evil)])
    assert marker.read_text() == "imported"
    marker.unlink()
    sys.modules.pop("evil_plugin")  # another command, another process
    with pytest.raises(PluginError):
        load_recorded_plugins(uri, ["exp"], trust=True)
    assert marker.exists()


def test_a_plugin_file_changed_since_the_sweep_warns(store, tmp_path, monkeypatch):
    import json
    import sys
    import textwrap

    from common.trial.plugins import digests, load_plugins

    uri, client, exp_id = store
    path = tmp_path / "tinyfam.py"
    path.write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass
            from typing import ClassVar
            from common.api import Family, register
            from common.trial.config import DCGANConfig
            from common.trial.tasks.dcgan import DCGANTask

            @dataclass(frozen=True)
            class TinyFamConfig(DCGANConfig):
                family: ClassVar[str] = "tinyfam"

            register(Family("tinyfam", TinyFamConfig, DCGANTask, "TinyFam", curve_metrics=(), decodes=False))
            """
        )
    )
    specs = load_plugins([str(path)])
    tags = {"plugins": json.dumps(specs), "plugins.sha256": json.dumps(digests(specs))}
    open_parent(uri, exp_id, "s", None, tags, {})
    path.write_text(path.read_text() + "\n# edited after the sweep\n")
    monkeypatch.delitem(sys.modules, "tinyfam")  # a new process: the file is imported again
    with pytest.warns(UserWarning, match="has changed since the sweep"):
        assert load_recorded_plugins(uri, ["exp"], trust=True) == (specs, [])
