"""Ray Tune trainables: thin wiring from Tune's config dict to ``common.loop.run_trial``."""
from __future__ import annotations

from ray import tune


class TuneSession:
    """The loop's Session protocol over Ray Tune's function API."""

    def __init__(self):
        self.trial_id = tune.get_context().get_trial_id()
        self.trial_dir = tune.get_context().get_trial_dir()  # where unlogged MLflow writes are kept
        import ray

        self.node = ray.get_runtime_context().get_node_id()[:12]  # Ray's node id: unique per node

    def get_checkpoint_dir(self) -> str | None:
        ckpt = tune.get_checkpoint()
        # The checkpoint is local on this node (Tune downloads it); keep the handle alive.
        self._ckpt_ctx = ckpt.as_directory() if ckpt else None
        return self._ckpt_ctx.__enter__() if self._ckpt_ctx else None

    def report(self, metrics, checkpoint_dir: str | None) -> None:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None)
