"""common/sweep/audit.py's invariants as pure functions over Tune's trial folders and MLflow runs
(the whole ``--check`` over real sweeps: tests/sweep/test_driver.py, tests/test_resume.py,
tests/sweep/test_storage.py)."""

from __future__ import annotations

from types import SimpleNamespace

from common.sweep.audit import _unlogged


def _run(run_id: str, **tags) -> SimpleNamespace:
    return SimpleNamespace(info=SimpleNamespace(run_id=run_id), data=SimpleNamespace(tags=tags))


def test_kept_writes_fail_the_audit_unless_their_run_was_orphaned_and_run_again():
    trials = [
        _run("a", trial_status="completed"),
        _run("b", trial_status="failed", error="orphaned: the driver died before Tune recorded this trial"),
        _run("c", trial_status="completed"),
    ]
    tune = {
        "x/run0-vae/t1": {"runs": {"a"}, "unlogged": 2},  # waits: a finished run misses 2 writes
        "x/run0-vae/t0": {"runs": {"b"}, "unlogged": 5},  # the resume replaced this trial from scratch
        "x/run1-vae/t2": {"runs": {"c"}, "unlogged": 0},
    }
    check = _unlogged(tune, trials)
    assert check.problems == ["x/run0-vae/t1: 2 write(s) never reached MLflow"]
    del tune["x/run0-vae/t1"]
    assert _unlogged(tune, trials).ok
