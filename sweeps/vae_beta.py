"""Conv-VAE: latent size and beta schedule (Higgins et al. 2017; Fu et al. 2019).

Searches latent_dim in {16, 32, 64, 128, 256}, the schedule kind (constant, linear warm-up,
cyclical) and its parameters, the final beta, and free bits (a KL floor per latent dimension,
Kingma et al. 2016; 0 = off).
Objective: ``val_bpd`` — the negative ELBO (beta = 1) in bits per dimension on the 5,000
validation images (never trained on, never the test split), under the decoder's likelihood
discretised to the 8-bit data. It is what a VAE optimises, comparable across every beta a trial
trained with, and measured every epoch, so ASHA can stop weak trials early; ASHA compares a trial
only from the epoch its beta schedule has settled (``common.sweep.tuning.ScheduleAwareASHA``), so
warm-up and cyclical trials are not stopped for the KL their low early beta lets through. The
linear-probe accuracy (the representation metric) is logged every ``probe_every`` epochs and
shown in the report, but it is too costly to compute every epoch, so it is not the objective.
"""


def space(trial):
    trial.suggest_categorical("latent_dim", [16, 32, 64, 128, 256])
    kind = trial.suggest_categorical("beta_schedule", ["constant", "linear", "cyclical"])
    trial.suggest_float("beta", 0.25, 4.0, log=True)
    if kind == "linear":
        trial.suggest_int("warmup_epochs", 1, 10)
    elif kind == "cyclical":
        trial.suggest_int("cycles", 1, 4)
        trial.suggest_float("ramp_fraction", 0.25, 1.0)
    trial.suggest_categorical("free_bits", [0.0, 0.05, 0.1, 0.25])


family = "vae"
metric = "val_bpd"
mode = "min"
num_samples = 8
max_epochs = 10
defaults = {"probe_every": 5}
scheduler = {"grace_period": 2, "reduction_factor": 3}
resources = {"cpu": 1, "gpu": "auto"}
