"""Failure modes and mitigations, measured; the report's other pure helpers. No I/O.

A trial here is a dict ``{"id", "params", "metrics", "tags"}``: its MLflow params (strings), its
final-epoch metric values (``run.data.metrics``: the value at the highest step) and its tags.

``measure`` compares, for each mitigation in ``MITIGATIONS``, trials that differ ONLY in the
mitigation's own fields and ``seed``: trials of the family are grouped by every other param;
within a group the trials with the mitigation on are compared with those with it off; a pair is
an on and an off trial with the same seed (values of the same config and seed are averaged), and
when the two sides share no seed their seed-means form one unpaired comparison. Only
``trial_status=completed`` trials give values: a stopped, diverged or collapsed (pruned) trial has
no value at its final epoch; how many trials of matched groups diverged or collapsed is counted.
Within a group, on trials are split by the values of the mitigation's own fields (beta=4 and beta=0.5
are separate comparisons against beta=1). ``mitigation_blocks`` renders the report section's blocks.

Also here, shared with common/report/build.py: ``fmt_value`` / ``measured_on`` (how a metric is printed and
the data, split and sample count behind it), ``trial_flags`` (per-trial detector flags) and
``non_dominated`` / ``pareto_section`` (the Pareto front of a multi-objective sweep).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from common.report.importances import parse_value
from common.report.intervals import direction, fmt_interval, t_interval

Trial = dict[str, Any]


def _num(p: dict, key: str) -> float | None:
    v = parse_value(p.get(key))
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _flag(p: dict, key: str) -> bool | None:
    return {"true": True, "1": True, "false": False, "0": False}.get(str(p.get(key)).lower())


def _side(on: bool, off: bool) -> bool | None:
    """True = mitigation on, False = off (the control), None = neither (not compared)."""
    return True if on else False if off else None


@dataclass(frozen=True)
class Target:
    metric: str
    mode: str  # "max" | "min": the direction in which the mitigation is meant to move it
    claim: str  # the seed's claimed gain (/work/shared/seed/vae_vs_dcgan_slides.md), verbatim-ish
    check: tuple = ()  # ("above", x): with-mean > x; ("rel", lo, hi): relative gain in [lo, hi] %


@dataclass(frozen=True)
class Mitigation:
    name: str
    family: str
    fields: tuple[str, ...]  # its own params: they (and seed) may differ between on and off trials
    state: Callable[[dict], bool | None]  # params -> on / off / neither
    on_off: str  # how "on" and "off" are read from params, for the report
    targets: tuple[Target, ...]
    biased_if: Callable[[dict, dict], bool] | None = None  # (params, tags) of an on trial -> metric bias


NO_CLAIM = "— (not claimed in the seed)"
SN_TTUR = "stable convergence, smooth training (spectral norm + TTUR together)"
KL, PROBE = (
    Target("test_kl", "max", "KL > 10", ("above", 10.0)),
    Target("test_probe_acc", "max", "meaningful representations"),
)
FD, FUTURE = Target("test_classifier_fd", "min", NO_CLAIM), "— ({} is only future work in the seed)"
MITIGATIONS: tuple[Mitigation, ...] = (
    Mitigation(
        "cyclical β annealing",
        "vae",
        ("beta_schedule", "cycles", "ramp_fraction"),
        lambda p: _side(p.get("beta_schedule") == "cyclical", p.get("beta_schedule") == "constant"),
        'on: beta_schedule = "cyclical"; off: "constant"',
        (KL, PROBE),
    ),
    Mitigation(
        "free bits",
        "vae",
        ("free_bits",),
        lambda p: None if (v := _num(p, "free_bits")) is None else v > 0,
        "on: free_bits > 0; off: 0",
        (Target("test_kl", "max", NO_CLAIM), Target("test_active_units", "max", NO_CLAIM)),
    ),
    Mitigation(
        "perceptual loss",
        "vae",
        ("perceptual_weight", "perceptual_net", "perceptual_weights"),
        lambda p: None if (v := _num(p, "perceptual_weight")) is None else v > 0,
        "on: perceptual_weight > 0; off: 0",
        (
            Target("test_classifier_fd", "min", "sharper textures, better details"),
            Target("test_randconv_fd", "min", "sharper textures, better details"),
        ),
        lambda p, t: p.get("perceptual_net") == "randconv" or "metric_bias" in t,
    ),
    Mitigation(
        "β-VAE",
        "vae",
        ("beta",),
        lambda p: None if (v := _num(p, "beta")) is None else v != 1,
        "on: beta ≠ 1; off: beta = 1",
        (Target("test_kl", "max", FUTURE.format("β-VAE")), Target("test_probe_acc", "max", FUTURE.format("β-VAE"))),
    ),
    Mitigation(
        "minibatch discrimination",
        "dcgan",
        ("minibatch_disc", "minibatch_dim"),
        lambda p: None if (v := _num(p, "minibatch_disc")) is None else v > 0,
        "on: minibatch_disc > 0; off: 0",
        (Target("test_class_kl", "min", "+20–30% diversity"), Target("test_classifier_fd", "min", "better coverage")),
    ),
    Mitigation(
        "spectral norm + TTUR",
        "dcgan",
        ("spectral_norm", "lr_ratio"),
        lambda p: _side(
            _flag(p, "spectral_norm") is True and (_num(p, "lr_ratio") or 0) > 1,
            _flag(p, "spectral_norm") is False and _num(p, "lr_ratio") == 1,
        ),
        "on: spectral_norm = true and lr_ratio > 1; off: spectral_norm = false and lr_ratio = 1",
        (Target("test_classifier_fd", "min", SN_TTUR), Target("grad_norm_d", "min", SN_TTUR)),
    ),
    Mitigation(
        "spectral norm alone",
        "dcgan",
        ("spectral_norm",),
        lambda p: _flag(p, "spectral_norm"),
        "on: spectral_norm = true; off: false",
        (Target("test_classifier_fd", "min", "— (claimed only with TTUR)"),),
    ),
    Mitigation(
        "TTUR alone",
        "dcgan",
        ("lr_ratio",),
        lambda p: None if (v := _num(p, "lr_ratio")) is None else _side(v > 1, v == 1),
        "on: lr_ratio > 1; off: lr_ratio = 1",
        (Target("test_classifier_fd", "min", "— (claimed only with spectral norm)"),),
    ),
    Mitigation(
        "label smoothing",
        "dcgan",
        ("label_smoothing",),
        lambda p: None if (v := _num(p, "label_smoothing")) is None else v > 0,
        "on: label_smoothing > 0; off: 0",
        (FD,),
    ),
    Mitigation(
        "hinge loss",
        "dcgan",
        ("gan_loss",),
        lambda p: _side(p.get("gan_loss") == "hinge", p.get("gan_loss") == "bce"),
        'on: gan_loss = "hinge"; off: "bce"',
        (FD,),
    ),
    Mitigation(
        "WGAN-GP loss",
        "dcgan",
        ("gan_loss", "gp_weight", "n_critic"),
        lambda p: _side(p.get("gan_loss") == "wgan-gp", p.get("gan_loss") == "bce"),
        'on: gan_loss = "wgan-gp"; off: "bce"',
        (Target("test_classifier_fd", "min", FUTURE.format("WGAN-GP")),),
    ),
)


@dataclass
class Result:
    """One (mitigation, target) measurement; ``pairs`` empty = not measured."""

    mitigation: Mitigation
    target: Target
    pairs: list[tuple[Any, float, float]] = field(default_factory=list)  # (seed or None if unpaired, on, off)
    on: list[Trial] = field(default_factory=list)  # the trials behind the with-values
    off: list[Trial] = field(default_factory=list)  # and behind the without-values
    settings: Counter = field(default_factory=Counter)  # on trial's own fields ("beta=4.0") -> pairs
    n_on: int = 0  # completed trials of the family with the mitigation on / off (matched or not)
    n_off: int = 0
    matched: bool = False  # some group holds both on and off trials (even if none logged the target)
    sizes: tuple[int, int] = (0, 0)  # trials (any status) on / off in matched groups
    ended: dict = field(default_factory=dict)  # "diverged" | "collapsed" -> (on, off) counts in matched groups
    biased: int = 0  # on trials in pairs whose target metric is biased in their favour

    @property
    def seeds(self) -> int:
        return len({s for s, _, _ in self.pairs if s is not None})

    def stats(self) -> dict[str, float | None]:
        on, off = [p[1] for p in self.pairs], [p[2] for p in self.pairs]
        diffs = [a - b for a, b in zip(on, off)]
        sd = lambda xs: statistics.stdev(xs) if len(xs) >= 2 else None
        m_on, m_off = statistics.fmean(on), statistics.fmean(off)
        _, gain_sd, lo, hi = t_interval(diffs)  # over pairs (seeds): the gain's uncertainty
        return {
            "on": m_on,
            "off": m_off,
            "on_sd": sd(on),
            "off_sd": sd(off),
            "gain": m_on - m_off,
            "gain_sd": gain_sd,
            "gain_lo": lo,
            "gain_hi": hi,
            "rel": (m_on - m_off) / abs(m_off) * 100 if m_off else None,
        }


def _family(t: Trial) -> str | None:
    return t["params"].get("family") or t["tags"].get("family")


def _value(t: Trial, key: str) -> float | None:
    v = t["metrics"].get(key)
    return v if v is not None and math.isfinite(v) else None


def measure(trials: Sequence[Trial], mitigations: Sequence[Mitigation] = MITIGATIONS) -> list[Result]:
    """One Result per (mitigation, target), in catalogue order (see the module docstring)."""
    results = []
    for m in mitigations:
        groups: dict[tuple, list[tuple[bool, Trial]]] = defaultdict(list)
        for t in trials:
            if _family(t) == m.family and (side := m.state(t["params"])) is not None:
                key = tuple(sorted((k, v) for k, v in t["params"].items() if k not in m.fields and k != "seed"))
                groups[key].append((side, t))
        done = lambda side, ts: [t for s, t in ts if s is side and t["tags"].get("trial_status") == "completed"]
        n_on = sum(len(done(True, g)) for g in groups.values())
        n_off = sum(len(done(False, g)) for g in groups.values())
        both = [g for g in groups.values() if {s for s, _ in g} == {True, False}]
        count = lambda side, status=None: sum(
            s is side and status in (None, t["tags"].get("trial_status")) for g in both for s, t in g
        )
        ended = {st: (count(True, st), count(False, st)) for st in ("diverged", "collapsed")}
        for target in m.targets:
            r = Result(
                m,
                target,
                n_on=n_on,
                n_off=n_off,
                matched=bool(both),
                sizes=(count(True), count(False)),
                ended={k: v for k, v in ended.items() if any(v)},
            )
            for g in both:
                off = _by_seed(done(False, g), target.metric)
                units: dict[tuple, list[Trial]] = defaultdict(list)  # split on trials by their own-field values
                for t in done(True, g):
                    units[tuple((k, t["params"].get(k)) for k in m.fields)].append(t)
                for setting, ts in units.items():
                    on = _by_seed(ts, target.metric)
                    if not on or not off:
                        continue
                    common = sorted(set(on) & set(off), key=str)
                    pairs = (
                        [(s, on[s][0], off[s][0]) for s in common]
                        if common
                        else [
                            (
                                None,
                                statistics.fmean(v for v, _ in on.values()),
                                statistics.fmean(v for v, _ in off.values()),
                            )
                        ]
                    )
                    r.pairs += pairs
                    used_on = [t for s in (common or on) for t in on[s][1]]
                    r.on += used_on
                    r.off += [t for s in (common or off) for t in off[s][1]]
                    r.settings[", ".join(f"{k}={v}" for k, v in setting if v is not None)] += len(pairs)
                    if m.biased_if and target.metric.endswith("randconv_fd"):
                        r.biased += sum(m.biased_if(t["params"], t["tags"]) for t in used_on)
            results.append(r)
    return results


def _by_seed(trials: list[Trial], key: str) -> dict[Any, tuple[float, list[Trial]]]:
    """seed -> (mean of ``key`` over the trials with that seed, those trials); trials without it dropped."""
    vals: dict[Any, list[tuple[float, Trial]]] = defaultdict(list)
    for t in trials:
        if (v := _value(t, key)) is not None:
            vals[t["params"].get("seed")].append((v, t))
    return {s: (statistics.fmean(v for v, _ in vs), [t for _, t in vs]) for s, vs in vals.items()}


def verdict(r: Result) -> str:
    """Does the measured gain bear out the seed's claim? 'better' / 'worse' only when the 95% t-interval
    of the per-pair gains excludes 0 (so never with one pair), else 'inconclusive'; then any numeric check."""
    s = r.stats()
    text = direction(s["gain_lo"], s["gain_hi"], r.target.mode)
    if r.target.check[:1] == ("above",):
        text += f"; with-mean {'>' if s['on'] > r.target.check[1] else '≤'} {r.target.check[1]:g}"
    elif r.target.check[:1] == ("rel",) and s["rel"] is not None:
        lo, hi = r.target.check[1:]
        where = "within" if lo <= s["rel"] <= hi else "below" if s["rel"] < lo else "above"
        text += f"; {s['rel']:+.1f}% is {where} the claimed +{lo:g}–{hi:g}%"
    return text


# ---- formatting (shared with common/report/build.py) ---------------------------------------------
def fmt_value(key: str, value: float | None) -> str:
    """A metric value as the report prints it: probe_acc as %, train time in min, sizes in M."""
    if value is None or not math.isfinite(value):
        return "—" if value is None else str(value)
    if key.endswith("probe_acc") or key.startswith("test_probe_acc"):  # a fraction; > 1 is already a percentage
        return f"{value * 100 if value <= 1 else value:.2f}%"
    if key == "train_time_s":
        return f"{value / 60:.1f} min"
    if key.startswith("n_params"):
        return f"{value / 1e6:.2f}M ({int(value):,})"
    return f"{value:.3f}" if key in ("g_loss", "d_loss") or key.endswith("bpd") else f"{value:.2f}"


def fmt_count(value: float | str | None) -> str | None:
    """10000.0 or '10000' -> '10,000'; None when not logged or not a number."""
    try:
        return f"{int(float(value)):,}"
    except (TypeError, ValueError):
        return None


def measured_on(key: str, trial: Trial, epochs: int | None = None) -> str:
    """Data, split and sample count behind ``key``: the trial's data param and step-0 size metrics
    (``epochs``: how many the trial ran, for train_time_s)."""
    params, tags = trial["params"], trial["tags"]
    data = params.get("data") or tags.get("data", "?")
    n_train, n_val, n_test = (
        fmt_count(trial["metrics"].get(f"n_{split}_images")) for split in ("train", "val", "test")
    )
    size = lambda n: f"{n} images" if n else "size not logged"
    val = f"validation: {size(n_val)} of the train split outside the train subset"
    test = f"test split, {size(n_test)}"
    where = val if key.startswith("val_") else test if key.startswith("test_") else None
    best = "best epoch (on validation)" if key.startswith("test_") else "final epoch"
    if key.endswith("probe_acc") or key.startswith("test_probe_acc"):
        scored = "validation images" if key.startswith("val_") else f"the {test}"
        base = {"test_probe_acc_pixels": "raw pixels; ", "test_probe_acc_random_init": "randomly initialised net; "}
        return (
            f"{data}, {base.get(key, '')}logistic regression fit on the train subset ({size(n_train)}), C chosen "
            f"on the {val}, scored on {scored}"
        )
    if key.endswith(("_classifier_fd", "_randconv_fd", "_class_coverage", "_class_kl", "_classifier_is")):
        n_gen = fmt_count(params.get("eval_samples")) or "? (not logged)"
        feats = "randconv256 features" if "randconv" in key else "domain-classifier features"
        return f"{data}, {n_gen} fixed-z generated images vs {where}, {feats} (not Inception FID), {best}"
    if where:
        return f"{data}, {where}, {best}"
    if key in ("g_loss", "d_loss", "d_real", "d_fake", "loss_ratio", "grad_norm_d", "grad_norm_g"):
        what = "ratio of final-epoch means" if key == "loss_ratio" else "final-epoch mean"
        return f"{data}, train subset {size(n_train)}, {what} over batches"
    if key == "train_time_s":
        return f"cumulative training time, {epochs or '?'} epochs on {tags.get('device', '?')}"
    return data


# ---- detector flags and Pareto front -------------------------------------------------------
def trial_flags(metrics: dict, tags: dict) -> list[str]:
    """Detector flags of one trial: ``diverged@E`` / ``collapsed@E`` (pruned by collapse_patience) at epoch E,
    ``stopped`` (ASHA), ``failed``; ``posterior collapse`` / ``mode collapse`` when the final metric is 1, or
    ``transient ... collapse@E`` when only the tag ``detector.<name>`` (first epoch fired) says it did; and
    ``randconv_fd biased`` (tag metric_bias)."""
    status, flags = tags.get("trial_status"), []
    if status in ("diverged", "collapsed"):
        flags.append(f"{status}@{tags.get(status + '_epoch', '?')}")
    elif status in ("stopped", "failed"):
        flags.append(status)
    for key in ("posterior_collapse", "mode_collapse"):
        label = key.replace("_", " ")
        if metrics.get(key) == 1:
            flags.append(label)
        elif fired := tags.get(f"detector.{key}"):
            flags.append(f"transient {label}@{str(fired).removeprefix('epoch ')}")
    return flags + (["randconv_fd biased"] if "metric_bias" in tags else [])


def non_dominated(points: Sequence[Sequence[float]], modes: Sequence[str]) -> list[int]:
    """Indices of the points no other point dominates (at least as good in every objective, better
    in one), in input order. ``modes[j]`` is "max" or "min" for objective j; equal points all stay."""
    if any(m not in ("max", "min") for m in modes):
        raise ValueError(f"modes must be 'max' or 'min', got {list(modes)}")
    if any(len(p) != len(modes) for p in points):
        raise ValueError(f"every point needs {len(modes)} objective values")
    signed = [[v if m == "max" else -v for v, m in zip(p, modes)] for p in points]  # larger is better
    dominates = lambda b, a: all(x >= y for x, y in zip(b, a)) and any(x > y for x, y in zip(b, a))
    return [i for i, a in enumerate(signed) if not any(dominates(b, a) for b in signed)]


def flag_summary(flags: Sequence[list[str]]) -> str:
    """'2 of 5; diverged: 1; stopped: 1.' from each trial's ``trial_flags``."""
    kinds = Counter(f.split("@")[0] for fs in flags for f in fs)
    return f"{sum(map(bool, flags))} of {len(flags)}" + "".join(f"; {k}: {n}" for k, n in sorted(kinds.items())) + "."


