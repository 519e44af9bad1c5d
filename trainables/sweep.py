"""A sweep whose trials are this package's Tune trainables, then its report: what the CLI runs.
``common.sweep.driver.run`` is handed ``trainables.trial.trainable`` (``common`` never imports
this layer), and the report is built from what MLflow holds once the sweep has completed."""

from __future__ import annotations

from common.report.build import build_report
from common.sweep import driver
from common.sweep.options import SweepOptions, SweepPlan
from common.sweep.result import SweepResult
from trainables.trial import trainable


def run(opts: SweepOptions, planned: SweepPlan | None = None) -> SweepResult:
    """Run the sweep ``opts`` describes (``planned``: ``plan(opts)``'s result, if already checked),
    then, unless ``opts.report`` is off, write its report to ``opts.out`` (``result.report``)."""
    result = driver.run(opts, trainable, planned)
    if opts.report and result.completed and result.single_trial is None:
        result.report = str(build_report(result.experiment, opts.out, result.tracking_uri, result.parent_run_id))
    return result
