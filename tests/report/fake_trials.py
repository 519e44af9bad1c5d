"""Trials as the report's pure analyses take them (``{"id", "params", "metrics", "tags"}``), without MLflow."""

from __future__ import annotations

VAE = {
    "family": "vae",
    "seed": "1",
    "data": "cifar10",
    "lr": "0.001",
    "latent_dim": "64",
    "beta": "1.0",
    "beta_schedule": "constant",
    "cycles": "4",
    "ramp_fraction": "0.5",
    "free_bits": "0.0",
    "perceptual_weight": "0.0",
    "perceptual_net": "randconv",
    "max_epochs": "10",
    "eval_samples": "1000",
}


DCGAN = {
    "family": "dcgan",
    "seed": "42",
    "data": "cifar10",
    "lr_g": "0.0002",
    "lr_ratio": "1.0",
    "spectral_norm": "False",
    "gan_loss": "bce",
    "gp_weight": "10.0",
    "n_critic": "1",
    "label_smoothing": "0.0",
    "minibatch_disc": "0",
    "minibatch_dim": "8",
    "max_epochs": "10",
    "eval_samples": "1000",
}


SIZES = {"n_train_images": 10000.0, "n_val_images": 5000.0, "n_test_images": 10000.0}


def trial(base, metrics, status="completed", tags=None, **params):
    tid = f"t{next(_ids)}"
    return {
        "id": tid,
        "trial_id": tid,
        "params": {**base, **{k: str(v) for k, v in params.items()}},
        "metrics": {**SIZES, **metrics},
        "tags": {"trial_status": status, **(tags or {})},
    }


_ids = iter(range(10**6))


def result(results, name, metric):
    return next(r for r in results if r.mitigation.name == name and r.target.metric == metric)


def cyclical_trials():
    """2 seeds x cyclical / constant, otherwise identical; cycles may differ (the schedule's own field)."""
    return [
        trial(VAE, {"test_kl": 30.0, "test_probe_acc": 0.40}, seed=1, beta_schedule="cyclical", cycles=2),
        trial(VAE, {"test_kl": 20.0, "test_probe_acc": 0.36}, seed=1),
        trial(VAE, {"test_kl": 34.0, "test_probe_acc": 0.42}, seed=2, beta_schedule="cyclical", cycles=2),
        trial(VAE, {"test_kl": 22.0, "test_probe_acc": 0.37}, seed=2),
    ]
