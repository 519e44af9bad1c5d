"""Representation vs sample quality: a multi-objective VAE sweep (Optuna NSGA-free TPE).

Two objectives, searched jointly, both on the validation images: ``val_probe_acc`` (linear probe
on mu, fit on the train subset, C and accuracy on the validation images; higher is better) and
``val_classifier_fd`` (1,000 fixed-z prior samples vs the validation images in the domain
classifier's features; lower is better). Optuna keeps the Pareto front; the report draws
it. ASHA is off: early stopping needs a single objective. The probe runs every epoch here,
since both objectives must be reported each epoch.
"""


def space(trial):
    trial.suggest_categorical("latent_dim", [16, 32, 64, 128, 256])
    trial.suggest_float("beta", 0.25, 4.0, log=True)
    trial.suggest_categorical("beta_schedule", ["constant", "linear", "cyclical"])


family = "vae"
metric = ["val_probe_acc", "val_classifier_fd"]
mode = ["max", "min"]
num_samples = 8
max_epochs = 10
defaults = {"probe_every": 1}
scheduler = None
resources = {"cpu": 1, "gpu": "auto"}
