"""The report's 'Failure modes and mitigations': the catalogue of mitigations, the measured gain of each
(mitigation, target) that ``common.report.mitigations.measure`` could pair, and the notes behind them.
Pure: Results in, report blocks out."""

from __future__ import annotations

from common.report.intervals import fmt_interval
from common.report.mitigations import Result, verdict
from common.report.values import fmt_value, measured_on

INTRO = (
    "Mitigations from the slides' 'Failure Modes & Mitigations' slide and this project's options, measured "
    "over {scope}. A mitigation is measured only between completed trials whose params are identical except "
    "the mitigation's own fields and seed; a pair is an on and an off trial of the same seed (seed-means "
    "form one unpaired comparison where the seeds differ). test_* values are each trial's best epoch (chosen on "
    "validation) scored on the test split, others final-epoch; with/without = mean over pairs ± sample std over "
    "pairs (≥ 2); gain = with − without (relative to without) with the 95% Student-t interval of the per-pair "
    "gains. A verdict says better or worse only when that interval excludes 0; otherwise it is inconclusive."
)
CATALOGUE = [
    "mitigation",
    "family",
    "on / off (params)",
    "own fields (may differ)",
    "target metric",
    "slides' claimed gain",
]
GAINS = ["mitigation", "target", "n", "with (on)", "without (off)", "gain", "slides' claim", "verdict", "measured on"]
NOT_MEASURED = (
    "Not measured in this experiment (no trials differing only in the mitigation's fields): {names}. Measure "
    "them with `python run_sweep.py --space sweeps/ablate_cyclical.py` and `sweeps/ablate_sn_ttur.py` (each "
    "mitigation on and off at 2 seeds) into this experiment (`--experiment NAME`)."
)


def mitigation_blocks(results: list[Result], scope: str) -> list[tuple]:
    """The section as report blocks; ``scope`` says which trials ``results`` were measured over."""
    rows, notes, unmeasured = [], [], []
    for r in results:
        if not r.pairs and not r.matched:  # collapsed into one line below, with the command that measures it
            unmeasured.append(r.mitigation.name)
            continue
        rows.append(_row(r))
        notes += _notes(r)
    blocks = [
        ("h2", "Failure modes and mitigations"),
        ("p", INTRO.format(scope=scope)),
        ("table", CATALOGUE, _catalogue(results)),
        ("h3", "Measured gains"),
    ]
    if rows:
        blocks.append(("table", GAINS, rows))
    if unmeasured:
        blocks.append(("p", NOT_MEASURED.format(names=", ".join(dict.fromkeys(unmeasured)))))
    return blocks + ([("ul", list(dict.fromkeys(notes)))] if notes else [])


def _catalogue(results: list[Result]) -> list[list[str]]:
    """One row per mitigation: how on and off are read, its own fields, its targets and the slides' claims."""
    first: dict = {}  # name -> the mitigation, in catalogue order
    for r in results:
        first.setdefault(r.mitigation.name, r.mitigation)
    rows = []
    for m in first.values():
        targets = "; ".join(f"{t.metric} ({t.objective.better_is} is better)" for t in m.targets)
        claims = "; ".join(dict.fromkeys(t.claim for t in m.targets))
        rows.append([m.name, m.family, m.on_off, ", ".join(m.fields), targets, claims])
    return rows


def _row(r: Result) -> list[str]:
    """The measured-gains row of one (mitigation, target): with, without, the gain and its interval, the verdict."""
    m, key = r.mitigation, r.target.metric
    if not r.pairs:
        why = f"no completed on and off trials of a matched group logged a final {key}"
        return [m.name, key, f"0 pairs ({r.n_on} on, {r.n_off} off completed)", "—", "—", why, r.target.claim, "—", "—"]
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
    judged = verdict(r) + ("; BIASED (see below)" if r.biased else "")
    on, off = pm(s["on"], s["on_sd"]), pm(s["off"], s["off_sd"])
    return [m.name, key, n, on, off, gain, r.target.claim, judged, measured_on(key, r.on[0])]


def _notes(r: Result) -> list[str]:
    """How the trials of matched groups ended (once per mitigation), which on-settings were compared, any bias."""
    m, key, notes = r.mitigation, r.target.metric, []
    if r.ended and r.target is m.targets[0]:
        ended = ", ".join(f"{st} {a} on / {b} off" for st, (a, b) in r.ended.items())
        notes.append(f"{m.name}: of the {r.sizes[0]} on and {r.sizes[1]} off trials in matched groups, {ended}.")
    if not r.pairs:
        return notes
    notes.append(
        f"{m.name}: on-settings compared: " + "; ".join(f"{k} ({v} pair(s))" for k, v in r.settings.items()) + "."
    )
    if r.biased:
        notes.append(
            f"{m.name} / {key}: BIASED — {r.biased} of the on trials train on randconv_fd's own randconv "
            f"features (perceptual_net = randconv, tag metric_bias), so their {key} favours them."
        )
    return notes
