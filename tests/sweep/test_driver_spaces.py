"""Real Tune sweeps of each kind of space on the shared in-process local Ray (see conftest.py): many
trials at once, both families of a preset, a diverging trial, several objectives, several families,
and the local Ray an Apple machine starts. tests/sweep/test_driver.py follows one sweep end to end."""

from __future__ import annotations

import json

import pytest
from real_sweeps import sweep_options, sweep_runs

from common.sweep.driver import SweepOptions
from trainables.sweep import run


@pytest.mark.faults  # a sweep under load or killed midway: minutes, in make test-faults
def test_eight_concurrent_gan_trials_log_every_point_and_resume_reuses_the_parent(ray_session, workdir, tracking_uri):
    """8 trials write to the embedded sqlite store at once: no lock errors, no lost points."""
    opts = sweep_options(
        workdir,
        tracking_uri,
        "gan_ttur.py",
        num_samples=8,
        max_epochs=2,
        cpus_per_trial=0.25,
        memory_per_trial=100,
        report=False,
        overrides=(("eval_samples", "64"), ("batch_size", "64"), ("g_channels", "32"), ("d_channels", "16")),
    )
    run(opts)
    client, parents, children = sweep_runs(tracking_uri, "gan_ttur")
    assert len(parents) == 1 and len(children) == 8
    # Every epoch a trial reported to Tune (one line of its result.json) is in MLflow, once.

    reported = {}
    for path in (workdir / "ray_results").rglob("result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        reported[rows[0]["mlflow_run_id"]] = sorted(r["epoch"] for r in rows)
    assert len(reported) == 8
    for child in children:
        steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, "g_loss"))
        assert steps == reported[child.info.run_id]
        n_epochs = len(steps)
        # None failed on a lock: a trial that ran both epochs completed, one ASHA cut at 1 stopped.
        assert child.data.tags["trial_status"] == {2: "completed", 1: "stopped"}[n_epochs]
        names = [
            "g_loss",
            "d_loss",
            "d_real",
            "d_fake",
            "val_classifier_fd",
            "grad_norm_d",
            "val_class_coverage",
            "epoch_time_s",
        ]
        if child.data.params["gan_loss"] == "bce":  # a hinge D loss can be 0: no ratio then
            names.append("loss_ratio")
        for name in names:
            assert len(client.get_metric_history(child.info.run_id, name)) == n_epochs, name
        assert float(child.data.params["lr_ratio"]) >= 1.0
    # The searcher's study lives in an RDB beside the MLflow store, named on the parent run.
    import mlflow
    import optuna

    tags = parents[0].data.tags
    assert tags["optuna.storage"] == tracking_uri.replace("mlflow.db", "optuna.db")
    assert tags["optuna.sampler.dcgan"].startswith("TPESampler(seed=42, n_startup_trials=10,")  # its settings
    assert tags["versions.optuna"] == optuna.__version__ and tags["versions.mlflow"] == mlflow.__version__
    study = optuna.load_study(study_name=tags["optuna.study.dcgan"], storage=tags["optuna.storage"])
    assert len(study.trials) == 8 and {"lr_g", "lr_ratio", "beta1"} <= set(study.trials[0].params)
    # --resume on a finished sweep: same parent run, no new trials.
    run(SweepOptions(**{**opts.__dict__, "resume": True}))
    _, parents2, children2 = sweep_runs(tracking_uri, "gan_ttur")
    assert [p.info.run_id for p in parents2] == [parents[0].info.run_id]
    assert len(children2) == 8
    mlflow.set_tracking_uri(tracking_uri)
    models = mlflow.search_logged_models(experiment_ids=[parents[0].info.experiment_id], output_format="list")
    assert [m.name for m in models] == ["best_dcgan"]  # not logged a second time on resume
    assert len(optuna.load_study(study_name=tags["optuna.study.dcgan"], storage=tags["optuna.storage"]).trials) == 8


def test_slides_preset_smoke_runs_both_families_under_one_parent(ray_session, workdir, tracking_uri):
    summary = run(
        sweep_options(
            workdir,
            tracking_uri,
            "slides.py",
            smoke_test=True,
            # tiny nets: outside the slides' parameter budget the preset declares, so lift it
            overrides=(("dcgan.g_channels", "32"), ("vae.base_channels", "16"), ("param_budget", "")),
        )
    )
    assert set(summary.best) == {"vae", "dcgan"}
    client, parents, children = sweep_runs(tracking_uri, "slides")
    assert len(parents) == 1
    assert sorted(c.data.tags["family"] for c in children) == ["dcgan", "vae"]
    by_family = {c.data.tags["family"]: c.data.params for c in children}
    assert by_family["dcgan"]["g_channels"] == "32" and by_family["vae"]["base_channels"] == "16"
    md = (workdir / "report" / "report.md").read_text()
    assert "200.82" in md and "3.866" in md  # the slides' published values beside ours


