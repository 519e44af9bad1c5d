"""The family-agnostic trial loop, shared by Ray Tune trials and ``--single-trial``.

One epoch = train on the seeded train subset, evaluate on the validation images, log to MLflow
with ``step = epoch``, checkpoint, report to the session (Tune or local). After the last epoch
the best epoch's weights are scored once on the test split (``test_*`` metrics, MLflow only).
Everything a restarted trial needs (models, optimizers, RNG states, its MLflow run id, the best
value and weights so far) is in the checkpoint, so a crashed trial continues its own MLflow run
where it stopped.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import socket
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from common.errors import first_line
from common.figures import save_curves
from common.sweep.tracking import TrialRun, dataset_inputs, fail_fast_http, find_trial_run, redact, supersede_unlogged
from common.trial.checkpoint import BEST_FILE, CHECKPOINT_PREFIX, restore, save_best, save_state
from common.trial.config import ConfigError, TrialConfig
from common.trial.data import load_dataset
from common.trial.device import (
    configure_threads,
    device_failure,
    device_kind,
    is_deterministic,
    no_tf32,
    reset_peak_memory,
    seed_everything,
    torch_device,
)
from common.trial.families import get

RUN_ID_FILE = "mlflow_run_id"  # in the trial folder: a trial restarted before its first checkpoint keeps its run
TEST_EPOCH_TAG = "test.epoch"  # the epoch whose weights the test_* metrics score; set after them


DIVERGED_PENALTY = 1e9  # what the searcher and ASHA see for a diverged trial (finite: TPE can rank it)
# A training loss beyond this (per image) has blown up even if still finite: the logvar clamp
# and BCE-with-logits keep huge learning rates from ever producing NaN, only astronomic values.
BLOWUP = 1e12


@dataclass(frozen=True)
class SweepContext:
    """What the driver hands every trial besides its config (not searched, not a param)."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str | None
    metric: str
    mode: str  # "min" | "max"
    git_commit: str = "unknown"
    data_cache_dir: str | None = None
    cpus_per_trial: float = 1.0
    # the domain classifier's state (common.metrics.classifier), trained once by the driver
    classifier: dict | None = None
    placement: str = ""  # what the sweep chose for the family (common.sweep.tuning.placement); a run tag


class Session(Protocol):
    """Tune's API surface the loop uses; ``LocalSession`` implements it without Ray."""

    trial_id: str
    trial_dir: str  # a folder that outlives the trial (kept MLflow writes go there)
    node: str  # where this attempt runs (tagged on the MLflow run, with node_ip)
    node_ip: str
    resources: dict[str, float] | None  # {"GPU": share, "mps": n} the cluster gave it; None = local

    def get_checkpoint_dir(self) -> str | None: ...

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None: ...


class LocalSession:
    """``--single-trial``: no Ray; checkpoints go to ``out_dir/checkpoint_NNNNNN`` (the last
    ``keep``, like Tune's), results print to stdout."""

    def __init__(
        self, out_dir: str | Path, trial_id: str = "local", resume_from: str | Path | None = None, keep: int = 2
    ):
        self.trial_id, self.out_dir, self.keep = trial_id, Path(out_dir), keep
        self.trial_dir, self.node = str(self.out_dir), socket.gethostname()
        self.node_ip, self.resources = "127.0.0.1", None  # no cluster: the local hardware decides
        self.resume_from = str(resume_from) if resume_from else None  # a checkpoint dir, as Tune hands back
        self.results: list[dict[str, Any]] = []
        self.latest_checkpoint: Path | None = None

    def get_checkpoint_dir(self) -> str | None:
        return self.resume_from

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        self.results.append(metrics)
        if checkpoint_dir:
            dest = self.out_dir / f"{CHECKPOINT_PREFIX}{len(self.results) - 1:06d}"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(checkpoint_dir, dest)
            self.latest_checkpoint = dest
            for old in sorted(self.out_dir.glob(f"{CHECKPOINT_PREFIX}*"))[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items() if k != "mlflow_run_id"}
        print(f"[trial {self.trial_id}] {shown}", flush=True)


def is_better(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value < best if mode == "min" else value > best)


