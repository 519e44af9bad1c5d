"""The batch-32 lever on the winners' DCGAN, at three seeds: fixed runs, no search.

``sweeps/winners.py``'s DCGAN (the no-FC G, hinge, spectral norm, TTUR 3.9, G's EMA) with
``batch_size`` 32 instead of 128, everything else equal: the same 40 epochs of the 10k train
subset are four times the generator steps, within the slides' budget. Each run is scored on the
test split by the final stage; with ``--eval-n 10000`` at the standard N. One CPU per run, so a
2-core machine runs two seeds at once; ``--export`` keeps each finished run's numbers:

    python run_sweep.py --space sweeps/winners_b32.py --eval-n 10000 --no-report \\
        --data PATH --export bench/results --tracking-uri sqlite:///$E/mlflow.db --storage $E/ray_results

BENCHMARKS.md, "The batch-32 lever on the no-FC G", has seed 42 (run alone before this file,
with this config param for param) against batch 128 on the same seeds.
"""

from sweeps.winners import _DCGAN

runs = [{**_DCGAN, "batch_size": 32, "seed": seed} for seed in (42, 43, 44)]
resources = {"cpu": 1, "gpu": "auto"}
scheduler = None
