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


def test_the_audit_rescores_best_pt_and_names_a_run_whose_test_metrics_score_other_weights(
    tracking_uri, workdir, monkeypatch
):
    from mlflow.tracking import MlflowClient

    import common.trial.loop
    from common.base.tracking import get_or_create_experiment, prepare_store
    from common.sweep.audit import _selected_weights
    from common.trial.config import VAEConfig
    from common.trial.contract import LocalSession, SweepContext
    from common.trial.loop import run_trial

    prepare_store(tracking_uri)
    client = MlflowClient(tracking_uri)
    exp = get_or_create_experiment(client, "audit", None)
    # mode="max" on a loss selects the first of 3 epochs, so the last epoch's weights differ from it.
    ctx = SweepContext(
        tracking_uri=tracking_uri, experiment_id=exp, parent_run_id=None, metric="val_mse_kl", mode="max"
    )
    cfg = VAEConfig(data="synthetic", val_size=128, max_epochs=3, batch_size=64, eval_samples=64, probe_every=0)
    good = LocalSession(workdir / "good")
    run_trial(cfg, ctx, good)
    monkeypatch.setattr(common.trial.loop, "snapshot", lambda state: state)  # the live weights, as before
    stale = LocalSession(workdir / "stale")
    run_trial(cfg, ctx, stale)

    runs = client.search_runs([exp])
    check = _selected_weights(client, runs)
    stale_id, good_id = stale.results[0]["mlflow_run_id"], good.results[0]["mlflow_run_id"]
    assert len(check.problems) == 1 and check.problems[0].startswith(f"run {stale_id}: logged test_")
    assert "the test metrics score other weights" in check.problems[0]
    assert _selected_weights(client, [r for r in runs if r.info.run_id == good_id]).ok
