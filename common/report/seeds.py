"""What holds over seeds: the report's 'Seed-to-seed spread' and 'Best within the slides' budget'.

A seed group is the completed trials of one family whose params differ only in ``seed`` and in
where they ran (``WHERE``); a group of >= 2 seeds gives each number a mean, a sample std and a
95% Student-t interval (common.report.intervals). Pure functions over trial dicts (``params``,
``metrics``, ``tags``, as ``runs.Trial.as_dict`` gives them), returning report blocks.

The budget table puts three columns beside the goals: the slides' published numbers,
the slides preset (the runs tagged ``sweep.preset = slides``, and runs of their config) and the winners (of
the other groups, the one with the best mean validation objective: selection on validation;
every number shown is on the test split).
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

from common.base import slides
from common.base.names import PRESET_TAG, SLIDES_PRESET, TRIAL_STATUS
from common.base.objective import Objective
from common.report.intervals import fmt_interval, paired, t_interval
from common.report.runs import FAMILY_LABEL as LABEL
from common.report.runs import fallback_objective
from common.report.values import fmt_count, fmt_value, measured_on
from common.trial.claims import PIXEL_GAIN, Goal
from common.trial.families import FAMILIES, Family

Trial = dict
WHERE = {"seed", "data", "device", "deterministic"}  # which seed and where it ran, not what it computed
SPREAD_KEYS = [
    "test_mse_kl",
    "test_kl",
    "test_bpd",
    "test_probe_acc",
    "test_probe_acc_pixels",
    "fid",
    "kid",
    "test_classifier_fd",
]
GOAL_FID_N = 10_000


def budget_families() -> list[Family]:
    """The registered families that take part in the budget table (those with goals and the slides' epochs)."""
    return [f for f in FAMILIES.values() if f.goals and f.budget_epochs]


def budget(family: Family) -> tuple[int, dict[str, float]]:
    """The slides' budget of ``family``: (its epochs, n_params metric -> the slides' count) for each of
    its nets the slides published (common.base.slides.PARAMS). Groups outside it cannot be the winners."""
    return family.budget_epochs or 0, {m: slides.PARAMS[m] for _, m, _ in family.param_rows if m in slides.PARAMS}


BUDGET_HEADER = [
    "metric (test split)",
    "the slides",
    "the slides preset (sweeps/slides.py)",
    "the sweep's winners",
    "winners − preset, paired by seed",
    "goal",
    "verdict",
]


def _logged(t: Trial) -> dict[str, str]:
    """A trial's params less ``WHERE``, as MLflow logged them."""
    return {k: v for k, v in t["params"].items() if k not in WHERE}


def _what(t: Trial) -> dict[str, str]:
    """What a trial computed: ``_logged`` with ``val_size = 0`` ("auto") as the number of validation
    images it resolved to, so a run that spelled the same images out groups and matches with it."""
    params, n = _logged(t), t["metrics"].get("n_val_images")
    if params.get("val_size") == "0" and n:
        params["val_size"] = str(int(n))
    return params


def seed_groups(trials: Sequence[Trial]) -> list[list[Trial]]:
    """Completed trials grouped by everything but ``WHERE``; only groups of >= 2 distinct seeds."""
    groups: dict[tuple, list[Trial]] = {}
    for t in trials:
        if t["tags"].get(TRIAL_STATUS) == "completed":
            groups.setdefault(tuple(sorted(_what(t).items())), []).append(t)
    return [g for g in groups.values() if len({t["params"].get("seed") for t in g}) >= 2]


def value(t: Trial, key: str) -> float | None:
    if key == PIXEL_GAIN:
        acc, pixels = (t["metrics"].get(k) for k in ("test_probe_acc", "test_probe_acc_pixels"))
        return None if acc is None or pixels is None else acc - pixels
    return t["metrics"].get(key)


def _fmt(key: str, v: float) -> str:
    if key == "kid":
        return f"{1000 * v:.2f}"
    if key == PIXEL_GAIN:
        return f"{100 * v:+.2f} pp"
    return f"{v:.3f}" if key == "recall" else fmt_value(key, v)


def _on(key: str, t: Trial) -> str:
    if key in ("fid", "kid", "recall"):
        return (
            f"{fmt_count(t['tags'].get('eval.n')) or '?'} generated vs {fmt_count(t['tags'].get('eval.reference_n')) or 'all'} "
            f"test images, {t['tags'].get('eval.extractor', 'Inception')}"
        )
    return measured_on("test_probe_acc" if key == PIXEL_GAIN else key, t)


def spread_blocks(families: dict[str, Sequence[Trial]]) -> list[tuple]:
    """'Seed-to-seed spread': each seed group's numbers over its seeds (family name -> its trials)."""
    rows = []
    for name, trials in families.items():
        for group in seed_groups(trials):
            seeds = ", ".join(sorted({str(t["params"].get("seed")) for t in group}))
            for key in SPREAD_KEYS:
                values = [v for t in group if (v := value(t, key)) is not None]
                if len(values) >= 2:
                    mean, sd, lo, hi = t_interval(values)
                    f = lambda v, k=key: _fmt(k, v)
                    rows.append(
                        [
                            LABEL[name],
                            key + (" x 1000" if key == "kid" else ""),
                            f"{len(values)} ({seeds})",
                            f"{f(mean)} ± {f(sd)}",
                            fmt_interval(lo, hi, f),
                            _on(key, group[0]),
                        ]
                    )
    if not rows:
        return []
    return [
        ("h3", "Seed-to-seed spread"),
        (
            "p",
            "Trials that differ only in their seed: mean ± sample std over seeds, and the 95% Student-t "
            "interval of the mean. A difference from the slides within this spread is not a difference.",
        ),
        ("table", ["family", "metric", "seeds", "mean ± std", "interval", "measured on"], rows),
    ]


def preset_params(trials: Sequence[Trial]) -> dict[str, dict[str, str]]:
    """family -> the config (params less ``WHERE``) of the runs the sweep tagged as the slides
    preset (``PRESET_TAG``, from a space file's ``preset = "slides"``); runs of the same config
    count as the preset too, whichever space ran them."""
    out: dict[str, dict[str, str]] = {}
    for t in trials:
        if t["tags"].get(PRESET_TAG) == SLIDES_PRESET:
            out.setdefault(t["params"].get("family"), _what(t))
    return out


def outside_budget(t: Trial) -> str | None:
    """Why trial ``t`` ran outside the slides' budget (``budget``), or None."""
    epochs, sizes = budget(FAMILIES[t["params"]["family"]])
    if t["params"].get("train_subset") != str(slides.TRAIN_SUBSET):
        return f"train_subset {t['params'].get('train_subset')} is not {slides.TRAIN_SUBSET:,}"
    if int(t["params"].get("max_epochs", 0)) > epochs:
        return f"max_epochs {t['params']['max_epochs']} > {epochs}"
    for key, n in sizes.items():
        if (got := t["metrics"].get(key)) is None or abs(got - n) > slides.PARAMS_TOLERANCE * n:
            return f"{key} {fmt_value(key, got)} is not within ±{slides.PARAMS_TOLERANCE:.0%} of {fmt_value(key, n)}"
    return None


def preset_means(trials: Sequence[Trial], keys: Sequence[str]) -> list[tuple[str, list[float]]]:
    """The slides' models, as a Pareto front places them: (label, the mean final value of each of
    ``keys``) over the completed trials that ran the slides preset's config, any seed."""
    preset, runs = preset_params(trials), {}
    for t in trials:
        family = t["params"].get("family")
        if t["tags"].get(TRIAL_STATUS) == "completed" and family in preset and _what(t) == preset[family]:
            runs.setdefault(family, []).append(t)
    out = []
    for family, ts in runs.items():
        values = [[t["metrics"][k] for t in ts if k in t["metrics"]] for k in keys]
        if all(values):
            out.append(
                (f"the slides' {LABEL[family]} (slides preset, {len(ts)} seed(s))", [sum(v) / len(v) for v in values])
            )
    return out


def budget_blocks(trials: Sequence[Trial], history: Callable[[Trial, str], Iterable[float]]) -> list[tuple]:
    """'Best within the slides' budget' over every trial of the experiment; ``history(trial, metric)``:
    the trial's per-epoch validation values of ``metric``. A trial's objective is the best of them
    for its family's default metric (lower is better): what selected it."""

    def objective(trial: Trial) -> float | None:
        goal = fallback_objective(trial["params"]["family"])
        return goal.best(history(trial, goal.metric))

    columns, notes = _columns(trials, objective)
    if not any(g for pair in columns.values() for g in pair) and not notes:
        return []
    rows = [
        [
            f"{LABEL[f.name]}: {g.label} (`{g.key}`)",
            g.slides,
            *(_cell(group, g.key) for group in columns[f.name]),
            _paired(*columns[f.name], g),
            _goal(g),
            _verdict(columns[f.name][1], g),
        ]
        for f in budget_families()
        for g in f.goals
    ]
    within = ", ".join(f"{f.label} <= {f.budget_epochs} epochs" for f in budget_families())
    return [
        ("h2", "Best within the slides' budget"),
        (
            "p",
            f"The {slides.TRAIN_SUBSET // 1000}k train subset, the slides' nets, {within}. Each cell: mean ± sample std "
            "over the group's seeds, its 95% Student-t interval, the seeds, then the data, split and N. The "
            "winners are, of the configs run at >= 2 seeds other than the slides preset, the one with the best "
            "mean validation objective; a goal is met when the winners' whole interval meets it. The paired "
            "column is the mean of the per-seed differences over the seeds both ran, a gain only when its "
            "interval excludes 0.",
        ),
        ("table", BUDGET_HEADER, rows),
        ("ul", notes),
    ]


def _columns(trials: Sequence[Trial], objective: Callable[[Trial], float | None]) -> tuple[dict, list[str]]:
    """(family -> (the slides preset's group, the winners' group), either None when not run; the notes on
    the winners' config and on the groups left out as outside the budget)."""
    preset, columns, notes = preset_params(trials), {}, []
    for family in (f.name for f in budget_families()):
        groups = seed_groups([t for t in trials if t["params"].get("family") == family])
        ours = [g for g in groups if _what(g[0]) == preset.get(family)]
        outside = [(g, why) for g in groups if g not in ours and (why := outside_budget(g[0]))]
        others = [
            (sum(vs) / len(vs), g)
            for g in groups
            if g not in ours and not outside_budget(g[0])
            if (vs := [v for t in g if (v := objective(t)) is not None])
        ]
        columns[family] = (ours[0] if ours else None, min(others, key=lambda p: p[0])[1] if others else None)
        if columns[family][1]:
            notes.append(_config_note(family, columns[family][1], preset.get(family, {})))
        notes += [
            f"{LABEL[family]}: a group of {len(g)} seeds left out, outside the budget: {why}." for g, why in outside
        ]
    return columns, notes


def _cell(group: list[Trial] | None, key: str) -> str:
    values = [v for t in group or [] if (v := value(t, key)) is not None]
    if not values:
        return "not run" if group is None else "not logged"
    mean, sd, lo, hi = t_interval(values)
    f = lambda v: _fmt(key, v)
    spread = f"± {f(sd)}, {fmt_interval(lo, hi, f)}" if sd is not None else "(1 seed: no spread)"
    return f"{f(mean)} {spread}; {len(values)} seeds; {_on(key, group[0])}"


def _paired(preset: list[Trial] | None, winners: list[Trial] | None, goal: Goal) -> str:
    """The winners minus the preset, seed by seed (the seeds both groups ran): mean, its interval and
    whether it is a gain, a loss or inconclusive (the interval holds 0), by the goal's direction."""
    if not preset or not winners:
        return "not run"
    if goal.key in ("fid", "kid", "recall") and len({t["tags"].get("eval.n") for t in preset + winners}) > 1:
        return "not paired: the two groups' N of generated images differ"
    ours = {t["params"].get("seed"): value(t, goal.key) for t in preset}
    diffs = [
        v - ours[s]
        for t in winners
        if (s := t["params"].get("seed")) in ours
        if (v := value(t, goal.key)) is not None and ours[s] is not None
    ]
    if len(diffs) < 2:
        return f"{len(diffs)} seed(s) in common: no interval"
    mean, lo, hi, said = paired(diffs, Objective(goal.key, "min" if goal.op == "<=" else "max"))
    f = lambda v: _fmt_diff(goal.key, v)
    return f"{f(mean)}, {fmt_interval(lo, hi, f)}, {len(diffs)} seeds: {said}"


def _fmt_diff(key: str, v: float) -> str:
    """A signed difference in the metric's unit: accuracies in percentage points, KID x 10^3."""
    if key in (PIXEL_GAIN, "test_probe_acc"):
        return f"{100 * v:+.2f} pp"
    return f"{1000 * v:+.2f}" if key == "kid" else f"{v:+.3f}" if key == "recall" else f"{v:+.2f}"


def _goal(goal: Goal) -> str:
    return f"{goal.op} {_fmt(goal.key, goal.threshold)}" + (f" at N = {GOAL_FID_N:,}" if goal.key == "fid" else "")


def _verdict(group: list[Trial] | None, goal: Goal) -> str:
    """met / not met (with the distance of the mean from the goal) / inconclusive, on the 95% interval."""
    key = goal.key
    values = [v for t in group or [] if (v := value(t, key)) is not None]
    if len(values) < 2:
        return "not measured: no winners over >= 2 seeds" if not values else "not judged: 1 seed"
    if key == "fid" and any(t["tags"].get("eval.n") != str(GOAL_FID_N) for t in group):
        return f"not judged: FID reads higher at fewer than {GOAL_FID_N:,} generated images (see N)"
    mean, _, lo, hi = t_interval(values)
    op, x = goal.op, goal.threshold
    ok = (lambda v: v <= x) if op == "<=" else (lambda v: v >= x) if op == ">=" else (lambda v: v > x)
    if ok(lo) and ok(hi):
        return "met"
    if not ok(lo) and not ok(hi):
        return f"not met: the mean misses by {_fmt(key, abs(mean - x)).lstrip('+')}"
    return "inconclusive: the interval straddles the goal"


def _config_note(family: str, group: list[Trial], preset: dict[str, str]) -> str:
    """The winners' config as its difference from the slides preset's, or, with no preset run of this
    family in the experiments, from the family's defaults (as MLflow logs them: ``str`` of each)."""
    base, said = preset, "the slides preset's config"
    if not preset:
        base = {k: str(v) for k, v in FAMILIES[family].config().to_dict().items()}
        said = f"the {LABEL[family]} defaults (no slides preset run of it here)"
    params = _what(group[0]) if preset else _logged(group[0])  # the defaults' val_size is "0" itself
    diff = ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if base.get(k) != v) or "none"
    return f"{LABEL[family]} winners: {said} but {diff}."
