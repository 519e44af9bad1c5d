"""The layout study: which Conv-VAE layout within the slides' 1.38M parameters matches their numbers.

The slides give the layer list, latent 64 and the parameter count, but not the kernel size, the
widths after the first stage, or whether a hidden FC sits beside the latent. Each run below is
one such layout, all within ±10% of 1.38M (``param_budget``), all trained as the slides were
(20 epochs, batch 128, Adam lr 1e-3, beta = 1 constant, seed 42, the 10k train subset). The
layout whose validation reconstruction and KL sit nearest the slides' split (139.56 + 61.25)
becomes ``sweeps/slides.py``'s; BENCHMARKS.md ("The layout study") has the table.
"""

_SLIDES_TRAINING = {"family": "vae", "max_epochs": 20, "latent_dim": 64, "beta": 1.0, "lr": 1e-3}
_SLIDES_TRAINING |= {"beta_schedule": "constant", "param_budget": "slides"}

# name: (kernel_size, base_channels, stage_mults, hidden_dim); parameter counts in the comments
_LAYOUTS = {
    "fc256": (4, 32, "1,2,4", 256),  # 1.43M: the layout every earlier run used
    "nofc-c48": (4, 48, "1,2,4", 0),  # 1.34M: no hidden FC, wider convs
    "nofc-k5": (5, 48, "1,2,3", 0),  # 1.37M
    "fc512-c32": (4, 32, "1,2,2", 512),  # 1.35M: a wider FC, a narrower 4x4 map
    "k3-fc256": (3, 64, "1,1,2", 256),  # 1.33M
    "k5-fc128": (5, 48, "2,2,2", 128),  # 1.36M
}

runs = [
    {**_SLIDES_TRAINING, "kernel_size": k, "base_channels": c, "stage_mults": m, "hidden_dim": h}
    for k, c, m, h in _LAYOUTS.values()
]
metric = "val_mse_kl"
mode = "min"
resources = {"cpu": 2, "gpu": "auto"}
scheduler = None
