"""The sweep engine behind ``run_sweep.py``.

Order matters: everything the user gave (space file, ``--set``, data, tracking URI) is
validated before Ray starts or MLflow is written, so bad input costs nothing. Then one MLflow
parent run, one Tune ``Tuner`` per family (``common.sweep.tuning``), the best model per family
registered and evaluated (``common.sweep.best``), and the report built from what MLflow holds.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, replace
from typing import Any, Callable

from common.base.errors import first_line
from common.base.names import DEFAULT_SEED, PER_FAMILY, PRESET_TAG
from common.base.objective import Objective
from common.base.progress import stage
from common.base.run_context import context_tags, version_tags
from common.base.tracking import (
    TrackingError,
    TrialRun,
    check_tracking_uri,
    default_artifact_location,
    fail_fast_http,
    get_or_create_experiment,
    git_commit,
    prepare_store,
    redact,
    resolve_tracking_uri,
    ui_link,
)
from common.metrics.classifier import chance_warning, get_classifier
from common.sweep.best import end_stage, eval_samples_default
from common.sweep.cluster import start_ray
from common.sweep.export import Exporter
from common.sweep.options import SweepOptions, SweepPlan, check_data, check_folders, plan
from common.sweep.panel import log_trial_panels
from common.sweep.parent import classifier_tags, close_interrupted_runs, close_orphan_runs, log_space, open_parent
from common.sweep.resources import check_fits, placement, resolve_gpus
from common.sweep.result import SweepResult
from common.sweep.single import single_trial
from common.sweep.space import search_space_rows
from common.sweep.storage import NoSpaceLeft, StorageError, SweepStorage
from common.sweep.studies import check_optuna_storage, optuna_storage_url
from common.sweep.tuning import FamilyRun, fit_family, optuna_sampler
from common.sweep.warm_start import sampler_seed, seed_study, warm_started
from common.trial.config import TrialConfig
from common.trial.contract import SweepContext
from common.trial.families import Family, config_class, for_family
from common.trial.plugins import SHA_TAG, digests
from common.trial.plugins import TAG as PLUGINS_TAG
from common.trial.plugins import modules as plugin_modules

SWEEP_FILE = "sweep.json"  # in the sweep folder: what --resume needs


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl+C / SIGINT during a sweep: Tune saved its state; ``--resume`` finishes it."""

    exit_code = 130


class DiskFull(SweepInterrupted):
    """The disk filled mid-sweep: a trial's error said so (common.sweep.storage.NoSpaceLeft)."""

    exit_code = 1


def run(opts: SweepOptions, trainable: Callable[[Family], Callable], planned: SweepPlan | None = None) -> SweepResult:
    """Run the sweep (or one local trial); return its best result per family.

    trainable: family -> Tune's function for it (``trainables.trial.trainable``; the layer above
    hands it in). ``planned``: what ``plan(opts)`` returned, when the caller has validated already.
    The report is the caller's next step, once ``completed``."""
    # 1. Everything the user gave is checked before anything starts or is written.
    p = planned or plan(opts)
    _quiet(opts.verbose)
    fail_fast_http()  # before Ray starts, so its workers inherit it too
    uri = resolve_tracking_uri(opts.tracking_uri)
    check_tracking_uri(uri)
    check_folders(opts, uri)
    data = check_data(p.configs)
    if opts.single_trial:
        return single_trial(p.space, p.configs[0], uri, p.experiment, _classifier(data)[0], opts.command)
    storage = SweepStorage(opts.storage)
    previous = _previous_sweep(opts, p, storage)
    # 2. Ray, with a node that holds each family's trial; the domain classifier (DataError if it
    #    cannot be trained), before MLflow is written.
    resources = _resources(opts, p)
    classifier = _classifier(data)
    # 3. MLflow and the Optuna storage are written from here on: the parent run and the sweep folder.
    sweep = _open(opts, p, uri=uri, storage=storage, previous=previous, data=data, classifier=classifier)
    sweep.trainable = trainable
    # 4. One Tune experiment per family, then the end stage; Ctrl+C leaves what --resume needs.
    try:
        for i in range(len(p.configs)):
            _fit_one(sweep, i, resources[i], opts)
        sweep.result.completed = _end_stage(sweep, opts, data, classifier[0])
    except KeyboardInterrupt:
        _interrupted(sweep)
    except NoSpaceLeft as full:
        _interrupted(sweep, str(full))
    return sweep.result


