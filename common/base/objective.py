"""An objective: a metric and which way is better. Every comparison of objective values in the
tool goes through ``Objective``, so "min" and "max" are read in one place."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

MODES = ("min", "max")
T = TypeVar("T")


@dataclass(frozen=True)
class Objective:
    """``metric`` and ``mode``: "min" when lower values are better, "max" when higher are."""

    metric: str
    mode: str = "min"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")

    @property
    def sign(self) -> float:
        """+1 when lower is better, -1 when higher is: ``sign * value`` sorts best first."""
        return 1.0 if self.mode == "min" else -1.0

    @property
    def direction(self) -> str:
        """Optuna's word for the mode: "minimize" or "maximize"."""
        return "minimize" if self.mode == "min" else "maximize"

    @property
    def better_is(self) -> str:
        """ "lower" or "higher", as in "lower is better"."""
        return "lower" if self.mode == "min" else "higher"

    def better(self, value: float, than: float | None) -> bool:
        """Whether ``value`` is strictly better than ``than`` (anything finite beats None; NaN never wins)."""
        if not math.isfinite(value):
            return False
        return than is None or self.sign * value < self.sign * than

    def best(self, values: Iterable[float]) -> float | None:
        """The best finite value of ``values``; None if there is none."""
        finite = [v for v in values if math.isfinite(v)]
        return min(finite, key=lambda v: self.sign * v) if finite else None

    def ranked(self, items: Iterable[T], key: Callable[[T], float]) -> list[T]:
        """``items`` best first by ``key`` (a stable sort: ties keep their order)."""
        return sorted(items, key=lambda item: self.sign * key(item))

    def pick(self, items: Sequence[T], key: Callable[[T], float]) -> T:
        """The best of ``items`` by ``key`` (the first of equals); ValueError when there are none."""
        return min(items, key=lambda item: self.sign * key(item))

    def running_best(self, values: Iterable[float]) -> list[float | None]:
        """The best finite value so far after each of ``values`` (None before the first)."""
        out: list[float | None] = []
        best = None
        for v in values:
            best = v if self.better(v, best) else best
            out.append(best)
        return out


def non_dominated(points: Sequence[Sequence[float]], objectives: Sequence[Objective]) -> list[int]:
    """Indices of the points no other point dominates (at least as good in every objective, better
    in one), in input order. ``points[i][j]`` is point i's value of ``objectives[j]``; equal points all stay."""
    if any(len(p) != len(objectives) for p in points):
        raise ValueError(f"every point needs {len(objectives)} objective values")
    signed = [[-o.sign * v for v, o in zip(p, objectives)] for p in points]  # larger is better
    dominates = lambda b, a: all(x >= y for x, y in zip(b, a)) and any(x > y for x, y in zip(b, a))
    return [i for i, a in enumerate(signed) if not any(dominates(b, a) for b in signed)]
