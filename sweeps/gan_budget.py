"""DCGAN within the slides' budget (issue 16): the slides' nets, 40 epochs, the 10k train subset.

Budget: the slides' architecture (G 128-128-64 with its 384-unit FC, D 64-128-256 with its 512-unit
FC, unchanged, so the parameter counts are the slides'), at most 40 epochs of the seeded 10,000-image
train subset. Searched, all levers that leave the nets alone: G's weight EMA (``ema_decay``),
DiffAugment (``diffaug``), the loss (bce, hinge), spectral norm in D, the learning rates
(``lr_g`` and the TTUR ratio), Adam's betas and the batch size. R1 (``r1_weight``) is a lever
but not searched here: its double backward through D every step made the first try of this
search too slow for a 2-core CPU (BENCHMARKS.md, "the DCGAN search"); on a GPU add it back with
``trial.suggest_categorical("r1_weight", [0.0, 0.1, 1.0, 10.0])``. Objective: ``val_classifier_fd`` (the rank study's pick, BENCHMARKS.md), on the
validation images; ASHA stops the weak trials from epoch 5 on, two at a time on a 2-core CPU.
The goal (FID <= 60 at 10k samples vs the 10k test images) is judged by the final stage's
Inception FID of the best checkpoint, never by the search.
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
    trial.suggest_categorical("batch_size", [64, 128])


family = "dcgan"
metric = "val_classifier_fd"
mode = "min"
num_samples = 16
max_epochs = 40
defaults = {"latent_dim": 100, "train_subset": 10000}
scheduler = {"grace_period": 5, "reduction_factor": 3}
resources = {"cpu": 1, "gpu": "auto"}
