"""The budget searches' winners at three seeds (issue 16): fixed runs, no search, like sweeps/seed.py.

Within the slides' budget (the slides' nets, the seeded 10k train subset, VAE 20 epochs). Each
config is the trial that ranked first on the validation objective in its search, copied here
param for param; the search and its table are in BENCHMARKS.md ("Within the slides' budget").
Run it into one experiment with the seed preset's spread, so the report's 'Best within the
slides' budget' table has all three columns, every number on the test split:

    python run_sweep.py --space sweeps/seed_spread.py --experiment budget --no-report
    python run_sweep.py --space sweeps/winners.py --experiment budget

VAE: `sweeps/vae_budget.py`'s first 8 trials (val_mse_kl 214.13 at seed 42). The DCGAN's winner
joins once `sweeps/gan_budget.py` has been searched.
"""

_VAE = {"family": "vae", "max_epochs": 20, "latent_dim": 64, "beta": 1.0, "batch_size": 32, "lr": 6.53e-4,
        "lr_schedule": "constant", "lr_warmup_epochs": 1.0, "beta1": 0.9, "beta2": 0.99,
        "beta_schedule": "linear", "warmup_epochs": 2, "free_bits": 0.1}

runs = [{**_VAE, "seed": seed} for seed in (42, 43, 44)]
resources = {"cpu": 2, "gpu": "auto"}
scheduler = None
