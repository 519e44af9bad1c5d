"""The report's last section, 'Appendix: run metadata': the experiment, each family's trial counts
and parent run, the splits, the domain classifier, and a column per sweep parent run used."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from mlflow.entities import Run

from common.base.names import TRIAL_STATUS
from common.report.runs import FAMILY_LABEL, FamilyTrials
from common.report.values import SPLITS_NOTE

SWEEP_PARAMS = ["space", "num_samples", "max_epochs", "metric", "mode", "seed", "data", "train_subset"]
SWEEP_TAGS = [
    ("space file (tag sweep.space)", "sweep.space"),
    ("git commit", "git_commit"),
    ("data source (tag data)", "data"),
    ("data hash (tag data_hash)", "data_hash"),
]


def metadata_blocks(experiment: str, parents: list[Run], families: dict[str, FamilyTrials]) -> list[tuple]:
    """The section; ``parents``: the sweep parent runs used, newest first."""
    return [
        ("h2", "Appendix: run metadata"),
        ("table", ["Field", "Value"], _fields(experiment, parents, families)),
        ("h3", "Sweeps (parent runs) used"),
        ("table", ["Field", *[f"parent {i}" for i in range(1, len(parents) + 1)]], _sweeps(parents, families)),
    ]


def _fields(experiment: str, parents: list[Run], families: dict[str, FamilyTrials]) -> list[list[str]]:
    rows = [
        ["Experiment", experiment],
        ["Report built (UTC)", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")],
    ]
    for fam in families.values():
        statuses = Counter(t.tags.get(TRIAL_STATUS, "unknown") for t in fam.trials)
        counts = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        rows.append(
            [f"{FAMILY_LABEL[fam.name]} trials", f"{len(fam.trials)} ({counts}), parent run {fam.parent.info.run_id}"]
        )
    if not families:
        rows.append(["Trials", "none logged under the parent run(s) below"])
    rows.append(["Splits", SPLITS_NOTE])
    for p in parents[:1]:
        if acc := p.data.tags.get("classifier.test_acc"):
            rows.append(
                [
                    "Domain classifier (per-epoch sample scores)",
                    f"{p.data.tags.get('classifier.name', '?')}: {float(acc):.1%} test accuracy on "
                    f"{p.data.tags.get('classifier.n_test', '?')} test images, trained on "
                    f"{p.data.tags.get('classifier.n_train', '?')} train images (common/metrics/classifier.py)",
                ]
            )
    return rows


def _sweeps(parents: list[Run], families: dict[str, FamilyTrials]) -> list[list[str]]:
    """A row per field, a column per parent run."""
    started = lambda p: dt.datetime.fromtimestamp(p.info.start_time / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    reported = lambda p: (
        ", ".join(FAMILY_LABEL[f.name] for f in families.values() if f.parent.info.run_id == p.info.run_id) or "none"
    )
    return [
        ["run id", *[p.info.run_id for p in parents]],
        ["run name", *[p.info.run_name or "-" for p in parents]],
        ["families reported from it", *map(reported, parents)],
        ["started (UTC)", *map(started, parents)],
        *[[label, *[p.data.tags.get(tag, "—") for p in parents]] for label, tag in SWEEP_TAGS],
        *[[f"sweep param {k}", *[p.data.params.get(k, "—") for p in parents]] for k in SWEEP_PARAMS],
    ]
