"""The study's two runs (sweeps/slides.py) at three seeds, for the spread: Conv-VAE 20 epochs, DCGAN 40.

Fixed runs, no search. Each run is scored on the test split at the end (the final stage evaluates
every run of a ``runs`` space), and the report's 'Seed-to-seed spread' table gives each number's
mean, std and 95% t-interval over the seeds: a difference from the slides inside that spread is
not a difference.
"""

_VAE = {"family": "vae", "max_epochs": 20, "latent_dim": 64, "beta": 1.0, "beta_schedule": "constant", "lr": 1e-3}
_DCGAN = {"family": "dcgan", "max_epochs": 40, "latent_dim": 100, "lr_g": 2e-4, "lr_ratio": 1.0, "beta1": 0.5}

runs = [
    {**_VAE, "seed": 42},
    {**_VAE, "seed": 43},
    {**_VAE, "seed": 44},
    {**_DCGAN, "seed": 42},
    {**_DCGAN, "seed": 43},
    {**_DCGAN, "seed": 44},
]
resources = {"cpu": 2, "gpu": "auto"}
scheduler = None