@dataclass
class _Sweep:
    """A started sweep: what it runs, where it logs and saves, and its result so far."""

    plan: SweepPlan
    storage: SweepStorage
    folder: str  # under storage: Tune's experiments and SWEEP_FILE
    resumed: bool
    client: Any  # MlflowClient
    experiment_id: str
    parent: TrialRun
    ctx: SweepContext  # the trials' shared context; each family sets its metric and placement
    optuna_storage: str
    result: SweepResult
    trainable: Callable[[Family], Callable] | None = None
    exporter: Exporter | None = None  # --export: each finished trial's JSON file


def _quiet(verbose: bool) -> None:
    """Without --verbose the status line and stage bars say what runs (common.base.progress)."""
    if verbose:
        return
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's new output prints its tables even at verbose=0
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def _previous_sweep(opts: SweepOptions, p: SweepPlan, storage: SweepStorage) -> str | None:
    """--resume: the latest folder of this space's sweep in this experiment (StorageError if none)."""
    if not opts.resume:
        return None
    previous = storage.latest(f"{p.experiment}_{p.space.name}", SWEEP_FILE)
    if previous is None:
        raise StorageError(
            f"--resume: no earlier sweep of {p.space.path} in experiment {p.experiment!r} under "
            f"{storage.show()}; run without --resume"
        )
    return previous


def _resources(opts: SweepOptions, p: SweepPlan) -> list[dict[str, float]]:
    """Start Ray; return each config's per-trial {"cpu", "gpu", "memory_mb"}, checked to fit a node.
    Memory defaults to the family's measured peak."""
    start_ray(opts.address, p.cpus_per_trial, opts.verbose, plugin_modules(p.space.plugins))
    resources = []
    for c in p.configs:
        cfg = config_class(c["family"]).from_dict(c)
        memory = opts.memory_per_trial
        if memory is None:
            memory = p.space.resources.get("memory_mb", cfg.memory_mb())
        need = resolve_gpus(
            {"cpu": p.cpus_per_trial, "gpu": p.gpus_per_trial, "memory_mb": memory}, cfg.gpu_memory_mb()
        )
        check_fits(need)
        resources.append(need)
    return resources


