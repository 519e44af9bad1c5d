"""The slides preset's two runs (sweeps/slides.py) at three seeds, for the spread: Conv-VAE 20 epochs, DCGAN 40.

Fixed runs, no search. Each run is scored on the test split at the end (the final stage evaluates
every run of a ``runs`` space), and the report's 'Seed-to-seed spread' table gives each number's
mean, std and 95% t-interval over the seeds: a difference from the slides inside that spread is
not a difference.
"""

from sweeps.slides import runs as _SLIDES

runs = [{**run, "seed": seed} for run in _SLIDES for seed in (42, 43, 44)]
resources = {"cpu": 2, "gpu": "auto"}
scheduler = None
preset = "slides"  # every run is tagged sweep.preset=slides: the report finds the preset by it
