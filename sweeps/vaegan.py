"""VAE-GAN (Larsen et al. 2016): the Conv-VAE's decoder trained as a GAN generator, reconstruction
measured in a discriminator layer.

Searches gamma (the decoder's reconstruction-vs-GAN weight, log scale), the encoder/decoder
learning rate, the TTUR ratio lr_D / lr, the KL weight beta, the D layer used for feature
matching and the latent size.
Objective: ``val_classifier_fd``, the Fréchet distance of 1,000 prior samples (fixed z) to the
5,000 validation images in the domain classifier's features (see sweeps/gan_ttur.py). Lower is
better. Sample quality is what the GAN half is for; the pixel ``val_bpd`` / ``val_mse_kl`` (same
definitions as the VAE family's) are logged every epoch and shown in the report, but the
feature-space reconstruction deliberately gives up pixel likelihood, so they are not the objective.
"""


def space(trial):
    trial.suggest_float("gamma", 1e-4, 1.0, log=True)
    trial.suggest_float("lr", 1e-4, 1e-3, log=True)
    trial.suggest_float("lr_ratio", 1.0, 4.0)
    trial.suggest_float("beta", 0.25, 4.0, log=True)
    trial.suggest_categorical("feature_layer", [1, 2])
    trial.suggest_categorical("latent_dim", [32, 64, 128])


family = "vaegan"
metric = "val_classifier_fd"
mode = "min"
num_samples = 8
max_epochs = 10
defaults = {"probe_every": 5}
scheduler = {"grace_period": 2, "reduction_factor": 3}
resources = {"cpu": 1, "gpu": "auto"}
