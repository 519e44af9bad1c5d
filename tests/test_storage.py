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

from common.storage import StorageError, check_writable

REPO = Path(__file__).resolve().parents[1]
ARGV = [sys.executable, str(REPO / "run_sweep.py"), "--space", str(REPO / "sweeps" / "gan_ttur.py"),
        "--data", "synthetic", "--set", "val_size=128"]


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
    line = _one_error_line(_cli(disk, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                                "--storage", str(tmp_path / "rr"), "--out", str(tmp_path / "report")))
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
    from common.storage import SweepStorage

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
    from common.storage import StorageError, SweepStorage

    with pytest.raises(StorageError, match="cannot write to --storage s3://no-such-bucket"):
        SweepStorage("s3://no-such-bucket/x").check()
