"""run_sweep.py's exit status when trials fail: 1 with one error line per family none of whose
trials completed; 0 with a count of the failures when some trial of each family completed. And
SIGTERM as an interrupt (the whole sweep: tests/test_resume.py)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import run_sweep
from common.sweep.cluster import term_as_interrupt

TINY = '{"g_channels": 16, "d_channels": 16, "g_hidden": 0, "d_hidden": 0, "eval_samples": 64, "val_size": 128}'


@pytest.fixture
def broken(ray_session):
    import broken_family
    from ray import cloudpickle

    from common.trial.families import register

    register(broken_family.BROKEN)  # again, when an earlier test took it out
    cloudpickle.register_pickle_by_value(broken_family)  # the workers' PYTHONPATH lacks tests/
    yield broken_family
    broken_family.unregister()


def _sweep(workdir, tracking_uri, seeds: list[int]) -> list[str]:
    runs = ", ".join(f'{{"family": "broken", "seed": {s}, "max_epochs": 1, **{TINY}}}' for s in seeds)
    Path("space.py").write_text(f"runs = [{runs}]\nresources = {{'cpu': 1, 'gpu': 0}}\n")
    return ["--space", "space.py", "--data", "synthetic", "--tracking-uri", tracking_uri, "--eval-n", "0"] + [
        "--no-report",
        "--storage",
        str(workdir / "ray_results"),
    ]


RAISED = f"RuntimeError at {Path(__file__).with_name('broken_family.py')}:20 in epoch 1"  # its raise line


@pytest.mark.faults  # whole Ray sweeps whose trials raise: make test-faults
def test_a_sweep_whose_trials_all_fail_exits_1_at_once_with_one_line_per_trial_and_no_restart(
    broken, workdir, tracking_uri, capsys
):
    assert run_sweep.main(_sweep(workdir, tracking_uri, [1, 3])) == 1
    out, err = capsys.readouterr()
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: no broken trial completed: 2 trial(s) failed; the first: {RAISED}: "
        "the broken family refuses odd seeds (seed 1)"
    ]
    failed = [line for line in out.splitlines() if " failed: " in line]
    assert len(failed) == 2 and all(f"failed: {RAISED}: the broken family refuses odd seeds" in f for f in failed)
    assert "/tmp/ray" not in out + err and "Trials did not complete" not in out + err
    # Each trial ran once: the code's own error is not restarted (max_failures=2 is for lost workers).
    errors = sorted((workdir / "ray_results").rglob("error.txt"))
    assert len(errors) == 2 and [e.read_text().count("Failure # ") for e in errors] == [1, 1]
    runs = MlflowClient(tracking_uri).search_runs(
        [MlflowClient(tracking_uri).get_experiment_by_name("space").experiment_id], "tags.`sweep.role` = 'trial'"
    )
    assert {r.data.tags["trial_status"] for r in runs} == {"failed"} and all(
        r.data.tags["error"].endswith("error.txt") for r in runs
    )  # the error file's path: on the run, not the console


@pytest.mark.faults
def test_a_sweep_with_some_failed_trials_exits_0_and_counts_them(broken, workdir, tracking_uri, capsys):
    assert run_sweep.main(_sweep(workdir, tracking_uri, [1, 2])) == 0
    out = capsys.readouterr().out
    assert "best broken: val_classifier_fd=" in out
    assert f"1 trial(s) of broken failed; the first: {RAISED}: the broken family refuses odd seeds (seed 1)" in out


def test_a_single_trial_run_ends_finished_and_passes_the_audit(workdir, tracking_uri, capsys):
    from mlflow.tracking import MlflowClient

    Path("space.py").write_text(
        f'family = "dcgan"\nmetric = "val_classifier_fd"\nmode = "min"\nmax_epochs = 1\ndefaults = {TINY}\n'
    )
    args = ["--space", "space.py", "--data", "synthetic", "--tracking-uri", tracking_uri, "--experiment", "one"]
    assert run_sweep.main(args + ["--single-trial"]) == 0
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("one").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["trial_status"] == "completed"
    # MLflow's own context tags: the UI's User, Source and Version columns
    tags = run.data.tags
    assert tags["mlflow.user"] and tags["mlflow.source.git.commit"] == tags["git_commit"]
    assert tags["mlflow.source.name"] == "run_sweep.py"  # the UI's Source column: the program
    assert (
        tags["sweep.command"].startswith("run_sweep.py --space space.py") and "--single-trial" in tags["sweep.command"]
    )
    capsys.readouterr()
    assert run_sweep.main(["--check", "one", "--tracking-uri", tracking_uri]) == 0, capsys.readouterr().out


def test_sigterm_goes_to_tunes_handler_in_a_fit_and_is_an_interrupt_where_sigint_is_ignored():
    previous, seen = signal.getsignal(signal.SIGINT), []
    try:
        signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))  # as Tune's, during a fit
        term_as_interrupt(signal.SIGTERM, None)
        assert seen == [signal.SIGINT]
        for handler in (signal.SIG_IGN, signal.default_int_handler):  # a background job's, Python's own
            signal.signal(signal.SIGINT, handler)
            with pytest.raises(KeyboardInterrupt):
                term_as_interrupt(signal.SIGTERM, None)
    finally:
        signal.signal(signal.SIGINT, previous)
