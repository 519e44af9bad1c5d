"""mlflow_server: the launcher starts a real ``mlflow server`` on 127.0.0.1, serves artifacts,
refuses bad settings with one clear line, and stops its whole process group."""

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mlflow_server import MlflowServer, ServerConfig, ServerError, free_port, port_in_use

REPO = Path(__file__).resolve().parents[1]


def _cfg(tmp_path, **kw) -> ServerConfig:
    return ServerConfig(
        backend_store_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifacts_dir=str(tmp_path / "artifacts"),
        port=free_port(),
        workers=1,
        **kw,
    )


def _get(url: str, auth: tuple[str, str] | None = None, headers: dict | None = None, data: bytes | None = None) -> int:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_server_serves_runs_and_artifacts_and_stops(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    with MlflowServer(_cfg(tmp_path), log_file=tmp_path / "server.log") as server:
        assert server.healthy() and port_in_use("127.0.0.1", server.cfg.port)
        client = MlflowClient(server.url)
        exp = client.create_experiment("e")
        run = client.create_run(exp)
        client.log_metric(run.info.run_id, "m", 1.5, step=3)
        (tmp_path / "fig.png").write_bytes(b"png")
        client.log_artifact(run.info.run_id, str(tmp_path / "fig.png"), "figures")
        # Uploaded through the server (mlflow-artifacts:), stored in its artifacts folder.
        assert client.get_run(run.info.run_id).info.artifact_uri.startswith("mlflow-artifacts:")
        assert list((tmp_path / "artifacts").rglob("fig.png"))
        assert [m.value for m in client.get_metric_history(run.info.run_id, "m")] == [1.5]
        mlflow.set_tracking_uri(server.url)
        pid = server.proc.pid
    assert not port_in_use("127.0.0.1", server.cfg.port)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole group (workers too) is gone


def test_taken_port_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        cfg = ServerConfig(backend_store_uri=f"sqlite:///{tmp_path / 'x.db'}", port=s.getsockname()[1])
        with pytest.raises(ServerError, match="already in use"):
            MlflowServer(cfg).start()
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"host": "0.0.0.0"}, "--expose"),
        ({"host": "0.0.0.0", "expose": True}, "--expose without --auth .* --no-auth"),
        ({"auth": True, "no_auth": True}, "contradict"),
        ({"host": "0.0.0.0", "expose": True, "no_auth": True, "allowed_hosts": "a.org, *"}, "DNS-rebinding"),
        ({"port": 70000}, "--port"),
        ({"backend_store_uri": "ftp://x"}, "--backend-store-uri"),
    ],
)
def test_bad_settings(kw, match):
    with pytest.raises(ServerError, match=match):
        ServerConfig(**kw)


def test_an_exposed_server_keeps_mlflows_host_and_cors_guards(tmp_path):
    """Exposed (127.0.0.2 is loopback on Linux but not in LOOPBACK, so it takes the exposed path):
    a foreign Host header is refused (DNS rebinding), the bind address is accepted, and a write from a
    foreign browser origin is refused unless --cors-allowed-origins lists it."""
    cfg = _cfg(tmp_path, host="127.0.0.2", expose=True, no_auth=True, cors_allowed_origins="http://ok.example")
    with MlflowServer(cfg, log_file=tmp_path / "server.log") as server:
        api = f"{server.url}/api/2.0/mlflow/experiments/search?max_results=5"
        assert _get(api) == 200
        assert _get(api, headers={"Host": "evil.example.com"}) == 403
        assert _get(api, headers={"Host": "evil.example.com:80"}) == 403
        create = f"{server.url}/api/2.0/mlflow/experiments/create"

        def post(origin, name):
            return _get(
                create,
                headers={"Origin": origin, "Content-Type": "application/json"},
                data=json.dumps({"name": name}).encode(),
            )

        assert post("http://evil.example", "e1") == 403
        assert post("http://ok.example", "e2") == 200


def test_auth_needs_credentials_from_the_environment(tmp_path, monkeypatch):
    for var in (
        "MLFLOW_AUTH_ADMIN_USERNAME",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
    ):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ServerError, match="MLFLOW_AUTH_ADMIN_USERNAME"):
        MlflowServer(_cfg(tmp_path, auth=True)).start()
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "short")
    with pytest.raises(ServerError, match="at least 12 characters"):
        MlflowServer(_cfg(tmp_path, auth=True)).start()


