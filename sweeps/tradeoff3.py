"""Representation vs sample quality over three families: the VAE, the VAE-GAN, the DCGAN.

One multi-objective search per family, on the same two objectives, both on the validation images:
``val_probe_acc`` (the linear probe, higher is better: on mu for the VAE and the VAE-GAN, on D's
conv features for the DCGAN, as Radford et al. 2016 did) and ``val_classifier_fd`` (1,000 fixed-z
samples vs the validation images in the domain classifier's features, lower is better). The
report draws one Pareto front over the three families' trials, with the slides preset's two models
(the slides' VAE and DCGAN) placed on it when the experiment holds them: run
``sweeps/seed_spread.py`` (or ``sweeps/slides.py``) with the same ``--experiment``.

Budget (the slides'): their nets (latent sizes kept near theirs, so each net stays within ±10% of
its parameter count), the seeded 10k train subset, 20 epochs for the VAE and the VAE-GAN, 40 for
the DCGAN. ASHA is off (two objectives); the probe runs every epoch, since Tune reads both
objectives from every report.
"""


def _vae(trial):
    trial.suggest_float("beta", 0.25, 4.0, log=True)
    trial.suggest_categorical("beta_schedule", ["constant", "linear", "cyclical"])
    trial.suggest_float("lr", 3e-4, 3e-3, log=True)


def _vaegan(trial):
    trial.suggest_float("gamma", 1e-4, 1.0, log=True)
    trial.suggest_float("beta", 0.25, 4.0, log=True)
    trial.suggest_float("lr_ratio", 1.0, 4.0)
    trial.suggest_categorical("feature_layer", [1, 2])


def _dcgan(trial):
    trial.suggest_categorical("ema_decay", [0.0, 0.999])
    trial.suggest_categorical("diffaug", ["", "translation,cutout", "color,translation,cutout"])
    trial.suggest_categorical("spectral_norm", [False, True])
    trial.suggest_float("lr_ratio", 1.0, 4.0)


family = ["vae", "vaegan", "dcgan"]
space = {"vae": _vae, "vaegan": _vaegan, "dcgan": _dcgan}
metric = ["val_probe_acc", "val_classifier_fd"]
mode = ["max", "min"]
num_samples = 8
defaults = {"probe_every": 1}
scheduler = None
resources = {"cpu": 1, "gpu": "auto"}
