"""DCGAN within the slides' budget: their layer list and parameter counts, 40 epochs, the 10k train subset.

Budget: the slides' layer list with each net within ±10% of its published count (G 1.24M, D
2.76M; ``param_budget``), at most 40 epochs of the seeded 10,000-image train subset. Searched: the
layout the slides leave open (widths, kernel size, hidden FC: ``_G_LAYOUTS``, ``_D_LAYOUTS``) and
the training levers: G's weight EMA (``ema_decay``), DiffAugment (``diffaug``), the loss (bce,
hinge), spectral norm in D, the learning rates (``lr_g`` and the TTUR ratio), Adam's betas and the
batch size (40 epochs at batch 32 are four times the generator steps of batch 128). R1
(``r1_weight``) is a lever but not searched here: its double backward through D every step made
the first try of this search too slow for a 2-core CPU (BENCHMARKS.md, "the DCGAN search"); on a
GPU add it back with ``trial.suggest_categorical("r1_weight", [0.0, 0.1, 1.0, 10.0])``.
Objective: ``val_classifier_fd`` (the rank study's pick, BENCHMARKS.md), on the validation
images; ASHA stops the weak trials from epoch 5 on, two at a time on a 2-core CPU. The goal (FID
<= 60 at 10k samples vs the 10k test images) is judged by the final stage's Inception FID of the
best checkpoint, never by the search.
"""


def space(trial):
    trial.suggest_categorical("ema_decay", [0.0, 0.99, 0.999])
    trial.suggest_categorical("diffaug", ["", "translation,cutout", "color,translation,cutout"])
    trial.suggest_categorical("gan_loss", ["bce", "hinge"])
    trial.suggest_categorical("spectral_norm", [False, True])
    trial.suggest_float("lr_g", 1e-4, 5e-4, log=True)
    trial.suggest_float("lr_ratio", 1.0, 4.0)
    trial.suggest_categorical("beta1", [0.0, 0.5])
    trial.suggest_categorical("beta2", [0.9, 0.999])
    trial.suggest_categorical("batch_size", [32, 64, 128])
    # The layouts the slides leave open (widths, kernel, hidden FC), each net within ±10% of its
    # published count (param_budget refuses any other), keyed by the first width:
    g = _G_LAYOUTS[trial.suggest_categorical("g_channels", list(_G_LAYOUTS))]
    d = _D_LAYOUTS[trial.suggest_categorical("d_channels", list(_D_LAYOUTS))]
    return {**g, **d}


_G_LAYOUTS = {
    128: {"g_hidden": 384},  # 1.22M: 128-128-64 behind a 384-unit FC (sweeps/slides.py's)
    192: {"g_hidden": 0},  # 1.20M: no hidden FC, 192-192-96
    160: {"g_hidden": 0, "g_kernel_size": 5},  # 1.22M: no hidden FC, 5x5 kernels
}
_D_LAYOUTS = {
    64: {"d_hidden": 512},  # 2.76M: 64-128-256 and a 512-unit FC (sweeps/slides.py's)
    128: {"d_hidden": 0},  # 2.64M: no hidden FC, 128-256-512
}


family = "dcgan"
metric = "val_classifier_fd"
mode = "min"
num_samples = 16
max_epochs = 40
defaults = {"latent_dim": 100, "train_subset": 10000, "param_budget": "slides"}
scheduler = {"grace_period": 5, "reduction_factor": 3}
resources = {"cpu": 1, "gpu": "auto"}
