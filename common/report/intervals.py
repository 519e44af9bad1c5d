"""Intervals for claims over seeds: a gain is a gain only when its interval excludes zero.

Pure functions over lists of numbers (no I/O), used by the report's seed-spread table and the
mitigation verdicts and gains (common/report/mitigations.py, common/report/mitigation_section.py).
"""

from __future__ import annotations

import math
import statistics
from typing import Sequence

from common.base.objective import Objective

LEVEL = 0.95


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float | None, float | None, float | None]:
    """(mean, sample std, lower, upper) of the Student-t interval for the mean of ``values``.

    With one value there is no spread: std and the bounds are None (a single seed proves nothing).
    """
    from scipy.stats import t

    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("t_interval needs at least one value")
    mean = statistics.fmean(xs)
    if len(xs) < 2:
        return mean, None, None, None
    sd = statistics.stdev(xs)
    half = t.ppf(0.5 + level / 2, len(xs) - 1) * sd / math.sqrt(len(xs))
    return mean, sd, mean - half, mean + half


def direction(lower: float | None, upper: float | None, objective: Objective) -> str:
    """'better' / 'worse' when the interval of a gain (on - off) in ``objective``'s metric
    excludes 0, else 'inconclusive'."""
    if lower is None or upper is None or lower <= 0 <= upper:
        return "inconclusive"
    return "better" if objective.better(lower + upper, 0.0) else "worse"  # both ends on one side of 0


def paired(diffs: Sequence[float], objective: Objective) -> tuple[float, float | None, float | None, str]:
    """Per-seed differences in ``objective``'s metric (one group minus another, seed by seed) ->
    (mean, lower, upper, verdict): 'a gain' / 'a loss' when the interval excludes 0, else
    'inconclusive (the interval holds 0)'."""
    mean, _, lo, hi = t_interval(diffs)
    verdict = direction(lo, hi, objective)
    said = {"better": "a gain", "worse": "a loss"}.get(verdict, "inconclusive (the interval holds 0)")
    return mean, lo, hi, said


def fmt_interval(lower: float | None, upper: float | None, fmt=lambda v: f"{v:.2f}") -> str:
    """'95% CI [a, b]', or 'no interval (1 seed)'."""
    if lower is None:
        return "no interval (1 seed)"
    return f"{int(LEVEL * 100)}% CI [{fmt(lower)}, {fmt(upper)}]"
