"""Load and validate a space file (``sweeps/*.py``): a module that declares, and computes nothing.

Names a space file may define (lower case, nanoGPT-style)::

    family       "vae" | "dcgan" | "vaegan"              required unless ``runs`` is given; a list
                 searches each family in turn on the same objectives (``space`` then a dict
                 family -> its space, or one space for all), e.g. one trade-off over three
    metric       objective reported by the trials     required unless ``runs`` is given;
                 a list makes the search multi-objective (Optuna; no ASHA, the first is primary)
    mode         "min" | "max" (a list with a list)   required unless ``runs`` is given
    space        def space(trial) -> dict | None      Optuna define-by-run, or a dict of
                 optuna.distributions                 (omit for no search)
    defaults     {config_field: value}                fixed values (not searched); ``family.field``
                                                      applies to one family only
    num_samples  int (default 8)       max_epochs  int (default: the config's)
    scheduler    {"grace_period": 1, "reduction_factor": 3} (ASHA) or None for no early stopping, or
                 {"kind": "pbt", "perturbation_interval": 5, "quantile_fraction": 0.25, "mutations":
                 {field: [choices] | ("uniform" | "log", low, high)}}: Population Based Training
                 (no searcher: the first configs are drawn from the mutations), or the same with
                 "kind": "pb2" and only ("uniform", low, high) mutations: Population Based Bandits
                 (a GP bandit picks the clone's new values inside the bounds); "synch": True
                 perturbs only when the whole population has reached the interval (needed when
                 the population exceeds the trials that run at once, else early trials are
                 compared with, and cloned from, trials epochs ahead or behind)
    sampler      "tpe" (default) | "random": how Optuna proposes trials (random = the baseline)
    resources    {"cpu": 1, "gpu": "auto", "memory_mb": N}  per trial; CLI flags override; gpu "auto"
                 (the default) = a GPU share sized to the GPU's memory where the cluster has GPUs,
                 else none (common.sweep.resources.gpu_plan); memory_mb
                                                      defaults to the family's measured peak
    max_concurrent  int | None                        concurrency limit for the searcher
    plugins      ["my_models.wae", "wae.py"]          modules that register model families (module
                                                      names, or .py paths relative to this file;
                                                      common.trial.plugins), imported before the rest is checked
    runs         [{config...}, ...]                   fixed runs, no search (the slides preset)
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import optuna

from common.base.errors import UserError
from common.base.objective import MODES, Objective
from common.sweep import schemas
from common.sweep.layouts import check_layouts
from common.trial.families import config_class, for_family
from common.trial.plugins import load_plugins

ALLOWED = {
    "family",
    "metric",
    "mode",
    "space",
    "defaults",
    "num_samples",
    "max_epochs",
    "scheduler",
    "sampler",
    "resources",
    "max_concurrent",
    "runs",
    "description",
    "plugins",
    "preset",
}


class SpaceError(UserError):
    """A space file that is missing or malformed (CLI: one line, exit 2)."""


@dataclass
class Space:
    path: Path
    name: str
    family: str | None  # the first of ``families``
    metric: str | None
    mode: str
    search: Callable | Mapping[str, Any] | None
    defaults: dict[str, Any]
    num_samples: int
    max_epochs: int | None
    scheduler: dict[str, Any] | None
    resources: dict[str, float]
    max_concurrent: int | None
    runs: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""
    sampler: str = "tpe"
    objectives: list[tuple[str, str]] = field(default_factory=list)  # (metric, mode); >1 = multi-objective
    families: list[str] = field(default_factory=list)  # searched in turn; [family] for one
    plugins: list[str] = field(default_factory=list)  # as common.trial.plugins.load_plugins returned them
    searches: dict[str, Any] = field(default_factory=dict)  # family -> its space, when they differ
    preset: str = ""  # a name for what the runs reproduce (PRESET_TAG on every run), e.g. "slides"

    def objective_for(self, family: str) -> Objective:
        """What ranks ``family``'s trials: the space's (first) metric, else the family's default."""
        return Objective(self.metric or config_class(family).default_metric, self.mode)

    def search_for(self, family: str) -> Callable | Mapping[str, Any] | None:
        return self.searches.get(family, self.search)

    # ``metric`` / ``mode`` are the primary objective: checkpoints, ASHA and "best" use it.


