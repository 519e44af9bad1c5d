"""Ablation: spectral norm + TTUR (lr_D = 4 lr_G) vs the plain DCGAN, 2 seeds.

Fixed runs, no search, 10 epochs each on the 10k subset: the slides' "Spectral Norm + TTUR"
mitigation for training instability against the slides' DCGAN. Only ``spectral_norm``,
``lr_ratio`` and ``seed`` differ, so the report's mitigation section can pair them.
"""

runs = [
    {"family": "dcgan", "seed": 1, "max_epochs": 10, "spectral_norm": False, "lr_ratio": 1.0},
    {"family": "dcgan", "seed": 1, "max_epochs": 10, "spectral_norm": True, "lr_ratio": 4.0},
    {"family": "dcgan", "seed": 2, "max_epochs": 10, "spectral_norm": False, "lr_ratio": 1.0},
    {"family": "dcgan", "seed": 2, "max_epochs": 10, "spectral_norm": True, "lr_ratio": 4.0},
]
resources = {"cpu": 2, "gpu": "auto"}
scheduler = None
