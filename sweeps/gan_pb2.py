"""DCGAN with Population Based Bandits (PB2, Parker-Holder et al. 2020): sweeps/gan_pbt.py's
population and budget, but a clone's new lr_g / lr_ratio / beta1 come from a GP bandit fitted
on how much each trial improved per interval, inside the bounds below (PB2 takes ranges only),
instead of PBT's random perturbations. Lineage is tagged on each trial's MLflow run as for PBT.
"""

family = "dcgan"
metric = "val_classifier_fd"
mode = "min"
num_samples = 8
max_epochs = 40
defaults = {"latent_dim": 100, "train_subset": 10000}
scheduler = {
    "kind": "pb2",
    "perturbation_interval": 5,
    "quantile_fraction": 0.25,
    "synch": True,  # 8 trials, fewer slots on most machines: rank the population at one epoch
    "mutations": {"lr_g": ("uniform", 1e-4, 5e-4), "lr_ratio": ("uniform", 1.0, 4.0), "beta1": ("uniform", 0.0, 0.5)},
}
resources = {"cpu": 1, "gpu": "auto"}