def load_space(path: str | Path) -> Space:
    """The space file at ``path``, validated (SpaceError for anything wrong, naming the fix)."""
    path = Path(path)
    # 1. It imports, and defines only the names above.
    ns = _read(path)
    _check_shapes(ns, path, ("plugins",))
    plugins = load_plugins(ns.get("plugins", []), base=path.parent)  # their families are known from here on
    runs = ns.get("runs") or []
    if not runs and (missing := [k for k in ("family", "metric", "mode") if k not in ns]):
        raise SpaceError(f"space file {path} must define {', '.join(missing)} (or a 'runs' list)")
    # 2. Each name has the right shape.
    metrics, modes = _objectives(ns, path)
    families, search, searches = _families(ns, path)
    _check_shapes(ns, path)
    space = Space(
        path=path,
        name=path.stem,
        family=families[0] if families else None,
        metric=metrics[0] if metrics else None,
        mode=modes[0],
        objectives=list(zip(metrics, modes)),
        families=families,
        searches=searches,
        search=search,
        defaults=dict(ns.get("defaults") or {}),
        num_samples=ns.get("num_samples", 8),
        max_epochs=ns.get("max_epochs"),
        scheduler=ns.get("scheduler", {"grace_period": 1, "reduction_factor": 3}),
        resources={"cpu": 1.0, "gpu": "auto", **(ns.get("resources") or {})},
        max_concurrent=ns.get("max_concurrent"),
        runs=[dict(r) for r in runs],
        description=str(ns.get("description", "")),
        preset=ns.get("preset", ""),
        sampler=ns.get("sampler", "tpe"),
        plugins=plugins,
    )
    # 3. Its families exist, and PBT mutates their config fields.
    for family in [r["family"] for r in space.runs] + space.families:
        config_class(family)
    if schemas.is_population_based(space.scheduler):
        if space.search is not None or space.searches:
            raise SpaceError(
                f"space file {path}: a {space.scheduler['kind']} scheduler draws and mutates its own configs "
                "from its mutations; drop 'space' (or set space = None), or use ASHA"
            )
        _check_mutations(space)
    return space


