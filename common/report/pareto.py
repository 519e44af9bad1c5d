"""The report's 'Pareto front (multi-objective sweeps)': the non-dominated trials of a sweep whose
parent param metric is "a,b" (mode "max,min"), per family and over the families one parent searched,
as a scatter and a table. ``non_dominated`` is the filter (also used by 'At a glance').

``pareto_section`` is pure over trial dicts (``runs.Trial.as_dict`` plus ``trial_id``);
``pareto_blocks`` writes the scatters into ``out_dir/figures``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from common.base.figures import agg_figure
from common.base.names import TRIAL_STATUS
from common.base.objective import MODES, Objective, non_dominated
from common.report.flags import trial_flags
from common.report.runs import FAMILY_LABEL, FamilyTrials, Trial
from common.report.seeds import preset_means
from common.report.values import final_value, fmt_value, measured_on


def pareto_section(
    trials: Sequence[dict],
    objectives: list[Objective],
    varying: list[str],
    png: str,
    title: str,
    anchors: Sequence[tuple[str, Sequence[float]]] = (),
) -> tuple[list[tuple], Any]:
    """Report blocks for one multi-objective sweep and its scatter (a matplotlib Figure with an Agg canvas,
    not saved: the caller writes it to ``png``; None when no trial qualifies). Trial dicts also hold
    ``trial_id``. Only completed trials with finite final values of every objective take part.
    ``anchors``: (label, values of ``keys``) drawn as stars beside the front, e.g. the slides' models."""
    # 1. the trials that take part, their objective values and the front among them
    keys = [o.metric for o in objectives]
    done = [
        t
        for t in trials
        if t["tags"].get(TRIAL_STATUS) == "completed" and all(final_value(t, k) is not None for k in keys)
    ]
    points = [[final_value(t, k) for k in keys] for t in done]
    front = non_dominated(points, objectives)
    blocks: list[tuple] = [("h3", f"{title}: {' and '.join(f'{o.metric} ({o.mode})' for o in objectives)}")]
    if not done:
        return blocks + [("p", f"None of its {len(trials)} trials completed with final {', '.join(keys)}.")], None
    # 2. what was compared, and on what
    blocks.append(
        (
            "p",
            f"Final-epoch values of the {len(done)} completed trials that logged every objective "
            f"({len(trials) - len(done)} other trial(s) left out); {len(front)} are non-dominated: no "
            f"other trial is at least as good on every objective and better on one. Measured on: "
            + "; ".join(f"{k}: {measured_on(k, done[0])}" for k in keys)
            + ".",
        )
    )
    # 3. the scatter, and where the anchors sit on it
    fig = _scatter(done, points, front, objectives, title, anchors)
    if anchors:
        placed = "; ".join(
            f"{label}: " + ", ".join(f"{k} {fmt_value(k, v)}" for k, v in zip(keys, values))
            for label, values in anchors
        )
        blocks.append(("p", f"Placed on it (black stars, not part of the front): {placed}."))
    # 4. the figure's caption, then the front as a table
    over = f" (front over all {len(keys)} objectives)" if len(keys) > 2 else ""
    caption = f"{title}: {keys[0]} vs {keys[1]} of every completed trial; non-dominated in red{over}"
    table = ("table", ["trial_id", *varying, *keys, "flags"], _rows(done, points, front, objectives, varying))
    return blocks + [("img", png, caption), table], fig


def _rows(done, points, front, objectives, varying) -> list[list[str]]:
    """A row per trial on the front, best first objective first: its varying params, objectives and flags."""
    keys, order = [o.metric for o in objectives], objectives[0].ranked(front, key=lambda i: points[i][0])
    return [
        [
            done[i]["trial_id"],
            *[done[i]["params"].get(k, "—") for k in varying],
            *[fmt_value(k, v) for k, v in zip(keys, points[i])],
            ", ".join(trial_flags(done[i]["metrics"], done[i]["tags"])) or "—",
        ]
        for i in order
    ]


def _scatter(done, points, front, objectives, title, anchors):
    """The first two objectives of every trial in ``done``, the front in red and annotated, anchors as stars."""
    fig = agg_figure((6, 4.4))
    ax = fig.subplots()
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=18, c="#aaaaaa", label="all completed trials")
    ax.scatter([points[i][0] for i in front], [points[i][1] for i in front], s=40, c="C3", label="non-dominated")
    for i in front:
        ax.annotate(done[i]["trial_id"], points[i][:2], fontsize=7, xytext=(3, 3), textcoords="offset points")
    for label, values in anchors:
        ax.scatter([values[0]], [values[1]], s=140, marker="*", c="black")
        ax.annotate(label, tuple(values[:2]), fontsize=7, xytext=(4, -9), textcoords="offset points")
    x, y = objectives[:2]
    ax.set(xlabel=f"{x.metric} ({x.mode})", ylabel=f"{y.metric} ({y.mode})", title=f"Pareto front: {title}")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _objectives(fam: FamilyTrials) -> list[Objective]:
    """The sweep's objectives, from its parent's params ("a,b" and "max,min"); [] for a single
    objective or params that do not pair up."""
    keys, modes = [(fam.parent.data.params.get(p) or "").split(",") for p in ("metric", "mode")]
    ok = len(keys) >= 2 and len(modes) == len(keys) and all(m in MODES for m in modes)
    return [Objective(k, m) for k, m in zip(keys, modes)] if ok else []


def pareto_blocks(families: dict[str, FamilyTrials], every: list[Trial], out_dir: Path) -> list[tuple]:
    """The section: a front per multi-objective family, then one per parent that searched several
    families (e.g. sweeps/tradeoff3.py) with the slides' models (the experiment's slides-preset trials,
    mean over seeds, from ``every``) placed on it. [] when no sweep was multi-objective."""
    blocks: list[tuple] = []
    shared: dict[str, list[FamilyTrials]] = {}
    for name, fam in families.items():
        objectives = _objectives(fam)
        if objectives:
            shared.setdefault(fam.parent.info.run_id, []).append(fam)
            title = f"{FAMILY_LABEL[name]}, parent run {fam.parent.info.run_id}"
            trials = [t.as_dict() for t in fam.trials]
            blocks += _front(out_dir, f"{name}_pareto.png", trials, objectives, fam.varying, title)
    for parent_id, fams in shared.items():
        if len(fams) >= 2:
            objectives = _objectives(fams[0])
            trials = [
                {**t.as_dict(), "trial_id": f"{FAMILY_LABEL[f.name]} {t.trial_id}"} for f in fams for t in f.trials
            ]
            anchors = preset_means([t.as_dict() for t in every], [o.metric for o in objectives])
            title = f"{', '.join(FAMILY_LABEL[f.name] for f in fams)} together, parent run {parent_id}"
            png = f"{parent_id[:8]}_pareto_families.png"
            blocks += _front(out_dir, png, trials, objectives, [], title, anchors)
    return [("h2", "Pareto front (multi-objective sweeps)"), *blocks] if blocks else []


def _front(out_dir: Path, png: str, trials: list[dict], objectives, varying, title, anchors=()) -> list[tuple]:
    section, fig = pareto_section(trials, objectives, varying, f"figures/{png}", title, anchors)
    if fig is not None:
        fig.savefig(out_dir / "figures" / png, format="png")
    return section
