"""The report's 'Figures': each family's best trial's ``figures/*.png`` artifacts, copied into
``out_dir/figures``, and the report's own training curves of those trials from MLflow's metric history."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from unittest import mock

from mlflow import MlflowClient

from common.base.figures import save_curves
from common.report.runs import FAMILY_LABEL, FamilyTrials, Trial
from common.report.values import fmt_value
from common.trial.families import FAMILIES

FIGURE_ORDER = ["samples", "reconstructions", "interpolations", "curves"]
CURVES_CAPTION = (
    "Best trial per family, x = epoch. test_* on the test split; g/d losses and d_real/d_fake are "
    "epoch means over train-subset batches; val_* on the validation images; val_probe_acc only on "
    "probe epochs."
)


def figure_blocks(client: MlflowClient, families: dict[str, FamilyTrials], out_dir: Path) -> list[tuple]:
    """The section; writes ``out_dir/figures/{family}_{name}.png`` and ``training_curves.png``."""
    blocks: list[tuple] = [("h2", "Figures")]
    history: dict[str, list[tuple[int, float]]] = {}  # "family: metric" -> [(epoch, value)]
    for name, fam in families.items():
        if (t := fam.best) is None:
            continue
        blocks.append(("h3", f"{FAMILY_LABEL[name]}: best trial {t.trial_id}"))
        blocks += _copy(client, name, t, out_dir)
        for key in FAMILIES[name].curve_metrics:
            if points := [(m.step, m.value) for m in client.get_metric_history(t.run_id, key)]:
                history[f"{name}: {key}"] = points
    blocks += _curves(history, out_dir)
    if len(blocks) == 1:
        blocks.append(("p", "No best trial in any family, so there are no figures."))
    return blocks


def _copy(client: MlflowClient, name: str, t: Trial, out_dir: Path) -> list[tuple]:
    """Download the trial's figures/*.png (samples first) into out_dir/figures: an img block each."""
    blocks: list[tuple] = []
    try:
        pngs = [f.path for f in client.list_artifacts(t.run_id, "figures") if f.path.endswith(".png")]
    except Exception as e:
        pngs = []
        blocks.append(("p", f"Could not list artifacts of run {t.run_id}: {e}"))
    rank = lambda a: (FIGURE_ORDER.index(Path(a).stem) if Path(a).stem in FIGURE_ORDER else 99, a)
    # MLflow draws a tqdm bar per downloaded file; patch.dict restores the setting afterwards.
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.dict(os.environ, {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}),
    ):
        for art in sorted(pngs, key=rank):
            dest = out_dir / "figures" / f"{name}_{Path(art).name}"
            try:
                dest.write_bytes(Path(client.download_artifacts(t.run_id, art, tmp)).read_bytes())
            except Exception as e:
                blocks.append(("p", f"Could not download {art} of run {t.run_id}: {e}"))
                continue
            caption = f"{FAMILY_LABEL[name]} {t.trial_id}: {Path(art).stem} (run artifact {art})"
            blocks.append(("img", f"figures/{dest.name}", caption))
    if not pngs:
        blocks.append(("p", f"Run {t.run_id} has no figures/*.png artifacts."))
    return blocks


def _curves(history: dict[str, list[tuple[int, float]]], out_dir: Path) -> list[tuple]:
    """Small multiples of ``history``; after one epoch only, a table of its values instead."""
    if not history:
        return []
    if all(len(points) == 1 for points in history.values()):  # 1 epoch: a row, not panels
        rows = [[k, points[0][0], fmt_value(k.split(": ", 1)[1], points[0][1])] for k, points in history.items()]
        return [
            ("h3", "Training curves (report)"),
            ("p", "One epoch per best trial: its values, not curves."),
            ("table", ["family: metric", "epoch", "value"], rows),
        ]
    title = "Best trial per family: per-epoch metrics from MLflow"
    save_curves(history, out_dir / "figures" / "training_curves.png", title=title)
    return [("h3", "Training curves (report)"), ("img", "figures/training_curves.png", CURVES_CAPTION)]
