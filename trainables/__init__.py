"""Ray Tune trainables: thin wiring from Tune's config dict to ``common.trial.loop.run_trial``."""

from __future__ import annotations

from ray import tune


class TuneSession:
    """The loop's Session protocol over Ray Tune's function API."""

    def __init__(self, label: str = ""):
        import ray

        self.label = label  # the run name's suffix: the searcher's first params (common.trial.records.run_label)
        context = tune.get_context()
        self.trial_id = context.get_trial_id()
        self.trial_dir = context.get_trial_dir()  # where unlogged MLflow writes are kept
        node = ray.get_runtime_context().get_node_id()
        self.node, self.node_ip = node[:12], ray.util.get_node_ip_address()  # the id is unique per node
        # What decides the device (common.base.device.device_kind): this trial's GPU share, and
        # whether its node declares the custom resource "mps" (an Apple node).
        declared = next((n["Resources"] for n in ray.nodes() if n["NodeID"] == node), {})
        self.resources = {
            "GPU": context.get_trial_resources().required_resources.get("GPU", 0.0),
            "mps": declared.get("mps", 0.0),
        }

    def get_checkpoint_dir(self) -> str | None:
        ckpt = tune.get_checkpoint()
        # The checkpoint is local on this node (Tune downloads it); keep the handle alive.
        self._ckpt_ctx = ckpt.as_directory() if ckpt else None
        return self._ckpt_ctx.__enter__() if self._ckpt_ctx else None

    def report(self, metrics, checkpoint_dir: str | None) -> None:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None)
