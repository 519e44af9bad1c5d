"""The slides' two runs exactly, no search: Conv-VAE for 20 epochs, DCGAN for 40.

Both on the seeded 10,000-image train subset (seed 42), evaluated on the 10,000 test images;
the report puts the slides' published numbers beside ours.
"""

runs = [
    {"family": "vae", "max_epochs": 20, "latent_dim": 64, "beta": 1.0, "beta_schedule": "constant", "lr": 1e-3}
    | {"param_budget": "slides"},
    {"family": "dcgan", "max_epochs": 40, "latent_dim": 100, "lr_g": 2e-4, "lr_ratio": 1.0, "beta1": 0.5}
    | {"param_budget": "slides"},
]
resources = {"cpu": 2, "gpu": "auto"}
scheduler = None
