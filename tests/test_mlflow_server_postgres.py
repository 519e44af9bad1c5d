"""mlflow_server with PostgreSQL behind it (Debian's package; ``make test`` installs it): eight concurrent
trials log every point through the server, and a PostgreSQL restart under a sweep loses nothing."""

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import pytest

from mlflow_server import MlflowServer, ServerConfig, free_port

REPO = Path(__file__).resolve().parents[1]


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


@pytest.mark.faults  # a sweep under load or killed midway: minutes, in make test-faults
def test_eight_concurrent_trials_log_every_point_to_postgresql_through_the_server(ray_session, postgres, tmp_path):
    from mlflow.tracking import MlflowClient

    from common.sweep.driver import SweepOptions
    from trainables.sweep import run

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
    from common.sweep.driver import SweepOptions
    from trainables.sweep import run

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