def pareto_section(
    trials: Sequence[Trial],
    keys: list[str],
    modes: list[str],
    varying: list[str],
    png: str,
    title: str,
    anchors: Sequence[tuple[str, Sequence[float]]] = (),
) -> tuple[list[tuple], Any]:
    """Report blocks for one multi-objective sweep and its scatter (a matplotlib Figure with an Agg canvas,
    not saved: the caller writes it to ``png``; None when no trial qualifies). Trial dicts also hold
    ``trial_id``. Only completed trials with finite final values of every objective take part.
    ``anchors``: (label, values of ``keys``) drawn as stars beside the front, e.g. the slides' models."""
    done = [
        t
        for t in trials
        if t["tags"].get("trial_status") == "completed" and all(_value(t, k) is not None for k in keys)
    ]
    points = [[_value(t, k) for k in keys] for t in done]
    front = non_dominated(points, modes)
    blocks: list[tuple] = [("h3", f"{title}: {' and '.join(f'{k} ({m})' for k, m in zip(keys, modes))}")]
    if not done:
        return blocks + [("p", f"None of its {len(trials)} trials completed with final {', '.join(keys)}.")], None
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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.4), dpi=100)
    FigureCanvasAgg(fig)  # as common/figures.py: no pyplot, no global backend
    ax = fig.subplots()
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=18, c="#aaaaaa", label="all completed trials")
    ax.scatter([points[i][0] for i in front], [points[i][1] for i in front], s=40, c="C3", label="non-dominated")
    for i in front:
        ax.annotate(done[i]["trial_id"], points[i][:2], fontsize=7, xytext=(3, 3), textcoords="offset points")
    for label, values in anchors:
        ax.scatter([values[0]], [values[1]], s=140, marker="*", c="black")
        ax.annotate(label, tuple(values[:2]), fontsize=7, xytext=(4, -9), textcoords="offset points")
    if anchors:
        blocks.append(
            (
                "p",
                "Placed on it (black stars, not part of the front): "
                + "; ".join(
                    f"{label}: " + ", ".join(f"{k} {fmt_value(k, v)}" for k, v in zip(keys, values))
                    for label, values in anchors
                )
                + ".",
            )
        )
    ax.set(xlabel=f"{keys[0]} ({modes[0]})", ylabel=f"{keys[1]} ({modes[1]})", title=f"Pareto front: {title}")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    order = sorted(front, key=lambda i: points[i][0], reverse=modes[0] == "max")
    rows = [
        [
            done[i]["trial_id"],
            *[done[i]["params"].get(k, "—") for k in varying],
            *[fmt_value(k, v) for k, v in zip(keys, points[i])],
            ", ".join(trial_flags(done[i]["metrics"], done[i]["tags"])) or "—",
        ]
        for i in order
    ]
    over = f" (front over all {len(keys)} objectives)" if len(keys) > 2 else ""
    caption = f"{title}: {keys[0]} vs {keys[1]} of every completed trial; non-dominated in red{over}"
    return blocks + [("img", png, caption), ("table", ["trial_id", *varying, *keys, "flags"], rows)], fig


