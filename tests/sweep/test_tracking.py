"""MLflow plumbing: concurrent writers on the embedded sqlite store lose nothing."""

from __future__ import annotations

import multiprocessing as mp

import pytest
from mlflow.tracking import MlflowClient

from common.base.tracking import TrialRun, get_or_create_experiment, prepare_store, resolve_tracking_uri

POINTS = 30


def _writer(uri: str, run_id: str) -> None:
    run = TrialRun(MlflowClient(uri), run_id)
    for step in range(1, POINTS + 1):
        run.log_metrics({"a": step, "b": -step}, step=step)
    run.set_tags({"done": "yes"})


def test_eight_processes_logging_at_once_lose_no_points(tracking_uri):
    prepare_store(tracking_uri)
    exp = get_or_create_experiment(MlflowClient(tracking_uri), "concurrency", None)
    run_ids = [TrialRun.create(tracking_uri, exp, f"w{i}", {}).run_id for i in range(8)]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(tracking_uri, r)) for r in run_ids]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0] * 8
    client = MlflowClient(tracking_uri)
    for r in run_ids:
        assert [m.step for m in client.get_metric_history(r, "a")] == list(range(1, POINTS + 1))
        assert len(client.get_metric_history(r, "b")) == POINTS
        assert client.get_run(r).data.tags["done"] == "yes"


def test_default_uri_is_sqlite_in_the_working_directory(workdir, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None) == f"sqlite:///{workdir / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri(None) == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("sqlite:///x.db") == f"sqlite:///{workdir / 'x.db'}"  # trials run elsewhere
    assert resolve_tracking_uri("sqlite:///a/x.db?timeout=9") == f"sqlite:///{workdir / 'a' / 'x.db'}?timeout=9"
    assert resolve_tracking_uri("sqlite:////abs/x.db") == "sqlite:////abs/x.db"


def test_urls_are_logged_with_their_password_masked():

    from common.base.tracking import TrackingError, check_tracking_uri, redact

    assert redact("postgresql://me:s3cret@db:5432/optuna") == "postgresql://me:***@db:5432/optuna"
    assert redact("sqlite:////tmp/optuna.db") == "sqlite:////tmp/optuna.db"
    with pytest.raises(TrackingError) as err:  # port 9 refuses at once
        check_tracking_uri("http://me:s3cret@127.0.0.1:9")
    assert "s3cret" not in str(err.value) and "me:***@127.0.0.1:9" in str(err.value)


def test_the_ui_link_opens_the_model_training_view_without_leaking_a_password():
    from common.base.tracking import ui_link

    assert (
        ui_link("http://me:s3cret@host:5000/", "7")
        == "http://me:***@host:5000/#/experiments/7?workflowType=machine_learning"
    )
    local = ui_link("sqlite:///mlflow.db", "1")
    assert local.startswith("http://127.0.0.1:5000/#/experiments/1?workflowType=machine_learning")
    assert "mlflow_server --backend-store-uri sqlite:///mlflow.db" in local


def test_two_processes_preparing_one_new_store_at_once_both_succeed(tmp_path):
    """The schema migration of a new sqlite file runs under a file lock."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=prepare_store, args=(uri,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0] * 3
    assert MlflowClient(uri).search_experiments()  # a usable store


def test_dataset_digests_follow_the_images_and_the_rows():
    from common.base.run_context import dataset_inputs

    def digests(content_hash, val_rows):
        return [i.dataset.digest for i in dataset_inputs("synthetic", content_hash, {"train": [0, 1], "val": val_rows})]

    assert digests("a", [2, 3]) == digests("a", [2, 3])
    assert digests("a", [2, 3])[1] != digests("a", [2, 4])[1] and digests("a", [2, 3])[0] == digests("a", [2, 4])[0]
    assert digests("a", [2, 3])[0] != digests("b", [2, 3])[0]


def test_an_unreachable_tracking_server_is_asked_once_within_the_stated_timeout(monkeypatch):
    import requests

    from common.base.tracking import TrackingError, check_tracking_uri

    calls = []

    def get(url, timeout):
        calls.append((url, timeout))
        raise requests.ConnectionError("refused")

    monkeypatch.setattr(requests, "get", get)
    with pytest.raises(TrackingError, match="unreachable"):
        check_tracking_uri("http://127.0.0.1:9/")
    assert calls == [("http://127.0.0.1:9/health", 5.0)]


def test_retry_is_the_one_layer_for_a_database_store_and_leaves_an_http_server_to_mlflows(monkeypatch):
    from common.base import tracking

    clock, sleeps, calls = [0.0], [], []

    def sleep(s):
        sleeps.append(s)
        clock[0] += s

    def down():
        calls.append(1)
        raise RuntimeError("database is locked")

    monkeypatch.setattr(tracking.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(tracking.time, "sleep", sleep)
    with pytest.raises(RuntimeError):
        tracking.retry(down, "log_batch", "http://127.0.0.1:5000")
    assert len(calls) == 1 and not sleeps  # MLflow's own HTTP retries ran inside the call
    calls.clear()
    with pytest.warns(UserWarning, match="retrying"), pytest.raises(RuntimeError):
        tracking.retry(down, "log_batch", "sqlite:///x.db", budget_s=30.0)
    assert 20.0 < sum(sleeps) <= 30.0 and len(calls) == len(sleeps) + 1  # backoff, within the stated budget
    flaky = iter([RuntimeError("locked"), "ok"])

    def once_then_ok():
        value = next(flaky)
        if isinstance(value, Exception):
            raise value
        return value

    with pytest.warns(UserWarning):
        assert tracking.retry(once_then_ok, "log_batch", "postgresql://h/db") == "ok"


def test_the_ui_hint_names_the_running_interpreter(tmp_path, monkeypatch):
    import sys

    from common.base.tracking import ui_link

    monkeypatch.setattr(sys, "executable", str(tmp_path / "env" / "bin" / "python3"))
    monkeypatch.chdir(tmp_path)
    assert "(start the UI: env/bin/python3 -m mlflow_server --backend-store-uri sqlite:///x.db)" in ui_link(
        "sqlite:///x.db", "1"
    )
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # outside the environment's folder: the absolute path
    assert f"start the UI: {tmp_path}/env/bin/python3 -m" in ui_link("sqlite:///x.db", "1")
