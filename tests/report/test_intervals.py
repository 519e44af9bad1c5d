"""common/report/intervals.py: Student-t intervals over seeds and the verdict they allow."""

import pytest

from common.base.objective import Objective
from common.report.intervals import direction, fmt_interval, t_interval


def test_t_interval_known_values():
    mean, sd, lo, hi = t_interval([1.0, 2.0, 3.0])
    # mean 2, sd 1, t(0.975, 2) = 4.302653 -> half-width 4.302653 / sqrt(3) = 2.48414
    assert (mean, sd) == (2.0, 1.0) and lo == pytest.approx(2 - 2.484138, abs=1e-6) and hi == pytest.approx(4.484138)
    assert t_interval([5.0]) == (5.0, None, None, None)  # one seed: no spread, no interval
    with pytest.raises(ValueError):
        t_interval([])


@pytest.mark.parametrize(
    "lo,hi,mode,expected",
    [
        (0.5, 2.0, "max", "better"),
        (0.5, 2.0, "min", "worse"),
        (-2.0, -0.5, "min", "better"),
        (-2.0, -0.5, "max", "worse"),
        (-0.1, 2.0, "max", "inconclusive"),
        (None, None, "max", "inconclusive"),
        (0.0, 1.0, "max", "inconclusive"),  # touching zero does not exclude it
    ],
)
def test_direction_only_when_the_interval_excludes_zero(lo, hi, mode, expected):
    assert direction(lo, hi, Objective("gain", mode)) == expected


def test_fmt_interval():
    assert fmt_interval(None, None) == "no interval (1 seed)"
    assert fmt_interval(-1.234, 2.0) == "95% CI [-1.23, 2.00]"