# ---- report blocks ---------------------------------------------------------------------------
def mitigation_blocks(results: list[Result], scope: str) -> list[tuple]:
    """The 'Failure modes and mitigations' section as report blocks (see common/report/build.py)."""
    catalogue, seen = [], set()
    for r in results:
        m = r.mitigation
        if m.name not in seen:
            seen.add(m.name)
            catalogue.append(
                [
                    m.name,
                    m.family,
                    m.on_off,
                    ", ".join(m.fields),
                    "; ".join(f"{t.metric} ({'higher' if t.mode == 'max' else 'lower'} is better)" for t in m.targets),
                    "; ".join(dict.fromkeys(t.claim for t in m.targets)),
                ]
            )
    rows, notes, unmeasured = [], [], []
    for r in results:
        m, key = r.mitigation, r.target.metric
        if not r.pairs and not r.matched:  # collapsed into one line below, with the command that measures it
            unmeasured.append(m.name)
            continue
        if r.ended and r.target is m.targets[0]:
            notes.append(
                f"{m.name}: of the {r.sizes[0]} on and {r.sizes[1]} off trials in matched groups, "
                + ", ".join(f"{st} {a} on / {b} off" for st, (a, b) in r.ended.items())
                + "."
            )
        if not r.pairs:
            why = f"no completed on and off trials of a matched group logged a final {key}"
            rows.append(
                [
                    m.name,
                    key,
                    f"0 pairs ({r.n_on} on, {r.n_off} off completed)",
                    "—",
                    "—",
                    why,
                    r.target.claim,
                    "—",
                    "—",
                ]
            )
            continue
        s = r.stats()
        pm = lambda v, sd: fmt_value(key, v) + (f" ± {fmt_value(key, sd)}" if sd is not None else "")
        num = (lambda v: f"{v * 100:.2f} pp") if key.endswith("probe_acc") else (lambda v: fmt_value(key, v))
        signed = lambda v: ("+" if v >= 0 else "−") + num(abs(v))
        gain = signed(s["gain"])
        gain += f" ({'+' if s['rel'] >= 0 else '−'}{abs(s['rel']):.1f}%)" if s["rel"] is not None else ""
        gain += (
            f", {fmt_interval(s['gain_lo'], s['gain_hi'], signed)}"
            if s["gain_lo"] is not None
            else ", no interval (1 pair)"
        )
        unpaired = sum(1 for p in r.pairs if p[0] is None)
        n = f"{len(r.pairs)} pair(s), {r.seeds} seed(s)" + (f", {unpaired} unpaired (seeds differ)" if unpaired else "")
        rows.append(
            [
                m.name,
                key,
                n,
                pm(s["on"], s["on_sd"]),
                pm(s["off"], s["off_sd"]),
                gain,
                r.target.claim,
                verdict(r) + ("; BIASED (see below)" if r.biased else ""),
                measured_on(key, r.on[0]),
            ]
        )
        notes.append(
            f"{m.name}: on-settings compared: " + "; ".join(f"{k} ({v} pair(s))" for k, v in r.settings.items()) + "."
        )
        if r.biased:
            notes.append(
                f"{m.name} / {key}: BIASED — {r.biased} of the on trials train on randconv_fd's own randconv "
                f"features (perceptual_net = randconv, tag metric_bias), so their {key} favours them."
            )
    intro = (
        f"Mitigations from the seed's 'Failure Modes & Mitigations' slide and this project's options, measured "
        f"over {scope}. A mitigation is measured only between completed trials whose params are identical except "
        "the mitigation's own fields and seed; a pair is an on and an off trial of the same seed (seed-means "
        "form one unpaired comparison where the seeds differ). test_* values are each trial's best epoch (chosen on "
        "validation) scored on the test split, others final-epoch; with/without = mean over pairs ± sample std over "
        "pairs (≥ 2); gain = with − without (relative to without) with the 95% Student-t interval of the per-pair "
        "gains. A verdict says better or worse only when that interval excludes 0; otherwise it is inconclusive."
    )
    blocks = [
        ("h2", "Failure modes and mitigations"),
        ("p", intro),
        (
            "table",
            [
                "mitigation",
                "family",
                "on / off (params)",
                "own fields (may differ)",
                "target metric",
                "seed's claimed gain",
            ],
            catalogue,
        ),
        ("h3", "Measured gains"),
    ]
    if rows:
        blocks.append(
            (
                "table",
                [
                    "mitigation",
                    "target",
                    "n",
                    "with (on)",
                    "without (off)",
                    "gain",
                    "seed's claim",
                    "verdict",
                    "measured on",
                ],
                rows,
            )
        )
    if unmeasured:
        blocks.append(
            (
                "p",
                f"Not measured in this experiment (no trials differing only in the mitigation's fields): "
                f"{', '.join(dict.fromkeys(unmeasured))}. Measure them with "
                "`python run_sweep.py --space sweeps/ablate_cyclical.py` and `sweeps/ablate_sn_ttur.py` "
                "(each mitigation on and off at 2 seeds) into this experiment (`--experiment NAME`).",
            )
        )
    return blocks + ([("ul", list(dict.fromkeys(notes)))] if notes else [])
