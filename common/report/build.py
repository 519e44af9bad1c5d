"""MLflow -> comparison report (``report.md`` + self-contained ``index.html`` + ``figures/``).

Reads MLflow only (docs/ARCHITECTURE.md, "MLflow layout"): sweep parent runs and their trial
runs, so a report can be rebuilt anywhere the tracking store is reachable. An experiment may
hold several sweeps (``make sweep``: VAE, then DCGAN); each family comes from the latest parent
that has trials of it. Every number carries the data, split and sample count it was measured
on, from the trial's params and step-0 metrics ``n_train_images`` / ``n_test_images``; only
the slides' column (their published numbers) is constant. 'Best within the slides' budget' sets the slides
preset and the best other config, each over its seeds, beside the slides and the goals
(common/report/seeds.py, over every trial of the experiment). The top-trials tables carry detector flags, a
multi-objective sweep gets its Pareto front, and 'Failure modes and mitigations' measures each
mitigation over every trial of the experiment (all parents; common/report/mitigations.py).

This module puts the sections (a module each, common/report/*) in order and writes them; a section is
a list of blocks (common/report/render.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

from mlflow import MlflowClient

from common.report.figures import figure_blocks
from common.report.glance import glance_blocks
from common.report.importances import importance_blocks
from common.report.metadata import metadata_blocks
from common.report.mitigation_section import mitigation_blocks
from common.report.mitigations import measure
from common.report.pareto import pareto_blocks
from common.report.quality import quality_blocks
from common.report.render import to_html, to_markdown
from common.report.runs import FAMILY_LABEL, ReportError, Trial, experiment_trials, load
from common.report.seeds import budget_blocks
from common.report.slides_comparison import slides_comparison_blocks
from common.report.top_trials import top_trials_blocks
from common.report.values import SPLITS_NOTE

__all__ = ["ReportError", "build_report"]


def build_report(
    experiment: str | Sequence[str],
    out_dir: str | Path,
    tracking_uri: str | None = None,
    parent_run_id: str | None = None,
) -> Path:
    """Write ``out_dir/report.md``, ``out_dir/index.html`` and ``out_dir/figures/*.png``.

    With ``parent_run_id``, reports on that parent run's trials only (all families under it).
    Otherwise each family comes from the most recent run tagged ``sweep.role=parent`` in
    ``experiment`` that has trials of that family. Several experiments (``--report A B``) make one
    report: each family from the first experiment listed that has it, and the sections over every
    trial (the seed spreads, the budget table, the mitigations) read the trials of all of them.
    Raises ReportError if an experiment or the parent is missing. Returns the path of
    ``index.html``. The folder is also logged under ``report/`` to every parent run used (a failed
    upload only warns).
    """
    # 1. what MLflow holds: the parents used, their families, and every trial of the experiments (all parents)
    client = MlflowClient(tracking_uri=tracking_uri)
    names = [experiment] if isinstance(experiment, str) else list(experiment)
    parents, families, every = [], {}, []
    for name in names:
        used, found = load(client, name, parent_run_id)
        parents += used
        families |= {k: v for k, v in found.items() if k not in families}
        every += experiment_trials(client, used[0].info.experiment_id)
    experiment = " + ".join(names)
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    # 2. the sections in report order; Figures is built first: 'At a glance' shows the samples it copies
    figures = figure_blocks(client, families, out_dir)
    blocks = [
        ("h1", f"{' vs '.join(FAMILY_LABEL[n] for n in families) or 'Sweep'} report: {experiment}"),
        ("p", SPLITS_NOTE),
        *glance_blocks(families, every, out_dir),
    ]
    blocks += slides_comparison_blocks(client, families) + _budget(client, every) + quality_blocks(families) + figures
    blocks += top_trials_blocks(client, families) + pareto_blocks(families, every, out_dir)
    blocks += (
        importance_blocks(families) + _mitigations(experiment, every) + metadata_blocks(experiment, parents, families)
    )
    # 3. both renderings
    (out_dir / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    index = out_dir / "index.html"
    index.write_text(to_html(blocks, f"Sweep report: {experiment}", base=out_dir), encoding="utf-8")
    # 4. the folder, logged to every parent used
    for parent in parents:
        try:
            client.log_artifacts(parent.info.run_id, str(out_dir), "report")
        except Exception as e:  # the report on disk is the product; the upload is a convenience
            warnings.warn(f"report written to {out_dir} but logging it to MLflow run {parent.info.run_id} failed: {e}")
    return index


def _budget(client: MlflowClient, trials: list[Trial]) -> list[tuple]:
    """'Best within the slides' budget' over every trial of the experiment (common/report/seeds.py)."""
    history = lambda t, metric: [m.value for m in client.get_metric_history(t["id"], metric)]
    return budget_blocks([t.as_dict() for t in trials], history)


def _mitigations(experiment: str, trials: list[Trial]) -> list[tuple]:
    """Measured gains of each mitigation over every trial of the experiment (common/report/mitigations.py)."""
    parents = {t.tags.get("mlflow.parentRunId") for t in trials}
    scope = (
        f"all {len(trials)} trial runs of experiment {experiment!r} (children of {len(parents)} sweep "
        "parent run(s), not only the sweeps reported above)"
    )
    ran = {t.family for t in trials}  # the catalogue of the families that ran, nothing of the others
    results = [r for r in measure([t.as_dict() for t in trials]) if r.mitigation.family in ran]
    return mitigation_blocks(results, scope) if results else []
