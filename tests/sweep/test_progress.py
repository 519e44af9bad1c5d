"""common/base/progress.py: the status line, and what a default sweep prints (no Ray tables, no warnings)."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from common.base.objective import Objective
from common.base.progress import SweepProgress, bar

ROOT = Path(__file__).resolve().parents[2]


def _trials(*statuses):
    return [SimpleNamespace(trial_id=f"t{i}", status=s) for i, s in enumerate(statuses)]


def test_the_status_line_counts_trials_keeps_the_best_and_extrapolates_the_epochs():
    p = SweepProgress("dcgan", Objective("val_classifier_fd", "min"), total=4, max_epochs=10)
    trials = _trials("RUNNING", "RUNNING", "PENDING", "PENDING")
    p.t0 -= 100  # 100 s in
    p.on_trial_result(0, trials, trials[0], {"val_classifier_fd": 9.0, "epoch": 5})
    p.on_trial_result(0, trials, trials[1], {"val_classifier_fd": 7.5, "epoch": 5})
    p.on_trial_result(0, trials, trials[0], {"val_classifier_fd": 8.0, "epoch": 6})  # better for t0, not the best
    p.on_trial_result(0, trials, trials[1], {"val_classifier_fd": 1.0, "epoch": 6, "diverged": 1})  # a penalty
    line = p.line(running=2)
    assert line.startswith("dcgan: 0/4 done, 2 running, 2 pending | best val_classifier_fd 7.5 (trial t1, epoch 5)")
    # 12 of 40 epochs in 100 s -> 233 s to go
    assert "1m40s elapsed, ETA 3m53s" in line
    p.on_trial_complete(0, trials, trials[0])  # ASHA stopped it: it counts as finished
    assert p.line(running=1).startswith("dcgan: 1/4 done, 1 running, 2 pending")


def test_a_starting_trial_counts_as_running_and_a_paused_one_resumes(capsys, monkeypatch):
    monkeypatch.setattr("common.base.progress._tty", lambda: False)
    p = SweepProgress("dcgan", Objective("val_classifier_fd", "min"), total=2, max_epochs=10)
    trials = _trials("PENDING", "PENDING")  # as Tune passes them to on_trial_start
    p.on_trial_start(0, trials, trials[0])
    assert capsys.readouterr().out.startswith("trial t0 started | dcgan: 0/2 done, 1 running, 1 pending")
    p.on_trial_result(0, trials, trials[0], {"val_classifier_fd": 9.0, "epoch": 5})
    capsys.readouterr()
    trials[0].status = "PAUSED"
    p.on_trial_start(0, trials, trials[0])
    assert capsys.readouterr().out.startswith("trial t0 resumed after epoch 5 | dcgan: 0/2 done, 1 running, 1 pending")


def test_a_resumed_sweep_keeps_its_best_and_its_running_time_not_the_hours_it_was_stopped():
    p = SweepProgress("dcgan", Objective("val_classifier_fd", "min"), total=2, max_epochs=10)
    trials = _trials("RUNNING", "PENDING")
    p.t0 -= 100
    p.on_trial_result(0, trials, trials[0], {"val_classifier_fd": 7.5, "epoch": 5})
    state = pickle.loads(pickle.dumps(p.get_state()))  # Tune saves it with the experiment
    q = SweepProgress("dcgan", Objective("val_classifier_fd", "min"), total=2, max_epochs=10)
    q.t0 -= 3 * 3600  # the restored callback's start: hours ago, the sweep stopped in between
    q.set_state(state)
    assert "best val_classifier_fd 7.5 (trial t0, epoch 5) | 1m40s elapsed" in q.line(running=1)
    q.on_trial_result(0, trials, trials[0], {"val_classifier_fd": 9.0, "epoch": 6})  # worse: no new best
    assert "best val_classifier_fd 7.5 (trial t0, epoch 5)" in q.line(running=1)


@pytest.mark.parametrize("cols", [0, 100])
def test_a_terminal_draws_bars_and_a_zero_width_one_gets_a_line_per_event(cols, monkeypatch):
    """tqdm draws nothing on a pty that reports 0 columns (``script``, ``docker exec -t``)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
    with os.fdopen(slave, "w", buffering=1) as term:
        monkeypatch.setattr(sys, "stdout", term)
        monkeypatch.setattr(sys, "stderr", term)
        assert list(bar(range(3), "decoding 3 images", total=3)) == [0, 1, 2]
        term.flush()
    shown = _drain(master)
    if cols:
        assert "\rdecoding 3 images:   0%|" in shown and "0/3 [" in shown  # a tqdm bar, redrawn in place
    else:
        assert "decoding 3 images ..." in shown and re.search(r"decoding 3 images: done in 0m\d\ds", shown)


def _drain(master: int, timeout: float = 10.0) -> str:
    """Everything written to a closed pty's slave: the kernel hands it to the master in pieces, not at once."""
    import select

    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([master], [], [], 0.1)[0]:
            continue
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: the slave is closed and every byte has been read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return b"".join(chunks).decode()


@pytest.mark.slow  # a whole sweep in a fresh interpreter: 1-1.5 min, past make test's budget (CI runs it)
def test_a_default_sweep_prints_status_lines_not_ray_tables_and_no_warnings(tmp_path):
    argv = [
        sys.executable,
        str(ROOT / "run_sweep.py"),
        "--space",
        str(ROOT / "sweeps" / "gan_ttur.py"),
        "--smoke-test",
        "--data",
        "synthetic",
        "--set",
        "val_size=128",
    ]
    # mlflow.set_tracking_uri (earlier tests, this process) exports MLFLOW_TRACKING_URI: not for this run
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    res = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert not re.search(r"\w+Warning: ", out), out[-3000:]
    assert not any(s in out for s in ("Trial status", "╭", "│", "Configuration for experiment", "pid=")), out[-3000:]
    assert "dcgan: 2/2 done, 0 running, 0 pending | best val_classifier_fd" in out
    assert "registering the best dcgan model: done in" in out and "MLflow: http://127.0.0.1:5000/#/experiments/" in out