def _open(
    opts: SweepOptions,
    p: SweepPlan,
    *,
    uri: str,
    storage: SweepStorage,
    previous: str | None,
    data,
    classifier: tuple[dict, dict],
) -> _Sweep:
    """Prepare the MLflow store and the Optuna storage, open (or reopen) the parent run, and write
    the sweep folder's SWEEP_FILE."""
    from mlflow.tracking import MlflowClient

    space, experiment = p.space, p.experiment
    prepare_store(uri)
    optuna_url = optuna_storage_url(uri, opts.optuna_storage)
    if space.search is not None and not space.runs:
        check_optuna_storage(optuna_url)
    client = MlflowClient(uri)
    exp_id = get_or_create_experiment(client, experiment, default_artifact_location(uri))
    commit = git_commit()
    preset = {PRESET_TAG: space.preset} if space.preset else {}
    resumed_from = json.loads(storage.read_text(f"{previous}/{SWEEP_FILE}"))["parent_run_id"] if previous else None
    tags = {
        **context_tags(commit, opts.command),
        **version_tags(),
        "sweep.space": str(space.path),
        **preset,
        "git_commit": commit,
        "data": data.source,
        "data_hash": data.content_hash,
        **classifier_tags(*classifier),
        **(
            {PLUGINS_TAG: json.dumps(space.plugins), SHA_TAG: json.dumps(digests(space.plugins))}
            if space.plugins
            else {}
        ),
    }
    parent = open_parent(uri, exp_id, space.name, resumed_from, tags, _parent_params(p))
    if not resumed_from:  # what was searched, on the parent: the space file and its distributions
        log_space(parent, space, search_space_rows(space, opts.seed or DEFAULT_SEED))
    ctx = SweepContext(
        tracking_uri=uri,
        experiment_id=exp_id,
        parent_run_id=parent.run_id,
        metric="",
        mode=space.mode,
        git_commit=commit,
        cpus_per_trial=p.cpus_per_trial,
        data_cache_dir=os.environ.get("VAEGAN_CACHE"),
        classifier=classifier[0],
        context_tags={**context_tags(commit, opts.command), **preset},  # on every trial run
    )
    result = SweepResult(experiment, uri, parent_run_id=parent.run_id, mlflow_ui=ui_link(uri, exp_id))
    print(f"MLflow: {result.mlflow_ui}", flush=True)
    folder = previous or f"{experiment}_{space.name}_{time.strftime('%Y%m%d-%H%M%S')}"
    storage.makedirs(folder)
    storage.write_text(f"{folder}/{SWEEP_FILE}", json.dumps({"parent_run_id": parent.run_id, "space": str(space.path)}))
    return _Sweep(
        plan=p, storage=storage, folder=folder,
        resumed=bool(previous), client=client, experiment_id=exp_id, parent=parent, ctx=ctx,
        optuna_storage=optuna_url, result=result,
        exporter=Exporter.into(opts.export, experiment) if opts.export else None,
    )  # fmt: skip


def _parent_params(p: SweepPlan) -> dict:
    """What the sweep is, as the parent run's params."""
    space, configs, fixed = p.space, p.configs, p.fixed
    return {
        "space": str(space.path),
        "num_samples": p.num_samples,
        "metric": ",".join(m for m, _ in space.objectives) or PER_FAMILY,
        "mode": ",".join(m for _, m in space.objectives) or space.mode,
        "seed": fixed.get("seed", TrialConfig.seed),
        "data": configs[0]["data"],
        "train_subset": configs[0]["train_subset"],
        "max_epochs": fixed.get("max_epochs", PER_FAMILY),
    }


def _fit_one(sweep: _Sweep, i: int, resources: dict[str, float], opts: SweepOptions) -> None:
    """Config ``i``'s Tune experiment (a family's search, or one fixed run); keep its best in the result."""
    space, family = sweep.plan.space, sweep.plan.configs[i]["family"]
    objective = space.objective_for(family)
    name = f"run{i}-{family}" if space.runs else family  # one Tune experiment folder each
    fixed = {
        **(space.runs[i] if space.runs else for_family(space.defaults, family)),
        **for_family(sweep.plan.fixed, family),
    }
    searches = space.search is not None and not space.runs
    study, seed = _searcher_study(sweep, opts, family, name, objective, fixed) if searches else (None, None)
    where = placement(resources)
    print(f"{name}: {where}", flush=True)
    family_run = FamilyRun(
        family=family,
        trainable=sweep.trainable,
        ctx=replace(sweep.ctx, metric=objective.metric, placement=where),
        fixed=fixed,
        path=f"{sweep.folder}/{name}",
        resources=resources,
        num_samples=sweep.plan.num_samples,
        max_failures=opts.max_failures,
        study=study,
        sampler_seed=seed,
        verbose=opts.verbose,
        exporter=sweep.exporter,
    )
    best, failed = fit_family(space, family_run, sweep.storage)
    result = sweep.result
    result.add_failures(family, failed)  # the CLI names them; a family with no completed trial fails it
    if family not in result.families:
        result.families.append(family)
    old = result.best.get(family)
    if best and (old is None or old.metric != objective.metric or objective.better(best.value, old.value)):
        result.best[family] = best
    if best and space.runs:  # fixed runs are measurements: each one gets the final evaluation
        result.runs.append(best)