def _read(path: Path) -> dict[str, Any]:
    """The space file's namespace; SpaceError if it is missing, fails to import or defines a name
    outside ALLOWED."""
    if not path.is_file():
        raise SpaceError(f"space file {path} does not exist; pass --space sweeps/<name>.py (see sweeps/)")
    try:
        ns = _import(path)
    except SyntaxError as exc:
        raise SpaceError(f"space file {path} has a syntax error at line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:  # e.g. FloatDistribution(low > high) raises at import time
        raise SpaceError(f"space file {path} failed to load: {type(exc).__name__}: {exc}") from None
    names = {k for k in ns if not k.startswith("_") and not _is_module_or_import(ns[k], ns["__name__"])}
    if unknown := sorted(names - ALLOWED):
        raise SpaceError(
            f"space file {path} defines unknown name(s) {', '.join(unknown)}; allowed: {', '.join(sorted(ALLOWED))}"
        )
    return ns


def _objectives(ns: dict[str, Any], path: Path) -> tuple[list[str], list[str]]:
    """(metrics, modes): one objective, or equal lists of >= 2 (multi-objective)."""
    metrics, modes = ns.get("metric"), ns.get("mode", "min")
    if isinstance(metrics, (list, tuple)) or isinstance(modes, (list, tuple)):
        if not (
            isinstance(metrics, (list, tuple))
            and isinstance(modes, (list, tuple))
            and len(metrics) == len(modes) >= 2
            and all(isinstance(m, str) for m in metrics)
        ):
            raise SpaceError(
                f"space file {path}: a multi-objective space needs metric and mode lists of the "
                "same length (>= 2), e.g. metric = ['val_probe_acc', 'val_classifier_fd'], mode = ['max', 'min']"
            )
        metrics, modes = list(metrics), list(modes)
    else:
        metrics, modes = ([metrics] if metrics else []), [modes]
    if any(m not in MODES for m in modes):
        raise SpaceError(f"space file {path}: mode={ns.get('mode')!r} must be 'min' or 'max' (or a list of them)")
    return metrics, modes


def _families(ns: dict[str, Any], path: Path) -> tuple[list[str], Any, dict[str, Any]]:
    """(families, the search space, per-family spaces when ``space`` is a dict family -> space)."""
    families = ns.get("family") if isinstance(ns.get("family"), list) else [ns["family"]] if "family" in ns else []
    if not all(isinstance(f, str) for f in families) or len(set(families)) < len(families):
        raise SpaceError(
            f"space file {path}: family={ns.get('family')!r} must be a family name or a list of "
            "distinct ones, e.g. ['vae', 'vaegan', 'dcgan']"
        )
    search, searches = ns.get("space"), {}
    if len(families) > 1 and isinstance(search, dict) and set(search) == set(families):
        searches, search = dict(search), search[families[0]]
    for one in [search, *searches.values()]:
        if one is not None and not callable(one) and not _is_distribution_dict(one):
            raise SpaceError(
                f"space file {path}: 'space' must be a function space(trial) or a dict of "
                "optuna.distributions (e.g. FloatDistribution(1.0, 8.0)); with a list of families, "
                "also a dict family -> one of those, naming every family"
            )
    return families, search, searches


def _check_shapes(ns: dict[str, Any], path: Path, names: tuple[str, ...] | None = None) -> None:
    """SpaceError naming the first of the file's settings (or of ``names``) whose value has the
    wrong shape, and what it must be (the pydantic models of common.sweep.schemas)."""
    if (name := schemas.check(ns if names is None else {k: ns[k] for k in names if k in ns})) is not None:
        raise SpaceError(f"space file {path}: {name}={ns[name]!r} must be {schemas.MUST[name]}")


def _check_mutations(space: Space) -> None:
    """SpaceError unless every field PBT mutates is a config field of every family searched."""
    import dataclasses

    for family in space.families:
        fields = {f.name for f in dataclasses.fields(config_class(family))}
        if unknown := sorted(set(space.scheduler["mutations"]) - fields):
            raise SpaceError(
                f"space file {space.path}: PBT mutates {', '.join(unknown)}, not config fields of {family}; "
                "mutate e.g. lr_g, lr_ratio, beta1"
            )


def sample_params(space: Space, seed: int, family: str | None = None) -> dict[str, Any]:
    """Draw one point of ``family``'s search space (what ``--single-trial`` and validation use)."""
    search = space.search_for(family or space.family)
    if search is None:
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" chatter on stderr
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    if callable(search):
        trial = study.ask()
        try:
            consts = search(trial) or {}
        except Exception as exc:  # e.g. suggest_float(low > high), or a bug in space()
            raise SpaceError(f"space file {space.path}: space(trial) failed: {type(exc).__name__}: {exc}") from None
        return {**trial.params, **consts}
    try:
        return dict(study.ask(dict(search)).params)
    except (ValueError, TypeError) as exc:
        raise SpaceError(f"space file {space.path}: search space is invalid: {exc}") from None


def search_space_rows(space: Space, seed: int, draws: int = 64) -> list[dict[str, str]]:
    """The space as a table: one row per (family, searched param) with its distribution. A space
    function's params are read from ``draws`` random asks of it, so a branch taken by at least one
    of them is listed (a branch no draw took is missing: the table says it reads 'params seen')."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for family in space.families:
        search = space.search_for(family)
        if search is None:
            continue
        study, seen = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)), {}
        for _ in range(draws if callable(search) else 1):
            trial = study.ask() if callable(search) else study.ask(dict(search))
            if callable(search):
                search(trial)
            seen.update(trial.distributions)
            study.tell(trial, 0.0)
        rows += [{"family": family, "param": k, "distribution": _described(d)} for k, d in sorted(seen.items())]
    return rows


def _described(d) -> str:
    """An Optuna distribution in words: 'float in [0.0001, 0.001], log-uniform', 'one of 32, 64'."""
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return "one of " + ", ".join(str(c) or '"" (none)' for c in d.choices)
    kind = "int" if isinstance(d, optuna.distributions.IntDistribution) else "float"
    step = f", step {d.step}" if d.step not in (None, 1) or (kind == "float" and d.step) else ""
    return f"{kind} in [{d.low:g}, {d.high:g}]{step}, {'log-uniform' if d.log else 'uniform'}"


def check_configs(space: Space, overrides: Mapping[str, Any], seed: int) -> list[dict[str, Any]]:
    """Resolve and validate every fixed config the sweep will start from; raise ConfigError."""
    if space.runs:
        return [
            config_class(r["family"]).from_dict({**r, **for_family(overrides, r["family"])}).to_dict()
            for r in space.runs
        ]
    configs = []
    for f in space.families:
        mine = for_family(overrides, f)
        values = {**for_family(space.defaults, f), **sample_params(space, seed, f), **mine}
        # every layout the search can draw against the budget, not only the one drawn here
        unbudgeted = config_class(f).from_dict({**values, "param_budget": ""})
        check_layouts(unbudgeted, values.get("param_budget", ""), space.search_for(f), pinned=set(mine))
        configs.append(config_class(f).from_dict(values).to_dict())
    return configs


def _import(path: Path) -> dict[str, Any]:
    """Import the file as a real module registered in sys.modules.

    Tune pickles the searcher (and with it a define-by-run ``space`` function) by reference;
    a registered module name makes that pickle loadable again on ``--resume``.
    """
    name = "space_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return {k: v for k, v in vars(module).items() if not k.startswith("__")} | {"__name__": name}


def _is_distribution_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(v, optuna.distributions.BaseDistribution) for v in value.values()
    )


def _is_module_or_import(value: Any, module_name: str) -> bool:
    import __future__

    import types

    return isinstance(value, (types.ModuleType, __future__._Feature)) or (
        isinstance(value, (type, types.FunctionType)) and getattr(value, "__module__", module_name) != module_name
    )