def run_trial(cfg: TrialConfig, ctx: SweepContext, session: Session) -> dict[str, float]:
    """Train ``cfg`` to ``cfg.max_epochs`` (or until the session stops it); return the last metrics."""
    kind = device_kind(cfg.device, session.resources)  # what the node gave this trial
    device = torch_device(kind)
    configure_threads(ctx.cpus_per_trial)
    generator = seed_everything(cfg.seed, is_deterministic(cfg.deterministic, kind))
    reset_peak_memory(device)
    data = load_dataset(cfg.data, ctx.data_cache_dir)
    check_objective(ctx.metric)
    task = get(cfg.family).task(cfg, data, device, generator, classifier=ctx.classifier)

    fail_fast_http()
    state = restore(session.get_checkpoint_dir(), task, generator, session.trial_id)
    cloned = state.get("cloned_from")  # PBT: this trial goes on from another trial's checkpoint
    # A clone's checkpoint names the donor's run; its own is in MLflow (Tune restarts it in a fresh folder).
    run_id = (
        find_trial_run(ctx.tracking_uri, ctx.experiment_id, ctx.parent_run_id, session.trial_id)
        if cloned
        else state.get("run_id")
    )
    run = _open_run(cfg, ctx, session, task, data, kind, run_id)
    start, best, history = state.get("epoch", 0), state.get("best"), state.get("history", {})
    best_model = state.get("best_model")  # export_state() of the best epoch so far
    # A restarted trial replays the epochs between its checkpoint and the crash: the run already
    # holds them (same values on CPU, same seed), so they are not logged twice.
    logged_through = run.last_step("epoch_time_s") if run.attached else 0
    if cloned:  # the epochs from here are the donor's line: logged again, and the switch said
        logged_through, best, best_model = start, None, None
        _tag_lineage(run, cloned, start, cfg)

    metrics: dict[str, float] = {}
    train_time = state.get("train_time_s", 0.0)
    collapsed_for = 0  # consecutive epochs flagged by a collapse detector
    run.pending = _still_pending(state.get("mlflow_pending", []))
    supersede_unlogged(session.trial_dir)
    epoch = start
    try:
        with tempfile.TemporaryDirectory(prefix="trial-") as tmp:
            tmp = Path(tmp)
            for epoch in range(start, cfg.max_epochs):
                t0 = time.perf_counter()
                metrics = task.train_epoch(epoch)
                epoch_train_s = time.perf_counter() - t0
                train_time += epoch_train_s
                last = epoch + 1 == cfg.max_epochs
                # The best epoch is always probed after training (_log_test): no forced last-epoch probe.
                probe = cfg.probe_every > 0 and (epoch + 1) % cfg.probe_every == 0
                reason = _non_finite(metrics, epoch + 1)
                if not reason:
                    try:
                        with no_tf32():
                            metrics.update(task.evaluate(split="val", probe=probe))
                    except (ValueError, FloatingPointError, RuntimeError) as exc:  # NaN weights break sqrtm, sklearn
                        if device_failure(exc, kind, epoch + 1) and (
                            isinstance(exc, NotImplementedError) or kind.upper() in str(exc).upper()
                        ):
                            raise  # the device's own failure (an op it lacks, its memory), not divergence
                        reason = f"evaluation failed at epoch {epoch + 1}: {type(exc).__name__}: {first_line(exc)}"
                    reason = reason or _non_finite(metrics, epoch + 1)
                if reason:  # stop cleanly; tell MLflow why and the searcher that this region is bad
                    run.set_tags({"trial_status": "diverged", "diverged_epoch": epoch + 1, "diverged_reason": reason})
                    penalty = DIVERGED_PENALTY if ctx.mode == "min" else -DIVERGED_PENALTY
                    session.report(
                        {ctx.metric: penalty, "diverged": 1, "epoch": epoch + 1, "mlflow_run_id": run.run_id}, None
                    )
                    return {**metrics, "diverged": 1.0}
                metrics.update(epoch_time_s=time.perf_counter() - t0, train_time_s=train_time, **_peak_memory(device))
                metrics.update(task.windowed(metrics, history))
                for k, v in metrics.items():
                    history.setdefault(k, []).append((epoch + 1, v))
                if epoch + 1 > logged_through:
                    run.log_metrics(metrics, step=epoch + 1)
                raised = {
                    f"detector.{k}": f"epoch {epoch + 1}"
                    for k in task.COLLAPSE_FLAGS
                    if metrics.get(k) == 1.0 and not any(v == 1.0 for _, v in history[k][:-1])
                }
                if raised:  # first epoch each detector fired, as tags the MLflow UI can filter on
                    run.set_tags(raised)

                objective = metrics.get(ctx.metric)
                improved = objective is not None and is_better(objective, best, ctx.mode)
                if improved:
                    best, best_model = objective, {"epoch": epoch + 1, "model": task.export_state()}
                    save_best(tmp / BEST_FILE, cfg, best_model)
                    run.log_artifact(tmp / BEST_FILE, "checkpoints", keep_dir=session.trial_dir)
                if improved or last:
                    _log_figures(task, tmp / "figures", run, session.trial_dir)
                if last:
                    _log_curves(task, history, tmp / "figures", run, session.trial_dir)
                    # Before the last report (Tune may end the trial there). A replayed last epoch
                    # asks the run: an attempt can die between the epoch's metrics and these.
                    if best_model and not (run.attached and run.tag(TEST_EPOCH_TAG)):
                        _log_test(task, best_model, run)

                ckpt_dir = tmp / f"ckpt-{epoch + 1}"
                ckpt_dir.mkdir()
                save_state(
                    ckpt_dir,
                    epoch + 1,
                    task,
                    generator,
                    run_id=run.run_id,
                    trial_id=session.trial_id,
                    best=best,
                    history=history,
                    train_time_s=train_time,
                    mlflow_pending=run.pending,
                    best_model=best_model,
                )
                # Tune, ASHA and the searcher see validation metrics only (no test_* key is ever
                # computed before the last epoch's report, and _log_test's never reach Tune).
                session.report(
                    {
                        **metrics,
                        "epoch": epoch + 1,
                        "mlflow_run_id": run.run_id,
                        "beta_settled": float(task.settled(epoch)),
                    },
                    str(ckpt_dir),
                )
                shutil.rmtree(ckpt_dir, ignore_errors=True)  # Tune has persisted its copy
                flagged = [k for k in task.COLLAPSE_FLAGS if metrics.get(k) == 1.0]
                collapsed_for = collapsed_for + 1 if flagged else 0
                if cfg.collapse_patience and collapsed_for >= cfg.collapse_patience and not last:
                    _log_curves(task, history, tmp / "figures", run, session.trial_dir)
                    run.set_tags(
                        {
                            "trial_status": "collapsed",
                            "collapsed_epoch": epoch + 1,
                            "collapsed_reason": f"{', '.join(flagged)} for {collapsed_for} epochs",
                        }
                    )
                    return metrics  # pruned: the searcher keeps the objective it was just told
        run.set_tags({"trial_status": "completed"})
        return metrics
    except (TypeError, RuntimeError) as exc:
        failure = device_failure(exc, kind, epoch + 1)
        if failure is None:
            raise
        run.set_tags({"trial_status": "failed", "failed_reason": str(failure)})
        run.finish("FAILED")
        raise failure from exc
    finally:
        if run.pending:  # the backend never came back: keep what it missed beside the trial
            kept = run.save_pending(session.trial_dir)
            warnings.warn(
                f"{len(run.pending)} MLflow write(s) of run {run.run_id} never reached {redact(ctx.tracking_uri)}; "
                f"kept in {kept}"
            )


