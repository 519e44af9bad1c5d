"""The product in four folders, read in this order (docs/ARCHITECTURE.md):

- ``common.trial``: one training run: configs, data, models, losses, tasks, the loop.
- ``common.metrics``: scoring: the feature maths, the domain classifier, the Inception protocol.
- ``common.sweep``: many trials: space files, Ray Tune + Optuna, MLflow tracking, the final stage.
- ``common.report``: MLflow -> the comparison report; it imports nothing from a running sweep.

``common.errors`` (bad input, exit status 2) and ``common.figures`` (PNGs) serve every folder.
The trial logs through ``common.sweep.tracking.TrialRun`` and shows bars through
``common.sweep.progress.bar``; nothing else imports upwards.
"""
