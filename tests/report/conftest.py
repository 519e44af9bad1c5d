"""The report built once per session from fake sweeps in one temporary sqlite MLflow store: ``sweep`` (a
parent, 3 VAE and 3 DCGAN trials), ``report`` (the report of it) and ``mitigations_report`` (three sweeps
of matched mitigation trials in another experiment of the same store)."""

from __future__ import annotations

import warnings

import pytest
from fake_sweep import EXPERIMENT, GAN_BASE, VAE_BASE, gan_rows, log_parent, log_trial, vae_rows
from mlflow import MlflowClient

from common.report.build import build_report


@pytest.fixture(scope="session")
def sweep(tmp_path_factory):
    """A parent + 3 VAE + 3 DCGAN children, metrics at steps 1..3. Returns (uri, parent_id, best ids)."""
    tmp_path = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(EXPERIMENT, artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(
        exp_id,
        run_name="sweep",
        tags={
            "sweep.role": "parent",
            "sweep.space": "sweeps/gan_ttur.py",
            "git_commit": "abc1234",
            "data": "cifar10",
            "data_hash": "d41d8cd9",
        },
    )
    pid = parent.info.run_id
    for k, v in dict(
        space="gan_ttur",
        num_samples=6,
        max_epochs=3,
        metric="val_mse_kl",
        mode="min",
        seed=42,
        data="cifar10",
        train_subset=5000,
    ).items():
        client.log_param(pid, k, v)
    vae_elbo = [210.0, 205.4321, 230.0]  # trial 1 (index) is best: final 205.4321 -> "205.43"
    for i, (lat, final) in enumerate(zip([32, 64, 128], vae_elbo)):
        rows = [
            {
                "train_loss": final + 30 - 10 * e,
                "beta": 1.0,
                "val_mse_kl": final + 22 - 10 * e,
                "val_recon": final - 61 + 5 - 2.5 * e,
                "val_kl": 61.0 - 0.5 * e + i,
                "val_active_units": 40.0,
                "epoch_time_s": 60.0,
                "train_time_s": 60.0 * (e + 1),
                "val_classifier_fd": 50.0 - e,
            }
            for e in range(3)
        ]
        rows[-1]["val_probe_acc"] = 0.3612 + 0.01 * i
        # the best epoch (the last) scored on the test split, as common.trial.loop does after training
        rows[-1].update(
            test_mse_kl=final,
            test_recon=final - 61,
            test_kl=61.0 + i,
            test_probe_acc=0.3512 + 0.01 * i,
            test_bpd=4.4321 + i,
            test_probe_acc_pixels=0.3999,
            test_probe_acc_random_init=0.2888,
        )
        log_trial(
            client,
            exp_id,
            pid,
            "vae",
            i,
            {"lr": 1e-3 * (i + 1), "latent_dim": lat, "beta": 1.0, "beta_schedule": "constant"},
            rows,
            "completed",
            tmp_path,
        )
    dcgan_fd = [41.0, 44.0, 38.7654]  # trial 2 is best by val_classifier_fd (the sweep metric is VAE-only)
    for i, (ratio, final) in enumerate(zip([0.5, 1.0, 4.0], dcgan_fd)):
        rows = [
            {
                "g_loss": 2.0 + e + 0.1 * i,
                "d_loss": 0.5 - 0.1 * e,
                "loss_ratio": (2.0 + e) / (0.5 - 0.1 * e),
                "d_real": 0.8,
                "d_fake": 0.2,
                "epoch_time_s": 90.0,
                "train_time_s": 90.0 * (e + 1),
                "val_classifier_fd": final + 2 * (2 - e),
            }
            for e in range(3)
        ]
        rows[-1]["test_classifier_fd"] = final + 0.5
        log_trial(
            client,
            exp_id,
            pid,
            "dcgan",
            i,
            {"lr_g": 2e-4, "lr_ratio": ratio, "latent_dim": 100},
            rows,
            "completed" if i < 2 else "stopped",
            tmp_path,
        )
    return uri, pid


@pytest.fixture(scope="session")
def report(sweep, tmp_path_factory):
    uri, pid = sweep
    out = tmp_path_factory.mktemp("report")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the upload to the parent must not fail here
        index = build_report(EXPERIMENT, out, tracking_uri=uri)
    return out, index, (out / "report.md").read_text(), index.read_text()


@pytest.fixture(scope="session")
def mitigations_report(sweep, tmp_path_factory):
    """Three sweeps in one experiment: an old VAE sweep, a DCGAN sweep and the newest, multi-objective VAE
    sweep (val_probe_acc max, val_classifier_fd min). Cyclical vs constant β over seeds 1 and 2, otherwise identical,
    is split across the two VAE sweeps (the mitigation section reads every parent's children)."""
    uri, _ = sweep
    tmp_path = tmp_path_factory.mktemp("mitig")
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("mitigations", artifact_location=(tmp_path / "artifacts").as_uri())
    log = lambda parent, fam, i, params, rows, status="completed": log_trial(
        client, exp_id, parent, fam, i, params, rows, status, tmp_path, figures=False
    )
    old = log_parent(client, exp_id, "vae_beta", 1_000_000, "val_mse_kl", "vae_beta")
    log(old, "vae", 0, {**VAE_BASE, "seed": 1, "beta_schedule": "cyclical", "cycles": 2}, vae_rows(30.0, 0.40, 48.0))
    log(old, "vae", 1, {**VAE_BASE, "seed": 1}, vae_rows(20.0, 0.36, 52.0))
    log(old, "vae", 2, {**VAE_BASE, "seed": 2, "beta_schedule": "cyclical", "cycles": 2}, vae_rows(34.0, 0.42, 47.0))
    log(
        old,
        "vae",
        3,
        {**VAE_BASE, "seed": 1, "beta_schedule": "cyclical", "lr": 3e-3},  # no control: lr differs
        vae_rows(90.0, 0.10, 99.0),
    )
    rid = log(old, "vae", 4, {**VAE_BASE, "seed": 1, "perceptual_weight": 0.1}, vae_rows(20.0, 0.36, 41.0))
    client.set_tag(rid, "metric_bias", "val_randconv_fd uses the same randconv features as the perceptual loss")
    gan = log_parent(client, exp_id, "gan_stability", 2_000_000, "val_classifier_fd", "gan_stability")
    log(gan, "dcgan", 0, {**GAN_BASE, "minibatch_disc": 32}, gan_rows(40.0, 0.20))
    log(gan, "dcgan", 1, GAN_BASE, gan_rows(45.0, 0.50))
    rid = log(gan, "dcgan", 2, {**GAN_BASE, "lr_ratio": 8.0}, gan_rows(39.0, 0.80), "diverged")
    client.set_tag(rid, "diverged_epoch", "3")
    rid = log(gan, "dcgan", 3, {**GAN_BASE, "lr_g": 1e-4}, gan_rows(60.0, 0.30, collapse=1.0), "collapsed")
    for k, v in {"collapsed_epoch": "2", "detector.mode_collapse": "epoch 1"}.items():
        client.set_tag(rid, k, v)
    new = log_parent(
        client, exp_id, "tradeoff", 3_000_000, "val_probe_acc,val_classifier_fd", "tradeoff", mode="max,min"
    )
    log(new, "vae", 10, {**VAE_BASE, "seed": 2}, vae_rows(22.0, 0.37, 55.0))  # completes the seed-2 pair
    for i, (lat, probe, fd, collapse) in enumerate(
        [
            (16, 0.40, 50.0, 0.0),
            (32, 0.35, 40.0, 0.0),
            (128, 0.30, 45.0, 0.0),
            (256, 0.38, 60.0, 0.0),
            (8, 0.20, 35.0, 1.0),
        ],
        11,
    ):
        log(new, "vae", i, {**VAE_BASE, "seed": 3, "latent_dim": lat}, vae_rows(5.0, probe, fd, collapse))
    log(new, "vae", 16, {**VAE_BASE, "seed": 3, "latent_dim": 512}, vae_rows(5.0, 0.9, 1.0), "stopped")
    out = tmp_path / "report"
    md = build_report("mitigations", out, tracking_uri=uri).with_name("report.md").read_text()
    return out, md, {"old": old, "gan": gan, "new": new}
