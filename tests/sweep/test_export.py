"""common/sweep/export.py: ``--export`` writes each trial's file as Tune ends it, and every finished
trial's again after the end stage (tests/sweep/test_driver.py checks the latter on a real sweep)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from common.sweep.export import Exporter
from common.sweep.tuning import MlflowStatusCallback


def _running_trial(uri: str) -> str:
    """A trial run as a trial leaves it while Tune still runs it: status running, one epoch logged."""
    client = MlflowClient(uri)
    exp = client.create_experiment("study")
    parent = client.create_run(exp, tags={"sweep.role": "parent"}).info.run_id
    client.log_param(parent, "metric", "val_bpd")
    client.log_param(parent, "mode", "min")
    tags = {"sweep.role": "trial", "mlflow.parentRunId": parent, "family": "vae", "trial_status": "running"}
    rid = client.create_run(exp, tags=tags).info.run_id
    client.log_param(rid, "family", "vae")
    client.log_metric(rid, "val_bpd", 5.5, step=1)
    return rid


@pytest.mark.parametrize("epoch, status", [(3, "completed"), (1, "stopped")])
def test_a_trial_tune_ends_is_closed_then_exported_at_once(tmp_path, monkeypatch, epoch, status):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    rid = _running_trial(uri)
    # fit_family sets the exporter of the fit in progress on the class: a restored Tuner's callbacks read it too
    monkeypatch.setattr(MlflowStatusCallback, "exporter", Exporter(str(tmp_path / "results"), "study"))
    callback = MlflowStatusCallback(uri, 3)
    callback.on_trial_complete(
        0, [], SimpleNamespace(trial_id="t0", last_result={"mlflow_run_id": rid, "epoch": epoch})
    )
    (path,) = (tmp_path / "results" / "study").glob("*.json")
    record = json.loads(path.read_text())
    assert path.name == f"vae-{rid[:8]}.json" and record["status"] == status and record["machine"] is None
    assert record["objective"] == {"metric": "val_bpd", "mode": "min", "per_epoch": {"1": 5.5}}


def test_an_export_that_fails_warns_and_the_trial_is_still_closed(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    rid = _running_trial(uri)
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setattr(MlflowStatusCallback, "exporter", Exporter(str(tmp_path / "a_file"), "study"))
    callback = MlflowStatusCallback(uri, 3)
    with pytest.warns(UserWarning, match=f"could not export trial run {rid}"):
        callback.on_trial_complete(
            0, [], SimpleNamespace(trial_id="t0", last_result={"mlflow_run_id": rid, "epoch": 3})
        )
    run = MlflowClient(uri).get_run(rid)
    assert run.data.tags["trial_status"] == "completed" and run.info.status == "FINISHED"


def test_the_export_is_a_function_of_the_store_and_names_where_the_trial_ran_from_its_tags(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    rid = _running_trial(uri)
    client = MlflowClient(uri)
    where = {
        "trial_status": "completed",
        "machine": "the trial's node",
        "cpu_flags": "avx2 avx512f",
        "threads": "1",
        "precision_used": "fp32",
        "deterministic_used": "on",
        "device": "cpu",
        "sweep.preset": "slides",
        "selected_by": "the search s (parent run p), best on val_bpd",
    }
    for k, v in where.items():
        client.set_tag(rid, k, v)
    Exporter(str(tmp_path / "a"), "study").trial(client, rid)
    Exporter(str(tmp_path / "b"), "study").experiment_runs(uri)  # another exporter, the same store
    a, b = ((tmp_path / d / "study" / f"vae-{rid[:8]}.json").read_text() for d in "ab")
    assert a == b  # nothing of the exporting machine or its command line
    record = json.loads(a)
    assert {
        k: record[k] for k in ("machine", "cpu_flags", "threads", "precision_used", "deterministic_used", "device")
    } == {k: where[k] for k in ("machine", "cpu_flags", "threads", "precision_used", "deterministic_used", "device")}
    assert record["preset"] == "slides" and record["selected_by"] == where["selected_by"]
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.warns(UserWarning, match="could not export the runs of study"):
        Exporter(str(tmp_path / "a_file"), "study").experiment_runs(uri)
