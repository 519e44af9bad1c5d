"""A full disk, a read-only disk and a file where a folder should be: one line, exit 2, nothing started.

The full and read-only disks are real: small tmpfs mounts (this needs root and mount rights,
which the CI container has; elsewhere those two tests skip and say why).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.sweep.storage import StorageError, check_writable

REPO = Path(__file__).resolve().parents[2]
ARGV = [
    sys.executable,
    str(REPO / "run_sweep.py"),
    "--space",
    str(REPO / "sweeps" / "gan_ttur.py"),
    "--data",
    "synthetic",
    "--set",
    "val_size=128",
]


def _cli(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONPATH=str(REPO), VAEGAN_CACHE=str(cwd.parent / "cache"))
    return subprocess.run([*ARGV, *extra], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    return lines[0]


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size, ro=False) -> a fresh tmpfs folder; unmounted afterwards."""
    mounts = []

    def mount(size: str, ro: bool = False) -> Path:
        point = tmp_path / f"mnt{len(mounts)}"
        point.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()[:100]}): needs root with mount rights")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _fill(folder: Path) -> None:
    with open(folder / "ballast", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:  # ENOSPC: the disk is full now
            pass


def test_a_full_disk_for_the_results_folder_is_one_line_naming_it(tmp_path, tmpfs):
    disk = tmpfs("1m")
    _fill(disk)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    line = _one_error_line(_cli(cwd, "--storage", str(disk / "rr")))
    assert str(disk / "rr") in line and "No space left on device" in line and "--storage" in line
    assert not list(cwd.iterdir()) and sorted(p.name for p in disk.iterdir()) == ["ballast"]


def test_a_nearly_full_disk_is_refused_before_the_sweep_starts(tmp_path, tmpfs):
    disk = tmpfs("8m")  # writable, but below the 100 MiB a sweep needs
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    line = _one_error_line(_cli(cwd, "--storage", str(disk / "rr")))
    assert str(disk / "rr") in line and "MiB free" in line
    assert not list(cwd.iterdir()) and not list(disk.iterdir())


def test_a_read_only_artifact_folder_is_one_line_naming_it(tmp_path, tmpfs):
    disk = tmpfs("1m", ro=True)  # the working folder: mlflow.db is fine elsewhere, mlartifacts/ is not
    line = _one_error_line(
        _cli(
            disk,
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--storage",
            str(tmp_path / "rr"),
            "--out",
            str(tmp_path / "report"),
        )
    )
    assert "MLflow artifact folder" in line and str(disk / "mlartifacts") in line and "Read-only" in line
    assert not (tmp_path / "rr").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("flag", ["--storage", "--out"])
def test_a_file_where_a_folder_should_be_is_one_line(flag, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (tmp_path / "a_file").write_text("x")
    line = _one_error_line(_cli(cwd, flag, str(tmp_path / "a_file" / "sub")))
    assert "is a file, not a folder" in line and str(tmp_path / "a_file") in line
    assert not list(cwd.iterdir())


def test_check_writable_leaves_nothing_behind(tmp_path):
    check_writable(tmp_path / "new" / "deeper", "a folder", "fix it", min_free_mb=1)
    assert not list(tmp_path.iterdir())  # probed in the nearest existing folder, removed again
    with pytest.raises(StorageError, match="MiB free"):
        check_writable(tmp_path, "a folder", "fix it", min_free_mb=10**9)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_sweep_storage_reads_writes_and_finds_the_latest_sweep(where, tmp_path, request):
    """The same API over a local folder and a real S3-compatible server (moto on 127.0.0.1)."""
    from common.sweep.storage import SweepStorage

    spec = str(tmp_path / "rr") if where == "local" else (request.getfixturevalue("s3") and "s3://sweeps/unit")
    store = SweepStorage(spec)
    assert store.remote == (where == "s3") and (store.tune_filesystem is None) == (where == "local")
    store.check()
    assert store.latest("exp_space", "sweep.json") is None
    for name in ("exp_space_20260101-000000", "exp_space_20260102-000000", "other_space_20260103-000000"):
        store.makedirs(name)
        store.write_text(f"{name}/sweep.json", f'{{"parent_run_id": "{name}"}}')
    store.makedirs("exp_space_20260104-000000")  # no sweep.json: not a sweep
    assert store.latest("exp_space", "sweep.json") == "exp_space_20260102-000000"
    assert store.read_text("exp_space_20260102-000000/sweep.json") == '{"parent_run_id": "exp_space_20260102-000000"}'
    assert store.exists("exp_space_20260101-000000") and not store.exists("nothing_here")
    assert store.show("a/b") == f"{spec}/a/b"


def test_unwritable_object_storage_is_one_clear_error(s3):
    from common.sweep.storage import StorageError, SweepStorage

    with pytest.raises(StorageError, match="cannot write to --storage s3://no-such-bucket"):
        SweepStorage("s3://no-such-bucket/x").check()


# ---- the disk fills mid-sweep (after the start-time check passed) -------------------------
FILL_SPACE = "runs = [{'family': 'vae', 'max_epochs': 4, 'seed': s} for s in (1, 2)]\nscheduler = None\n"
FILL_ARGV = [
    sys.executable,
    str(REPO / "run_sweep.py"),
    "--space",
    "fill.py",
    "--data",
    "synthetic",
    "--eval-n",
    "0",
    "--no-report",
    "--cpus-per-trial",
    "1",
    "--set",
    "batch_size=16",
    "--set",
    "eval_samples=64",
    "--set",
    "probe_every=0",
    "--set",
    "val_size=128",
    "--set",
    "base_channels=8",
]


@pytest.mark.faults
def test_a_disk_filling_mid_sweep_stops_it_with_one_line_and_resume_finishes_it(tmpfs, tmp_path):
    import time

    from mlflow.tracking import MlflowClient

    disk = tmpfs("120m")  # the store, the artifacts and Tune's checkpoints all live here
    (disk / "fill.py").write_text(FILL_SPACE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONPATH=str(REPO), VAEGAN_CACHE=str(tmp_path / "cache"), VAEGAN_MIN_FREE_MB="1")
    proc = subprocess.Popen(FILL_ARGV, cwd=disk, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not list(disk.glob("ray_results/*/*/*/checkpoint_*")):
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep ended before the disk could be filled"
    _fill(disk)  # 1. the disk fills during epoch 2
    _, err = proc.communicate(timeout=300)
    last = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert proc.returncode == 1 and last.startswith("error: no space left on the device") and "--resume" in last, err[
        -3000:
    ]

    (disk / "ballast").unlink()  # 2. space is freed, and the same command with --resume finishes
    resumed = subprocess.run([*FILL_ARGV, "--resume"], cwd=disk, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{disk / 'mlflow.db'}")
    trials = client.search_runs([client.get_experiment_by_name("fill").experiment_id], "tags.`sweep.role` = 'trial'")
    live = [t for t in trials if t.data.tags["trial_status"] != "failed"]  # failed: a run whose trial restarted
    assert sorted(t.data.tags["trial_status"] for t in live) == ["completed", "completed"], [
        (t.data.tags["trial_status"], t.data.tags.get("error")) for t in trials
    ]  # from scratch (no checkpoint yet)
    for t in live:
        assert sorted(m.step for m in client.get_metric_history(t.info.run_id, "val_mse_kl")) == [1, 2, 3, 4]
    audit = subprocess.run(
        [sys.executable, str(REPO / "run_sweep.py"), "--check", "fill"],
        cwd=disk,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr[-2000:]


def test_a_trial_error_saying_the_disk_is_full_stops_the_sweep(tmp_path):
    from common.sweep import storage

    (tmp_path / "other.txt").write_text("Failure # 1\nValueError: boom\n")
    storage.check_error_file(str(tmp_path / "other.txt"))  # any other error: Tune's retries as before
    storage.check_error_file(None)
    storage.check_error_file(str(tmp_path / "missing.txt"))
    (tmp_path / "full.txt").write_text("Failure # 1\nsqlite3.OperationalError: database or disk is full\nmore\n")
    with pytest.raises(storage.NoSpaceLeft, match="^sqlite3.OperationalError: database or disk is full$"):
        storage.check_error_file(str(tmp_path / "full.txt"))
    assert storage.no_space_line("OSError: [Errno 28] No space left on device: 'x'") == (
        "OSError: [Errno 28] No space left on device: 'x'"
    )


def test_a_fit_knows_ctrl_c_from_the_trials_tune_started_but_never_saw_end():
    from types import SimpleNamespace

    from common.sweep.tuning import TrialEnds

    ends = TrialEnds()
    ends.setup(total_num_samples=3)
    assert TrialEnds.active is ends
    trial = lambda i: SimpleNamespace(trial_id=f"t{i}")
    for i in range(3):
        ends.on_trial_start(0, [], trial(i))
    ends.on_trial_complete(0, [], trial(0))
    ends.on_trial_error(0, [], trial(1))
    assert ends.interrupted(3)  # t2 started and never ended: Tune caught SIGINT and returned
    ends.on_trial_complete(0, [], trial(2))
    assert not ends.interrupted(3)
    assert ends.interrupted(2)  # fewer trials than asked for: stopped before the searcher made the rest