def test_basic_auth_rejects_anonymous_and_accepts_the_admin(tmp_path, monkeypatch):
    user, password = "admin", "s3cret-" + os.urandom(4).hex()
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_USERNAME", user)
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", password)
    with MlflowServer(_cfg(tmp_path, auth=True), log_file=tmp_path / "server.log") as server:
        api = f"{server.url}/api/2.0/mlflow/experiments/search?max_results=5"
        assert _get(api) == 401
        assert _get(api, (user, "wrong")) == 401
        assert _get(api, (user, password)) == 200
    assert password not in (tmp_path / "server.log").read_text(errors="replace")  # no secret in logs
    assert not any(password in p.read_text(errors="ignore") for p in tmp_path.rglob("*.ini"))


def test_cli_prints_the_url_and_stops_on_sigterm(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow_server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--artifacts-dir",
            str(tmp_path / "a"),
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        assert _get(f"http://127.0.0.1:{port}/health") == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.5)
    assert not port_in_use("127.0.0.1", port)


@pytest.mark.parametrize(
    "args, says", [(["--host", "0.0.0.0"], "--expose"), (["--host", "0.0.0.0", "--expose"], "--no-auth")]
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, args, says):
    proc = subprocess.run(
        [sys.executable, "-m", "mlflow_server", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and says in lines[0]
    assert json.dumps(sorted(p.name for p in tmp_path.iterdir())) == "[]"


@pytest.mark.faults  # a sweep under load or killed midway: minutes, in make test-faults
def test_sweep_logs_over_http_and_survives_the_server_dying_midway(ray_session, tmp_path, capsys):
    """Trials log through the server; killing it mid-sweep does not kill the sweep, and every
    epoch's metrics are either in MLflow or kept in the trial's mlflow_unlogged.jsonl."""
    import threading

    from mlflow.tracking import MlflowClient

    from common.sweep.driver import SweepOptions
    from trainables.sweep import run

    space = tmp_path / "two.py"
    space.write_text(
        "from optuna.distributions import CategoricalDistribution\n"
        "space = {'lr_ratio': CategoricalDistribution([1.0, 2.0])}\n"
        "family = 'dcgan'\nmetric = 'val_classifier_fd'\nmode = 'min'\nnum_samples = 2\nmax_epochs = 4\n"
        "scheduler = None\nresources = {'cpu': 1, 'gpu': 0}\n"
    )
    epochs = 4
    cfg = _cfg(tmp_path)
    server = MlflowServer(cfg, log_file=tmp_path / "server.log").start()
    opts = SweepOptions(
        space=str(space),
        data="synthetic",
        tracking_uri=server.url,
        eval_n=0,
        report=False,
        storage=str(tmp_path / "ray_results"),
        experiment="down",
        optuna_storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        overrides=(("eval_samples", "64"), ("batch_size", "32"), ("g_channels", "64"), ("val_size", "128")),
    )
    out: dict = {}
    sweep = threading.Thread(target=lambda: out.update(result=run(opts)))
    sweep.start()
    try:
        client, deadline = MlflowClient(server.url), time.monotonic() + 300
        while time.monotonic() < deadline:  # both trials have logged an epoch and uploaded best.pt over HTTP
            exp = client.get_experiment_by_name("down")
            runs = client.search_runs([exp.experiment_id], "tags.`sweep.role` = 'trial'") if exp else []
            if len(runs) == 2 and all(client.list_artifacts(r.info.run_id, "checkpoints") for r in runs):
                break
            time.sleep(0.5)
        else:
            pytest.fail("trials never logged over HTTP")
        assert list((tmp_path / "artifacts").rglob("best.pt"))  # stored by the server, not by the workers
    finally:
        server.stop()
    sweep.join(600)
    assert not sweep.is_alive() and out["result"].tracking_error  # finished, said why the end stage was skipped
    with MlflowServer(cfg) as again:  # same store, back up: count what arrived and what was kept
        client = MlflowClient(again.url)
        kept = [
            json.loads(line)
            for f in (tmp_path / "ray_results").rglob("mlflow_unlogged.jsonl")
            for line in f.read_text().splitlines()
        ]
        assert kept, "the server died before the trials ended, so something must have been kept"
        for r in runs:
            logged = {m.step for m in client.get_metric_history(r.info.run_id, "g_loss")}
            unlogged = {
                k["step"]
                for k in kept
                if k["run_id"] == r.info.run_id and k["kind"] == "metrics" and "g_loss" in k["values"]
            }
            assert logged.isdisjoint(unlogged) and logged | unlogged == set(range(1, epochs + 1)), (logged, unlogged)
        import run_sweep  # the audit says what is still waiting to be logged

        assert (
            run_sweep.main(["--check", "down", "--tracking-uri", again.url, "--storage", str(tmp_path / "ray_results")])
            == 1
        )
        row = next(
            ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("nothing waits in mlflow_unlogged")
        )
        assert not row.rstrip().endswith(" ok"), row
