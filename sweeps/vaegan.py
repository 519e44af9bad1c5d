"""VAE-GAN (Larsen et al. 2016): the Conv-VAE's decoder trained as a GAN generator, reconstruction
measured in a discriminator layer.

Searches gamma (the decoder's reconstruction-vs-GAN weight, log scale), the encoder/decoder
learning rate, the TTUR ratio lr_D / lr, the KL weight beta, the D layer used for feature
matching and the latent size.
Objective: ``sample_fd``, the Fréchet distance of 1,000 prior samples to the 10,000 test images
in a fixed random conv feature space (not Inception FID; see common/metrics.py). Lower is better.
Sample quality is what the GAN half is for; the pixel ``test_elbo`` (same definition as the VAE
family's) is logged every epoch and shown in the report, but the feature-space reconstruction
deliberately gives up pixel likelihood, so it is not the objective.
"""


def space(trial):
    trial.suggest_float("gamma", 1e-4, 1.0, log=True)
    trial.suggest_float("lr", 1e-4, 1e-3, log=True)
    trial.suggest_float("lr_ratio", 1.0, 4.0)
    trial.suggest_float("beta", 0.25, 4.0, log=True)
    trial.suggest_categorical("feature_layer", [1, 2])
    trial.suggest_categorical("latent_dim", [32, 64, 128])


family = "vaegan"
metric = "sample_fd"
mode = "min"
num_samples = 8
max_epochs = 10
defaults = {"probe_every": 5}
scheduler = {"grace_period": 2, "reduction_factor": 3}
resources = {"cpu": 1, "gpu": 0}
