"""mlflow_server: the launcher starts a real ``mlflow server`` on 127.0.0.1, serves artifacts,
refuses bad settings with one clear line, and stops its whole process group."""

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

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


def test_sweep_logs_over_http_and_survives_the_server_dying_midway(ray_session, tmp_path, capsys):
    """Trials log through the server; killing it mid-sweep does not kill the sweep, and every
    epoch's metrics are either in MLflow or kept in the trial's mlflow_unlogged.jsonl."""
    import threading

    from mlflow.tracking import MlflowClient

    from common.sweep.driver import SweepOptions, run

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
    sweep = threading.Thread(target=lambda: out.update(run(opts)))
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
    assert not sweep.is_alive() and "tracking_error" in out  # finished, said why the end stage was skipped
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


# ---- PostgreSQL (Debian's package; `make test` installs it) ------------------------------
def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class Postgres(str):
    """The server's URI (append /mlflow or /optuna), and ``restart()``: a real ``pg_ctl restart``."""

    restart: Callable[[], None]


@pytest.fixture
def postgres(tmp_path):
    """A throwaway PostgreSQL on 127.0.0.1 in a temp folder, databases mlflow and optuna; stopped
    afterwards. initdb refuses to run as root, so the cluster belongs to the `postgres` user."""
    import pwd
    import shutil

    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (make test installs Debian's postgresql)")
    data = Path(tempfile.mkdtemp(prefix="pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(data, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    run = lambda *cmd: subprocess.run(as_user + list(cmd), check=True, capture_output=True, text=True, timeout=120)
    run(str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    run(
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data / "db"),
        "-l",
        str(data / "log"),
        "-w",
        "-o",
        f"-p {port} -h 127.0.0.1 -k {data} -c max_connections=200",
        "start",
    )
    try:
        for db in ("mlflow", "optuna"):  # one database each: both keep an alembic_version table
            run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", db)
        server = Postgres(f"postgresql://postgres@127.0.0.1:{port}")
        server.restart = lambda: run(
            str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "log"), "-m", "fast", "-w", "restart"
        )
        yield server
    finally:
        subprocess.run(
            as_user + [str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(data, ignore_errors=True)


def test_eight_concurrent_trials_log_every_point_to_postgresql_through_the_server(ray_session, postgres, tmp_path):
    from mlflow.tracking import MlflowClient

    from common.sweep.driver import SweepOptions, run

    epochs, trials = 2, 8
    cfg = ServerConfig(
        backend_store_uri=f"{postgres}/mlflow", artifacts_dir=str(tmp_path / "artifacts"), port=free_port()
    )
    with MlflowServer(cfg, log_file=tmp_path / "server.log") as server:
        opts = SweepOptions(
            space=str(REPO / "sweeps" / "vae_beta.py"),
            data="synthetic",
            tracking_uri=server.url,
            num_samples=trials,
            max_epochs=epochs,
            cpus_per_trial=0.25,
            eval_n=0,
            report=False,
            storage=str(tmp_path / "ray_results"),
            experiment="pg",
            optuna_storage=f"{postgres}/optuna",  # the searcher's study: same server
            overrides=(
                ("eval_samples", "32"),
                ("batch_size", "64"),
                ("base_channels", "8"),
                ("val_size", "128"),
                ("hidden_dim", "32"),
                ("probe_every", "0"),
            ),
        )
        run(opts)
        client = MlflowClient(server.url)
        exp = client.get_experiment_by_name("pg")
        children = client.search_runs([exp.experiment_id], "tags.`sweep.role` = 'trial'")
        assert len(children) == trials
        # ASHA's grace period (2) equals max_epochs here, so every trial runs all its epochs.
        assert all(c.data.tags["trial_status"] == "completed" for c in children)
        per_epoch = ["train_loss", "val_mse_kl", "val_recon", "val_kl", "val_classifier_fd", "epoch_time_s"]
        expected = trials * epochs * len(per_epoch)
        stored = sum(len(client.get_metric_history(c.info.run_id, k)) for c in children for k in per_epoch)
        assert stored == expected  # no point lost, none doubled
        for c in children:
            assert sorted(m.step for m in client.get_metric_history(c.info.run_id, "val_mse_kl")) == [1, 2]
    import optuna

    (summary,) = optuna.get_all_study_summaries(storage=f"{postgres}/optuna")
    assert summary.n_trials == trials


@pytest.mark.faults
def test_a_postgresql_restart_under_a_sweep_loses_nothing(ray_session, postgres, tmp_path):
    """PostgreSQL (MLflow's store behind the server, and Optuna's study) restarts while trials log
    through ``python -m mlflow_server``: the sweep finishes, every epoch is in MLflow exactly once,
    the study holds every trial, and ``--check`` passes."""
    import threading

    import optuna
    from mlflow.tracking import MlflowClient

    import run_sweep
    from common.sweep.driver import SweepOptions, run

    epochs, trials = 2, 4  # ASHA's grace period is 2: every trial runs both epochs
    cfg = ServerConfig(
        backend_store_uri=f"{postgres}/mlflow", artifacts_dir=str(tmp_path / "artifacts"), port=free_port()
    )
    with MlflowServer(cfg, log_file=tmp_path / "server.log") as server:
        client, restarted, done = MlflowClient(server.url), [], threading.Event()

        def restart_once_an_epoch_is_logged():
            while not done.is_set() and not restarted:
                exp = client.get_experiment_by_name("pg_restart")
                runs = client.search_runs([exp.experiment_id], "metrics.val_mse_kl > -1") if exp else []
                if runs:
                    postgres.restart()
                    restarted.append(time.time())
                time.sleep(0.5)

        watcher = threading.Thread(target=restart_once_an_epoch_is_logged, daemon=True)
        watcher.start()
        opts = SweepOptions(
            space=str(REPO / "sweeps" / "vae_beta.py"),
            data="synthetic",
            tracking_uri=server.url,
            num_samples=trials,
            max_epochs=epochs,
            cpus_per_trial=0.5,
            eval_n=0,
            report=False,
            storage=str(tmp_path / "ray_results"),
            experiment="pg_restart",
            optuna_storage=f"{postgres}/optuna",
            overrides=(
                ("eval_samples", "32"),
                ("batch_size", "64"),
                ("base_channels", "8"),
                ("val_size", "128"),
                ("hidden_dim", "32"),
                ("probe_every", "0"),
            ),
        )
        try:
            run(opts)
        finally:
            done.set()
            watcher.join(30)
        assert restarted, "the sweep ended before PostgreSQL could be restarted under it"
        children = client.search_runs(
            [client.get_experiment_by_name("pg_restart").experiment_id], "tags.`sweep.role` = 'trial'"
        )
        assert len(children) == trials and all(c.data.tags["trial_status"] == "completed" for c in children)
        for c in children:  # every epoch once: none lost in the restart, none re-sent twice
            assert sorted(m.step for m in client.get_metric_history(c.info.run_id, "val_mse_kl")) == [1, 2]
        assert (
            run_sweep.main(
                ["--check", "pg_restart", "--tracking-uri", server.url, "--storage", str(tmp_path / "ray_results")]
            )
            == 0
        )
    (summary,) = optuna.get_all_study_summaries(storage=f"{postgres}/optuna")
    assert summary.n_trials == trials
