"""Intervals for claims over seeds: a gain is a gain only when its interval excludes zero.

Pure functions over lists of numbers (no I/O), used by the report's seed-spread table and the
mitigation verdicts and gains (common/report/mitigations.py, common/report/mitigation_section.py).
"""

from __future__ import annotations

import math
import statistics
from typing import Sequence

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


def direction(lower: float | None, upper: float | None, mode: str) -> str:
    """'better' / 'worse' when the interval of a gain (on - off) excludes 0, else 'inconclusive'.
    ``mode``: 'max' when higher is better for the metric, 'min' when lower is."""
    if lower is None or upper is None or lower <= 0 <= upper:
        return "inconclusive"
    up = lower > 0
    return "better" if up == (mode == "max") else "worse"


def paired(diffs: Sequence[float], mode: str) -> tuple[float, float | None, float | None, str]:
    """Per-seed differences (one group minus another, seed by seed) -> (mean, lower, upper, verdict):
    'a gain' / 'a loss' when the interval excludes 0 (``mode``: the metric's better direction), else
    'inconclusive (the interval holds 0)'."""
    mean, _, lo, hi = t_interval(diffs)
    said = {"better": "a gain", "worse": "a loss"}.get(direction(lo, hi, mode), "inconclusive (the interval holds 0)")
    return mean, lo, hi, said


def fmt_interval(lower: float | None, upper: float | None, fmt=lambda v: f"{v:.2f}") -> str:
    """'95% CI [a, b]', or 'no interval (1 seed)'."""
    if lower is None:
        return "no interval (1 seed)"
    return f"{int(LEVEL * 100)}% CI [{fmt(lower)}, {fmt(upper)}]"
