"""Failure modes and mitigations, measured: ``measure`` and ``verdict``. No I/O. The catalogue is
each family's ``mitigations`` (its Family record; the built-in ones are common/trial/claims.py).

A trial here is a dict ``{"id", "params", "metrics", "tags"}``: its MLflow params (strings), its
final-epoch metric values (``run.data.metrics``: the value at the highest step) and its tags.

``measure`` compares, for each mitigation in the catalogue, trials that differ ONLY in the
mitigation's own fields and ``seed``: trials of the family are grouped by every other param;
within a group the trials with the mitigation on are compared with those with it off; a pair is
an on and an off trial with the same seed (values of the same config and seed are averaged), and
when the two sides share no seed their seed-means form one unpaired comparison. Only
``trial_status=completed`` trials give values: a stopped, diverged or collapsed (pruned) trial has
no value at its final epoch; how many trials of matched groups diverged or collapsed is counted.
Within a group, on trials are split by the values of the mitigation's own fields (beta=4 and beta=0.5
are separate comparisons against beta=1). ``verdict`` says whether a Result bears out the slides'
claim; common/report/mitigation_section.py writes the report's section from the Results.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

from common.base.names import TRIAL_STATUS
from common.report.intervals import direction, t_interval
from common.report.values import final_value
from common.trial.claims import Mitigation, Target
from common.trial.families import FAMILIES

Trial = dict[str, Any]


def catalogue() -> tuple[Mitigation, ...]:
    """Every registered family's mitigations, each tagged with its family, in registry order."""
    return tuple(dataclasses.replace(m, family=f.name) for f in FAMILIES.values() for m in f.mitigations)


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


def _groups(m: Mitigation, trials: Sequence[Trial]) -> list[list[tuple[bool, Trial]]]:
    """The family's trials with ``m`` on or off, as (on?, trial), grouped by every param but ``m.fields`` and seed."""
    groups: dict[tuple, list[tuple[bool, Trial]]] = defaultdict(list)
    for t in trials:
        if _family(t) == m.family and (side := m.state(t["params"])) is not None:
            key = tuple(sorted((k, v) for k, v in t["params"].items() if k not in m.fields and k != "seed"))
            groups[key].append((side, t))
    return list(groups.values())


def _done(side: bool, group: list[tuple[bool, Trial]]) -> list[Trial]:
    """The completed trials of one side (True: on, False: off) of a group."""
    return [t for s, t in group if s is side and t["tags"].get(TRIAL_STATUS) == "completed"]


def measure(trials: Sequence[Trial], mitigations: Sequence[Mitigation] | None = None) -> list[Result]:
    """One Result per (mitigation, target), in catalogue order (see the module docstring)."""
    results = []
    for m in catalogue() if mitigations is None else mitigations:
        # 1. group the trials; a matched group holds both on and off trials
        groups = _groups(m, trials)
        both = [g for g in groups if {s for s, _ in g} == {True, False}]
        # 2. what every target of m shares: how many trials there were and how those of matched groups ended
        count = lambda side, status=None: sum(
            s is side and status in (None, t["tags"].get(TRIAL_STATUS)) for g in both for s, t in g
        )
        ended = {st: (count(True, st), count(False, st)) for st in ("diverged", "collapsed")}
        n_on, n_off = (sum(len(_done(side, g)) for g in groups) for side in (True, False))
        # 3. per target, the pairs of every matched group
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
                _pair(r, g)
            results.append(r)
    return results


def _pair(r: Result, group: list[tuple[bool, Trial]]) -> None:
    """Add one matched group's pairs to ``r``: each setting of the on trials' own fields against the off trials."""
    m, key = r.mitigation, r.target.metric
    off = _by_seed(_done(False, group), key)
    units: dict[tuple, list[Trial]] = defaultdict(list)  # split on trials by their own-field values
    for t in _done(True, group):
        units[tuple((k, t["params"].get(k)) for k in m.fields)].append(t)
    for setting, ts in units.items():
        on = _by_seed(ts, key)
        if not on or not off:
            continue
        common = sorted(set(on) & set(off), key=str)
        if common:
            pairs = [(s, on[s][0], off[s][0]) for s in common]
        else:  # no seed in common: the two sides' seed-means form one unpaired comparison
            pairs = [(None, statistics.fmean(v for v, _ in on.values()), statistics.fmean(v for v, _ in off.values()))]
        r.pairs += pairs
        used_on = [t for s in (common or on) for t in on[s][1]]
        r.on += used_on
        r.off += [t for s in (common or off) for t in off[s][1]]
        r.settings[", ".join(f"{k}={v}" for k, v in setting if v is not None)] += len(pairs)
        if m.biased_if and key.endswith("randconv_fd"):
            r.biased += sum(m.biased_if(t["params"], t["tags"]) for t in used_on)


def _by_seed(trials: list[Trial], key: str) -> dict[Any, tuple[float, list[Trial]]]:
    """seed -> (mean of ``key`` over the trials with that seed, those trials); trials without it dropped."""
    vals: dict[Any, list[tuple[float, Trial]]] = defaultdict(list)
    for t in trials:
        if (v := final_value(t, key)) is not None:
            vals[t["params"].get("seed")].append((v, t))
    return {s: (statistics.fmean(v for v, _ in vs), [t for _, t in vs]) for s, vs in vals.items()}


def verdict(r: Result) -> str:
    """Does the measured gain bear out the slides' claim? 'better' / 'worse' only when the 95% t-interval
    of the per-pair gains excludes 0 (so never with one pair), else 'inconclusive'; then any numeric check."""
    s = r.stats()
    text = direction(s["gain_lo"], s["gain_hi"], r.target.objective)
    if r.target.check[:1] == ("above",):
        text += f"; with-mean {'>' if s['on'] > r.target.check[1] else '≤'} {r.target.check[1]:g}"
    elif r.target.check[:1] == ("rel",) and s["rel"] is not None:
        lo, hi = r.target.check[1:]
        where = "within" if lo <= s["rel"] <= hi else "below" if s["rel"] < lo else "above"
        text += f"; {s['rel']:+.1f}% is {where} the claimed +{lo:g}–{hi:g}%"
    return text
