"""DCGAN with Population Based Training: the learning rates and Adam's beta1 change
during training, as in Ray's own DCGAN example.

Eight trials start from random draws of the mutations below. Every 5 epochs the bottom quarter
(by the validated per-epoch objective, ``val_classifier_fd`` on the validation images) clones a
top quarter trial's checkpoint, weights, Adam moments and EMA of G, and goes on with a perturbed
lr_g / lr_ratio / beta1. Each clone is tagged on the trial's MLflow run (``pbt.clone.<n>``: the
donor, the epoch and the config it switched to). The slides' nets and 40-epoch budget.
"""

family = "dcgan"
metric = "val_classifier_fd"
mode = "min"
num_samples = 8
max_epochs = 40
defaults = {"latent_dim": 100, "train_subset": 10000}
scheduler = {
    "kind": "pbt",
    "perturbation_interval": 5,
    "quantile_fraction": 0.25,
    "synch": True,  # 8 trials, fewer slots on most machines: rank the population at one epoch
    "mutations": {"lr_g": ("log", 1e-4, 5e-4), "lr_ratio": ("uniform", 1.0, 4.0), "beta1": [0.0, 0.5]},
}
resources = {"cpu": 1, "gpu": "auto"}