def test_a_diverging_trial_is_stopped_and_tagged_while_the_sweep_finishes(ray_session, workdir, tracking_uri):
    space = workdir / "diverge.py"
    space.write_text(
        "runs = [\n"
        "    {'family': 'vae', 'lr': 1000.0, 'max_epochs': 3},   # blows up\n"
        "    {'family': 'vae', 'lr': 1e-3, 'max_epochs': 2},\n"
        "]\nscheduler = None\n"
    )
    # A relative sqlite URI, as typed: the trials (in their own folders) log to the same file.
    summary = run(
        SweepOptions(
            space=str(space),
            data="synthetic",
            tracking_uri="sqlite:///mlflow.db",
            report=False,
            storage=str(workdir / "ray_results"),
            eval_n=0,
            overrides=(("eval_samples", "64"), ("batch_size", "64"), ("val_size", "128")),
        )
    )
    client, parents, children = sweep_runs(tracking_uri, "diverge")
    assert parents[0].data.tags["sweep.status"] == "completed"  # the diverged trial did not fail the sweep
    status = {c.data.params["lr"]: c.data.tags for c in children}
    assert status["1000.0"]["trial_status"] == "diverged" and "blown up" in status["1000.0"]["diverged_reason"]
    assert int(status["1000.0"]["diverged_epoch"]) >= 1
    assert status["0.001"]["trial_status"] == "completed"
    assert summary.best["vae"].value < 1e9  # the diverged penalty never wins


def test_multi_objective_space_runs_with_both_objectives(ray_session, workdir, tracking_uri):
    summary = run(
        sweep_options(
            workdir, tracking_uri, "tradeoff.py", smoke_test=True, report=False, overrides=(("batch_size", "64"),)
        )
    )
    _, parents, children = sweep_runs(tracking_uri, "tradeoff")
    assert (
        parents[0].data.params["metric"] == "val_probe_acc,val_classifier_fd"
        and parents[0].data.params["mode"] == "max,min"
    )
    assert len(children) == 2
    for child in children:  # both objectives reported every epoch (the probe runs every epoch here)
        assert {"val_probe_acc", "val_classifier_fd"} <= set(child.data.metrics)
    assert summary.best["vae"].metric == "val_probe_acc"  # the primary objective picks "best"


@pytest.mark.slow  # three Tune runs in a row, most of a minute: make test-slow (CI runs it)
def test_a_space_over_three_families_searches_each_with_its_own_space_and_study(ray_session, workdir, tracking_uri):
    """sweeps/tradeoff3.py: the VAE, the VAE-GAN and the DCGAN in turn, on the same two objectives."""
    summary = run(
        sweep_options(
            workdir,
            tracking_uri,
            "tradeoff3.py",
            smoke_test=True,
            report=False,
            overrides=(("batch_size", "64"), ("dcgan.g_channels", "32"), ("dcgan.d_channels", "16")),
        )
    )
    _, parents, children = sweep_runs(tracking_uri, "tradeoff3")
    assert len(parents) == 1 and sorted(summary.best) == ["dcgan", "vae", "vaegan"]
    by_family = {}
    for child in children:
        by_family.setdefault(child.data.tags["family"], []).append(child)
        assert {"val_probe_acc", "val_classifier_fd"} <= set(child.data.metrics)
    assert {f: len(c) for f, c in by_family.items()} == {"vae": 2, "vaegan": 2, "dcgan": 2}
    assert all("gamma" in c.data.params for c in by_family["vaegan"])  # each family's own space was searched
    assert (
        len(
            {
                c.data.params["ema_decay"] + c.data.params["diffaug"] + c.data.params["lr_ratio"]
                for c in by_family["dcgan"]
            }
        )
        == 2
    )
    tags = parents[0].data.tags
    assert {f"optuna.study.{f}" for f in by_family} <= set(tags)  # one Optuna study per family


@pytest.mark.parametrize("apple", [True, False])
def test_a_local_ray_on_apple_silicon_declares_mps_so_trials_use_it(apple, workdir, tracking_uri, monkeypatch):
    import ray

    import common.sweep.cluster

    seen = {}

    def init(**kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop here: only the local Ray's resources are under test

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(common.sweep.cluster, "mps_available", lambda: apple)
    with pytest.raises(KeyboardInterrupt):
        run(sweep_options(workdir, tracking_uri, "slides.py"))
    assert seen["resources"] == ({"mps": 1} if apple else None)