def _tag_lineage(run: TrialRun, donor: str, epoch: int, cfg) -> None:
    """PBT lineage on the trial's run: ``pbt.clones`` (how many times) and ``pbt.clone.<n>`` =
    'from trial X at epoch E; config now k=v ...' (the params logged at the start are the first
    config only; MLflow params cannot change)."""
    n = int(run.tag("pbt.clones") or 0) + 1
    now = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in cfg.to_dict().items() if k in PBT_KEYS
    )
    run.set_tags({f"pbt.clone.{n}": f"from trial {donor} at epoch {epoch}; config now {now}", "pbt.clones": str(n)})


PBT_KEYS = ("lr", "lr_g", "lr_ratio", "beta1", "beta2", "beta", "batch_size")  # what a clone's tag reports


def _still_pending(records: list[dict]) -> list[dict]:
    """The writes a checkpoint says an earlier attempt could not deliver, less the artifacts
    uploaded after it: a kept copy is deleted once uploaded (a later epoch's file of the same
    name replaces it). Metrics sent twice are harmless: MLflow keeps one of identical points."""
    return [r for r in records if r["kind"] != "artifact" or Path(r["path"]).is_file()]


def check_objective(metric: str) -> None:
    """ConfigError for an objective read off the test split: selection reads validation metrics."""
    if metric.startswith("test_"):
        raise ConfigError(
            f"objective {metric!r} is a test-split metric; select on the validation split: use "
            f"{'val_' + metric.removeprefix('test_')!r}"
        )


