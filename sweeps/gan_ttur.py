"""DCGAN: two time-scale update rule (Heusel et al. 2017).

Searches the generator learning rate, the ratio lr_D / lr_G in [1, 8], Adam's beta1, spectral
normalisation of D on/off and the loss (non-saturating BCE or hinge; WGAN-GP is in
sweeps/gan_stability.py, which crosses all the seed's GAN mitigations).
Objective: ``sample_fd``, the Fréchet distance of 1,000 generated images to the 10,000 test
images in a fixed random conv feature space (cheap enough to score every epoch on a CPU;
not Inception FID — see common/metrics.py). Lower is better.
"""


def space(trial):
    trial.suggest_float("lr_g", 5e-5, 5e-4, log=True)
    trial.suggest_float("lr_ratio", 1.0, 8.0)
    trial.suggest_float("beta1", 0.0, 0.9)
    trial.suggest_categorical("spectral_norm", [False, True])
    trial.suggest_categorical("gan_loss", ["bce", "hinge"])


family = "dcgan"
metric = "sample_fd"
mode = "min"
num_samples = 8
max_epochs = 10
defaults = {"latent_dim": 100}
scheduler = {"grace_period": 2, "reduction_factor": 3}
resources = {"cpu": 1, "gpu": 0}
