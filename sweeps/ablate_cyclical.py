"""Ablation: cyclical beta annealing vs constant beta (the slides' VAE mitigation), 2 seeds.

Fixed runs, no search: the slides' VAE budget (20 epochs, 10k subset, beta = 1) with the slides'
cyclical schedule (4 cycles, ramp over the first half of each) against a constant beta. Only
``beta_schedule`` and ``seed`` differ, so the report's mitigation section can pair them.
"""

runs = [
    {"family": "vae", "seed": 1, "max_epochs": 20, "beta_schedule": "constant"},
    {"family": "vae", "seed": 1, "max_epochs": 20, "beta_schedule": "cyclical", "cycles": 4},
    {"family": "vae", "seed": 2, "max_epochs": 20, "beta_schedule": "constant"},
    {"family": "vae", "seed": 2, "max_epochs": 20, "beta_schedule": "cyclical", "cycles": 4},
]
resources = {"cpu": 2, "gpu": "auto"}
scheduler = None
