"""DCGAN: failure-mode mitigations from the study slides ('Failure Modes & Mitigations').

Searches the loss (non-saturating BCE, hinge, WGAN-GP), spectral normalisation on D,
minibatch discrimination, one-sided label smoothing (BCE only), D steps per G step (WGAN-GP
only, where the critic is meant to be trained closer to optimality) and the TTUR ratio.
WGAN-GP trials run without minibatch discrimination (a batch-coupled layer makes the gradient
penalty no longer per sample; DCGANConfig refuses the pair) and with Adam (0, 0.9), the WGAN-GP
paper's betas (Gulrajani et al. 2017), returned as constants by ``space``.
Objective: ``val_classifier_fd`` (domain-classifier Fréchet distance to the validation images,
fixed z; see sweeps/gan_ttur.py); every trial also logs the detectors ``grad_norm_d``,
``grad_norm_g``, ``val_class_coverage`` and ``mode_collapse`` (common/trial/diagnostics.py). Lower is better.
"""


def space(trial):
    gan_loss = trial.suggest_categorical("gan_loss", ["bce", "hinge", "wgan-gp"])
    trial.suggest_categorical("spectral_norm", [False, True])
    trial.suggest_float("lr_ratio", 1.0, 4.0)
    if gan_loss == "bce":
        trial.suggest_float("label_smoothing", 0.0, 0.2)
    if gan_loss == "wgan-gp":
        trial.suggest_categorical("n_critic", [1, 5])
        return {"minibatch_disc": 0, "beta1": 0.0, "beta2": 0.9}
    trial.suggest_categorical("minibatch_disc", [0, 32])
    return None


family = "dcgan"
metric = "val_classifier_fd"
mode = "min"
num_samples = 12
max_epochs = 10
defaults = {"latent_dim": 100}
scheduler = {"grace_period": 2, "reduction_factor": 3}
resources = {"cpu": 1, "gpu": "auto"}
