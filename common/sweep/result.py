"""What a sweep hands back to its caller: the driver fills it, the end stage adds the final
evaluation, the CLI prints it and turns it into an exit status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Failed:
    """A family's failed trials: how many, and the first one's error line."""

    count: int
    first: str


@dataclass
class BestTrial:
    """A fit's best trial at its best epoch (the one its checkpoints/best.pt holds): what the
    tuner picked; the end stage fills ``model_id``, ``baselines`` and ``final``."""

    mlflow_run_id: str
    metric: str  # the validation objective it was picked on
    value: float  # its best value of ``metric``
    config: dict[str, Any]
    model_id: str | None = None  # the logged model (best_<family>) of a search's best
    baselines: dict[str, float] = field(default_factory=dict)  # the probe's raw-pixel and random-init baselines
    final: dict[str, float] = field(default_factory=dict)  # the test-split evaluation (FID & co.)


@dataclass
class SweepResult:
    """One sweep's outcome. ``best``: family -> its best trial; ``runs``: every fixed run of a
    ``runs`` space."""

    experiment: str
    tracking_uri: str
    parent_run_id: str = ""
    mlflow_ui: str = ""
    families: list[str] = field(default_factory=list)  # in the order they ran
    best: dict[str, BestTrial] = field(default_factory=dict)
    runs: list[BestTrial] = field(default_factory=list)
    failed: dict[str, Failed] = field(default_factory=dict)
    completed: bool = False  # the end stage ran and the parent run is closed: the report can be built
    tracking_error: str | None = None  # MLflow went away before the end stage: --resume finishes it
    single_trial: dict[str, Any] | None = None  # --single-trial: its family, final metrics, checkpoint
    report: str | None = None  # the report's index.html, once the caller has built it

    def add_failures(self, family: str, errors: list[str]) -> None:
        if errors:
            self.failed.setdefault(family, Failed(0, errors[0])).count += len(errors)

    def lost(self) -> list[str]:
        """The families none of whose trials completed (the sweep fails for them)."""
        return [f for f in self.families if f not in self.best]
