"""The product in floors, read from the bottom up (docs/ARCHITECTURE.md). A floor imports only the
floors below it; ``make lint`` checks this (import-linter's layers contract in pyproject.toml).

- ``common.base``: plumbing: bad input, the slides' numbers, data, devices, progress, MLflow runs.
- ``common.metrics``: scoring: the feature maths, the domain classifier, the Inception protocol.
- ``common.trial``: one training run: configs, models, losses, tasks, the loop.
- ``common.sweep``: many trials: space files, Ray Tune + Optuna, the final stage.
- ``common.report``: MLflow -> the comparison report; it imports nothing from a running sweep.

Above them: ``trainables`` (Tune's entry points, and ``trainables.sweep.run``, which hands the
trainable to the sweep and builds the report after it) and ``run_sweep`` (the CLI).
"""