def _log_test(task, best_model: dict, run: TrialRun) -> None:
    """The best epoch's weights scored on the test split (``test_*``, step = that epoch): the
    numbers the report shows. Logged to MLflow only; nothing that selects reads them."""
    with no_tf32():
        metrics = task.evaluate_exported(best_model["model"], "test")
    run.log_metrics({k: v for k, v in metrics.items() if k.startswith("test_")}, step=best_model["epoch"])
    run.set_tags({TEST_EPOCH_TAG: str(best_model["epoch"])})  # last: it marks the test metrics as logged


def _open_run(cfg, ctx: SweepContext, session: Session, task, data, kind: str, run_id: str | None) -> TrialRun:
    where = {
        "device": kind,
        "node": session.node,
        "node_ip": session.node_ip,
        "pid": str(os.getpid()),
        "precision_used": task.precision_used,
        "deterministic_used": "on" if is_deterministic(cfg.deterministic, kind) else "off",
    }
    id_file = Path(session.trial_dir) / RUN_ID_FILE
    if not run_id and id_file.is_file():  # restarted before its first checkpoint
        run_id = id_file.read_text().strip()
    if run_id:  # continue the same MLflow run
        run = TrialRun.attach(ctx.tracking_uri, run_id, tolerant=True, reopen=True)
        run.set_tags({"trial_status": "running", "restored": "true", **where})
        return run
    tags = {
        "sweep.role": "trial",
        "family": cfg.family,
        "trial_id": session.trial_id,
        "git_commit": ctx.git_commit,
        "data": data.source,
        "data_hash": data.content_hash,
        "trial_status": "running",
        **where,
    }
    if ctx.parent_run_id:
        tags["mlflow.parentRunId"] = ctx.parent_run_id
    if ctx.placement:
        tags["placement"] = ctx.placement
    tags.update(task.tags())  # e.g. which perceptual net, and a metric-bias warning
    run = TrialRun.create(ctx.tracking_uri, ctx.experiment_id, f"{cfg.family}-{session.trial_id}", tags, tolerant=True)
    id_file.parent.mkdir(parents=True, exist_ok=True)
    id_file.write_text(run.run_id)
    run.log_params(cfg.to_dict())
    run.log_datasets(dataset_inputs(cfg.data, data.content_hash, {**task.split_indices, "test": None}))
    run.log_metrics(task.static_metrics(), step=0)
    return run


def _non_finite(metrics: dict[str, float], epoch: int) -> str | None:
    """Why this epoch counts as diverged, or None: NaN/Inf, or a loss blown up past BLOWUP."""
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    if bad:
        return f"non-finite {', '.join(bad)} at epoch {epoch}"
    big = sorted(k for k, v in metrics.items() if k.endswith("loss") and abs(v) > BLOWUP)
    return f"{', '.join(big)} above {BLOWUP:.0e} (blown up) at epoch {epoch}" if big else None


def _peak_memory(device: torch.device) -> dict[str, float]:
    """Peak memory so far, MiB: this process's RSS and, on CUDA, what torch allocated on the
    GPU. They say how many trials fit on a node (BENCHMARKS.md, bench/overhead.py)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    out = {"peak_rss_mb": rss}
    if device.type == "cuda":
        out["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def _log_figures(task, folder: Path, run: TrialRun, keep_dir: str) -> None:
    folder.mkdir(exist_ok=True)
    for p in task.figures(folder):
        run.log_artifact(p, "figures", keep_dir=keep_dir)


def _log_curves(task, history: dict, folder: Path, run: TrialRun, keep_dir: str) -> None:
    """Once, when the trial ends: drawing them is most of a trial's per-epoch
    bookkeeping (bench/overhead.py, BENCHMARKS.md), and the MLflow UI plots the same metrics live."""
    folder.mkdir(exist_ok=True)
    skip = ("epoch_time_s", "train_time_s", "peak_rss_mb", "peak_gpu_mem_mb")
    curves = {k: v for k, v in history.items() if k not in skip}
    run.log_artifact(
        save_curves(curves, folder / "curves.png", title=f"{task.cfg.family} training curves"),
        "figures",
        keep_dir=keep_dir,
    )
