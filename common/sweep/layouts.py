"""Every layout a search space can draw, checked against the slides' parameter budget before a
sweep starts.

A config with ``param_budget = "slides"`` refuses a net outside ±10% of the slides' count. A
search space that may draw such a layout would only find out in a trial, after Ray has started;
``check_layouts`` walks the space instead: it runs ``space(trial)`` with a stand-in trial that
answers each suggestion of a layout field (``TrialConfig.layout``) with each of its choices in
turn (depth first, so conditional spaces are walked too) and every other suggestion with its
first choice, and builds the config of each layout it meets.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import optuna

from common.base.errors import UserError
from common.trial.config import TrialConfig

MAX_LAYOUTS = 2000  # a space with more layout combinations than this is refused, not walked


class _Walker:
    """Stands in for an optuna trial: replays ``path`` (a choice index per layout decision so far)
    and takes choice 0 beyond it, recording how many choices each decision had."""

    def __init__(self, layout: frozenset[str], path: list[int]):
        self.layout, self.path, self.widths, self.params = layout, path, [], {}

    def _pick(self, name: str, options: list) -> Any:
        if name in self.layout:
            i = self.path[len(self.widths)] if len(self.widths) < len(self.path) else 0
            self.widths.append(len(options))
            options = options[i:]
        self.params[name] = options[0]
        return options[0]

    def suggest_categorical(self, name: str, choices) -> Any:
        return self._pick(name, list(choices))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return self._pick(name, list(range(low, high + 1, step)))

    def suggest_float(self, name: str, low: float, high: float, *, step=None, log: bool = False) -> float:
        if name in self.layout:
            raise UserError(
                f"layout field {name} is searched with suggest_float; use suggest_int or suggest_categorical"
            )
        return self._pick(name, [low])


def walk(search: Callable | Mapping[str, Any], layout: frozenset[str]) -> list[dict[str, Any]]:
    """Every combination of layout fields ``search`` can draw (a define-by-run function or a dict of
    optuna distributions), each as {field: value}; UserError beyond MAX_LAYOUTS."""
    if not callable(search):
        search = _as_function(search)
    found, path = [], []
    while True:
        walker = _Walker(layout, path)
        returned = search(walker)  # a space may return fixed values too
        drawn = {**walker.params, **(returned if isinstance(returned, Mapping) else {})}
        found.append({k: v for k, v in drawn.items() if k in layout})
        if len(found) > MAX_LAYOUTS:
            raise UserError(f"the search space draws more than {MAX_LAYOUTS} layouts; search fewer layout choices")
        # the next path: advance the last decision that has a choice left (an odometer, depth first)
        full = path + [0] * (len(walker.widths) - len(path))
        while full and full[-1] + 1 >= walker.widths[len(full) - 1]:
            full.pop()
        if not full:
            return found
        path = full[:-1] + [full[-1] + 1]


def check_layouts(
    cfg: TrialConfig, budget: str, search: Callable | Mapping[str, Any] | None, pinned: set[str] = frozenset()
) -> None:
    """ConfigError (naming the layout) if a layout ``search`` can draw, set on ``cfg``, is outside
    ``budget`` (a ``param_budget`` value); ``pinned`` fields (``--set``) are not searched. Nothing to
    check without a budget or a search."""
    if search is None or budget != "slides":
        return
    for layout in walk(search, frozenset(cfg.layout) - pinned):
        try:
            dataclasses.replace(cfg, param_budget=budget, **layout)
        except UserError as exc:
            drawn = ", ".join(f"{k}={v!r}" for k, v in layout.items())
            raise type(exc)(f"the search space can draw {drawn}: {exc}") from None


def _as_function(dists: Mapping[str, Any]) -> Callable:
    def space(trial):
        for name, d in dists.items():
            if isinstance(d, optuna.distributions.CategoricalDistribution):
                trial.suggest_categorical(name, d.choices)
            elif isinstance(d, optuna.distributions.IntDistribution):
                trial.suggest_int(name, d.low, d.high, d.step)
            else:
                trial.suggest_float(name, d.low, d.high)

    return space
