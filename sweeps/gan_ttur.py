"""DCGAN: two time-scale update rule (Heusel et al. 2017).

Searches the generator learning rate, the ratio lr_D / lr_G in [1, 8], Adam's beta1, spectral
normalisation of D on/off and the loss (non-saturating BCE or hinge; WGAN-GP is in
sweeps/gan_stability.py, which crosses all the slides' GAN mitigations).
Objective: ``val_classifier_fd``, the Fréchet distance of 1,000 generated images (the same z every
epoch) to the 5,000 validation images in the feature space of the domain classifier
(common/metrics/classifier.py): cheap enough to score every epoch on a CPU, and the per-epoch score that
ranks checkpoints most like Inception FID in the rank study (bench/proxy.py, BENCHMARKS.md).
Lower is better.
"""


def space(trial):
    trial.suggest_float("lr_g", 5e-5, 5e-4, log=True)
    trial.suggest_float("lr_ratio", 1.0, 8.0)
    trial.suggest_float("beta1", 0.0, 0.9)
    trial.suggest_categorical("spectral_norm", [False, True])
    trial.suggest_categorical("gan_loss", ["bce", "hinge"])


family = "dcgan"
metric = "val_classifier_fd"
mode = "min"
num_samples = 8
max_epochs = 10
defaults = {"latent_dim": 100}
scheduler = {"grace_period": 2, "reduction_factor": 3}
resources = {"cpu": 1, "gpu": "auto"}
