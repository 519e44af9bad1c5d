"""A fake sweep in a temporary sqlite MLflow store, logged the way common.trial.loop and the driver log
theirs: parent runs, trial runs with params, per-epoch metrics and figures; and readers of report.md."""

from __future__ import annotations

import torch
from mlflow.entities import Metric, Param

from common.base.figures import save_image_grid

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


EXPERIMENT = "gan_ttur"


def tiny_png(path, shade: float) -> None:
    save_image_grid(torch.full((1, 3, 4, 4), shade), path, nrow=1)


SIZES = {
    "n_train_images": 5000,
    "n_val_images": 5000,
    "n_test_images": 10000,
}  # logged at step 0, as common.trial.loop does


NETS = {"vae": ["vae"], "dcgan": ["g", "d"]}


def log_trial(
    client,
    exp_id,
    parent_id,
    family,
    i,
    params,
    metrics_by_epoch,
    status,
    tmp_path,
    sizes=SIZES,
    figures=True,
    tags=None,
):
    run = client.create_run(
        exp_id,
        run_name=f"{family}_{i}",
        tags={
            "mlflow.parentRunId": parent_id,
            "sweep.role": "trial",
            "family": family,
            "trial_id": f"{family}_{i:05d}",
            "device": "cpu",
            "git_commit": "abc1234",
            "data_hash": "d41d8cd9",
            "data": "cifar10",
            "trial_status": status,
            **(tags or {}),
        },
    )
    rid = run.info.run_id
    common = {
        "family": family,
        "seed": 42,
        "data": "cifar10",
        "train_subset": 5000,
        "batch_size": 128,
        "max_epochs": 3,
        "probe_every": 5,
        "eval_samples": 512,
        "device": "auto",
    }
    client.log_batch(
        rid,
        params=[Param(k, str(v)) for k, v in {**common, **params}.items()],
        metrics=[Metric(k, v, 0, 0) for k, v in {**sizes, **param_counts(family, i)}.items()]
        + [Metric(k, v, 0, step) for step, row in enumerate(metrics_by_epoch, 1) for k, v in row.items()],
    )
    if not figures:
        return rid
    figs = tmp_path / f"figs_{rid}"
    names = ["samples", "curves"] + (["reconstructions", "interpolations"] if family == "vae" else [])
    for j, name in enumerate(names):
        tiny_png(figs / f"{name}.png", j / 4)
    client.log_artifacts(rid, str(figs), "figures")
    return rid


def param_counts(family, i):
    """n_params_vae = 1,000,000 + 100,000 i; n_params_g = 1,240,000 + i; n_params_d = 2,760,000 + i."""
    counts = {"vae": 1_000_000 + 100_000 * i} if family == "vae" else {"g": 1_240_000 + i, "d": 2_760_000 + i}
    return {"n_params": sum(counts.values()), **{f"n_params_{k}": v for k, v in counts.items()}}


def log_parent(client, exp_id, name, start_time, metric, space, mode="min"):
    run = client.create_run(
        exp_id,
        run_name=name,
        start_time=start_time,
        tags={
            "sweep.role": "parent",
            "sweep.space": f"sweeps/{space}.py",
            "git_commit": "abc1234",
            "data": "cifar10",
            "data_hash": "d41d8cd9",
        },
    )
    for k, v in dict(space=space, metric=metric, mode=mode, data="cifar10").items():
        client.log_param(run.info.run_id, k, v)
    return run.info.run_id


def dcgan_rows(fd):
    return [
        {
            "g_loss": 2.0,
            "d_loss": 0.5,
            "val_classifier_fd": fd,
            "test_classifier_fd": fd,
            "epoch_time_s": 1.0,
            "train_time_s": 1.0,
        }
    ]


# ---- failure modes and mitigations, detector flags, Pareto front ----------------------------------
VAE_BASE = {
    "lr": 1e-3,
    "latent_dim": 64,
    "beta": 1.0,
    "beta_schedule": "constant",
    "cycles": 4,
    "ramp_fraction": 0.5,
    "free_bits": 0.0,
    "perceptual_weight": 0.0,
    "perceptual_net": "randconv",
}


GAN_BASE = {"lr_g": 2e-4, "lr_ratio": 1.0, "spectral_norm": False, "gan_loss": "bce", "minibatch_disc": 0}


def vae_rows(kl, probe, fd, collapse=0.0):
    return [
        {
            "val_mse_kl": 200.0,
            "val_kl": kl,
            "val_active_units": 40.0,
            "posterior_collapse": collapse,
            "val_probe_acc": probe,
            "val_classifier_fd": fd,
            "epoch_time_s": 1.0,
            "train_time_s": 1.0,
            "test_kl": kl,
            "test_probe_acc": probe,
            "test_classifier_fd": fd,
            "test_randconv_fd": fd,
        }
    ]


def gan_rows(fd, class_kl, collapse=0.0):
    return [
        {
            "g_loss": 2.0,
            "d_loss": 0.5,
            "val_classifier_fd": fd,
            "val_class_kl": class_kl,
            "mode_collapse": collapse,
            "grad_norm_d": 1.0,
            "epoch_time_s": 1.0,
            "train_time_s": 1.0,
            "test_classifier_fd": fd,
            "test_class_kl": class_kl,
        }
    ]


def section(md, title):
    return md.split(f"## {title}")[1].split("\n## ")[0]


def table_row(text, *starts):
    return next(line for line in text.splitlines() if line.startswith("| " + " | ".join(starts) + " |"))