def _searcher_study(
    sweep: _Sweep, opts: SweepOptions, family: str, name: str, objective: Objective, fixed: dict
) -> tuple[tuple, int]:
    """((storage URL, name) of the family's Optuna study, its sampler's seed): seeded from
    ``--warm-start``'s run files on a new sweep, and recorded on the parent run."""
    space, study = sweep.plan.space, (sweep.optuna_storage, f"{sweep.folder}/{name}")
    if opts.warm_start and not sweep.resumed:  # a resumed study holds them already
        warm = seed_study(study, space.search_for(family), opts.warm_start, family, objective)
        print(f"{name}: the searcher starts from {warm} finished trial(s) of {opts.warm_start}", flush=True)
    else:
        warm = warm_started(study) if sweep.resumed else 0
    seed = sampler_seed(int(fixed.get("seed", TrialConfig.seed)), warm)  # the trials' seed, as before
    sweep.parent.set_tags(
        {
            "optuna.storage": redact(sweep.optuna_storage),
            f"optuna.study.{family}": study[1],
            f"optuna.sampler.{family}": optuna_sampler(space.sampler, seed)[1],
        }
    )
    return study, seed


def _end_stage(sweep: _Sweep, opts: SweepOptions, data, classifier: dict) -> bool:
    """Register and evaluate the best models (common.sweep.best) and close the parent; False (with
    a warning) when MLflow went away mid-sweep: ``--resume`` does it later."""
    uri = sweep.ctx.tracking_uri
    try:
        check_tracking_uri(uri)  # a server that went away mid-sweep: say so, don't crash
    except TrackingError as e:
        warnings.warn(
            f"the sweep finished but MLflow is unreachable ({e}); the best models, their evaluation "
            "and the report are skipped: rerun the same command with --resume once it is back"
        )
        sweep.result.tracking_error = str(e)
        return False
    if sweep.resumed:
        close_orphan_runs(sweep.client, sweep.experiment_id, sweep.parent.run_id)
    n = eval_samples_default(opts.eval_n, opts.smoke_test)
    end_stage(uri, sweep.parent.run_id, sweep.plan.experiment, sweep.result, data, n, opts.fid_weights, classifier)
    objectives = {f: Objective(b.metric, sweep.plan.space.mode) for f, b in sweep.result.best.items()}
    try:  # a convenience of the UI: never fail a finished sweep over it
        with stage("the trials' samples side by side, on the parent run", capture=True):
            log_trial_panels(uri, sweep.parent.run_id, objectives)
    except Exception as e:  # noqa: BLE001
        warnings.warn(f"the trials' sample panels were not logged: {first_line(e)}")
    if sweep.exporter:  # again: the end stage added each best model's FID & co. to its trial run
        sweep.exporter.experiment_runs(uri)
    sweep.parent.set_tags({"sweep.status": "completed"})
    sweep.parent.finish("FINISHED")
    return True


def _interrupted(sweep: _Sweep, full: str | None = None) -> None:
    """Ctrl+C, or a full disk (``full``: the error line that said so): mark the runs, then raise
    the exception that says how to finish."""
    try:
        sweep.parent.set_tags({"sweep.status": "interrupted"})
        close_interrupted_runs(sweep.client, sweep.experiment_id, sweep.parent.run_id)
    except Exception as e:  # the store itself is on the full disk: --resume closes them instead
        warnings.warn(f"could not mark the sweep's runs interrupted in MLflow ({first_line(e, 160)})")
    where = sweep.storage.show(sweep.folder)
    if full:
        raise DiskFull(
            f"error: no space left on the device ({full}); free some space where the sweep writes "
            f"({where}, the MLflow store), then rerun the same command with --resume to finish it"
        ) from None
    raise SweepInterrupted(
        f"interrupted; the sweep's state is saved in {where}: rerun the same command with --resume to finish it"
    ) from None


def _classifier(data) -> tuple[dict, dict]:
    """The domain classifier of ``data`` (trained once per dataset, then cached), warning if it is weak."""
    state, info = get_classifier(data)
    if warning := chance_warning(info, len(data.classes)):
        warnings.warn(warning)
    return state, info
