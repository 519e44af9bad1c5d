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
import resource
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from common.base.data import load_dataset
from common.base.device import (
    configure_threads,
    device_failure,
    device_kind,
    is_deterministic,
    no_tf32,
    reset_peak_memory,
    seed_everything,
    torch_device,
)
from common.base.errors import TrialCodeError, first_line, raised_at, retryable
from common.base.names import TRIAL_STATUS
from common.base.run_context import system_metrics
from common.base.tracking import TrialRun, fail_fast_http, find_trial_run, redact, supersede_unlogged
from common.trial.checkpoint import BEST_FILE, restore, save_best, save_state, snapshot
from common.trial.config import TrialConfig, check_objective
from common.trial.contract import Session, SweepContext
from common.trial.families import get
from common.trial.records import (
    TEST_EPOCH_TAG,
    image_epoch,
    log_curves,
    log_figures,
    log_test,
    open_run,
    still_pending,
    tag_lineage,
)

DIVERGED_PENALTY = 1e9  # what the searcher and ASHA see for a diverged trial (finite: TPE can rank it)
# A training loss beyond this (per image) has blown up even if still finite: the logvar clamp
# and BCE-with-logits keep huge learning rates from ever producing NaN, only astronomic values.
BLOWUP = 1e12


def run_trial(cfg: TrialConfig, ctx: SweepContext, session: Session) -> dict[str, float]:
    """Train ``cfg`` to ``cfg.max_epochs`` (or until the session stops it); return the last metrics."""
    # 1. The device the node gave this trial, its threads and seeds, the data, the family's task.
    kind = device_kind(cfg.device, session.resources)
    device = torch_device(kind)
    configure_threads(ctx.cpus_per_trial)
    generator = seed_everything(cfg.seed, is_deterministic(cfg.deterministic, kind))
    reset_peak_memory(device)
    data = load_dataset(cfg.data, ctx.data_cache_dir)
    check_objective(ctx.metric)
    task = get(cfg.family).task(cfg, data, device, generator, classifier=ctx.classifier)
    # 2. Where it stands: its checkpoint (a restart, a PBT clone) and its MLflow run, continued.
    fail_fast_http()
    st = _resume(cfg, ctx, session, task, data, kind, generator)
    metrics: dict[str, float] = {}
    epoch = st.start
    st.run.set_tags({"system_metrics.scope": "node-wide: every process on the trial's node, not this trial alone"})
    try:
        with (
            tempfile.TemporaryDirectory(prefix="trial-") as tmp,
            system_metrics(ctx.tracking_uri, st.run.run_id) as last_sample,
        ):
            for epoch in range(st.start, cfg.max_epochs):
                # 3. Train, validate; a non-finite or failed epoch ends the trial as diverged.
                t0 = time.perf_counter()
                metrics, train_s, reason = _train_and_validate(task, cfg, epoch, kind)
                st.train_time += train_s
                if reason:
                    return _diverged(st.run, ctx, session, metrics, epoch, reason)
                metrics.update(
                    epoch_time_s=time.perf_counter() - t0, train_time_s=st.train_time, **_peak_memory(device)
                )
                metrics.update(task.windowed(metrics, st.history))
                # 4. MLflow: the epoch's metrics, best.pt when it improved, figures, the test split at the end.
                _record(task, cfg, ctx, session, st, metrics, epoch, Path(tmp))
                # 5. Checkpoint, and report to Tune: validation metrics only (after the last system-metrics
                #    sample on the last epoch: Tune may end the trial at that report).
                if epoch + 1 == cfg.max_epochs:
                    last_sample()
                _checkpoint_and_report(task, generator, session, st, metrics, epoch, Path(tmp))
                # 6. Collapse: pruned after cfg.collapse_patience flagged epochs in a row.
                if _collapsed(task, cfg, st, metrics, epoch, Path(tmp), session):
                    return metrics  # pruned: the searcher keeps the objective it was just told
        st.run.set_tags({TRIAL_STATUS: "completed"})
        return metrics
    except Exception as exc:
        failure = device_failure(exc, kind, epoch + 1)
        if failure is None and retryable(exc):
            raise  # the machine's trouble: a restart from the checkpoint may not meet it
        # The device's failure, or the code's own: the same checkpoint and seed would raise it again.
        failure = failure or TrialCodeError(
            f"{type(exc).__name__} at {raised_at(exc)} in epoch {epoch + 1}: {first_line(exc, 300)}"
        )
        st.run.set_tags({TRIAL_STATUS: "failed", "failed_reason": str(failure)})
        st.run.finish("FAILED")
        raise failure from exc
    finally:
        if st.run.pending:  # the backend never came back: keep what it missed beside the trial
            kept = st.run.save_pending(session.trial_dir)
            warnings.warn(
                f"{len(st.run.pending)} MLflow write(s) of run {st.run.run_id} never reached "
                f"{redact(ctx.tracking_uri)}; kept in {kept}"
            )


@dataclass
class _State:
    """What a trial carries from epoch to epoch (and, through save_state, across restarts)."""

    run: TrialRun
    start: int  # epochs done before this attempt
    best: float | None  # the best objective so far
    best_model: dict | None  # {"epoch", "model": a snapshot of export_state()} of the best epoch so far
    history: dict[str, list[tuple[int, float]]]  # metric -> [(epoch, value)]
    train_time: float  # seconds of training so far, across attempts
    logged_through: int  # epochs the MLflow run already holds (a restart replays them unlogged)
    collapsed_for: int = 0  # consecutive epochs flagged by a collapse detector


def _resume(cfg, ctx: SweepContext, session: Session, task, data, kind: str, generator) -> _State:
    """Restore the session's checkpoint into ``task`` and ``generator`` (none: a fresh start) and
    open or continue the trial's MLflow run."""
    state = restore(session.get_checkpoint_dir(), task, generator, session.trial_id)
    cloned = state.get("cloned_from")  # PBT: this trial goes on from another trial's checkpoint
    # A clone's checkpoint names the donor's run; its own is in MLflow (Tune restarts it in a fresh folder).
    run_id = (
        find_trial_run(ctx.tracking_uri, ctx.experiment_id, ctx.parent_run_id, session.trial_id)
        if cloned
        else state.get("run_id")
    )
    run = open_run(cfg, ctx, session, task, data, kind, run_id)
    st = _State(
        run=run,
        start=state.get("epoch", 0),
        best=state.get("best"),
        best_model=state.get("best_model"),
        history=state.get("history", {}),
        train_time=state.get("train_time_s", 0.0),
        # A restarted trial replays the epochs between its checkpoint and the crash: the run already
        # holds them (same values on CPU, same seed), so they are not logged twice.
        logged_through=run.last_step("epoch_time_s") if run.attached else 0,
    )
    if cloned:  # the donor's line from here, its best its own; the switch said on the run
        st.best, st.best_model = None, None
        st.logged_through = run.last_step("epoch_time_s") if run.attached else 0  # one point per step
        tag_lineage(run, cloned, st.start, cfg, held=st.logged_through, history=st.history)
    run.pending = still_pending(state.get("mlflow_pending", []))
    supersede_unlogged(session.trial_dir)
    return st


def _train_and_validate(task, cfg, epoch: int, kind: str) -> tuple[dict[str, float], float, str | None]:
    """One epoch: (train and validation metrics, training seconds, why it diverged or None)."""
    t0 = time.perf_counter()
    metrics = task.train_epoch(epoch)
    train_s = time.perf_counter() - t0
    reason = _non_finite(metrics, epoch + 1)
    if reason:
        return metrics, train_s, reason
    # The best epoch is always probed after training (log_test): no forced last-epoch probe.
    probe = cfg.probe_every > 0 and (epoch + 1) % cfg.probe_every == 0
    try:
        with no_tf32():
            metrics.update(task.evaluate(split="val", probe=probe))
    except (ValueError, FloatingPointError, RuntimeError) as exc:  # NaN weights break sqrtm, sklearn
        if device_failure(exc, kind, epoch + 1) and (
            isinstance(exc, NotImplementedError) or kind.upper() in str(exc).upper()
        ):
            raise  # the device's own failure (an op it lacks, its memory), not divergence
        return metrics, train_s, f"evaluation failed at epoch {epoch + 1}: {type(exc).__name__}: {first_line(exc)}"
    return metrics, train_s, _non_finite(metrics, epoch + 1)


def _diverged(run: TrialRun, ctx: SweepContext, session: Session, metrics: dict, epoch: int, reason: str) -> dict:
    """Stop cleanly: tell MLflow why, and the searcher (a finite penalty) that this region is bad."""
    run.set_tags({TRIAL_STATUS: "diverged", "diverged_epoch": epoch + 1, "diverged_reason": reason})
    penalty = ctx.objective.sign * DIVERGED_PENALTY  # the worst end of the objective
    session.report({ctx.metric: penalty, "diverged": 1, "epoch": epoch + 1, "mlflow_run_id": run.run_id}, None)
    return {**metrics, "diverged": 1.0}


def _record(task, cfg, ctx: SweepContext, session: Session, st: _State, metrics: dict, epoch: int, tmp: Path) -> None:
    """The epoch in the history and the MLflow run: metrics (once), the first epoch each collapse
    detector fired, best.pt if the objective improved, figures, and after the last epoch the curves
    and the best epoch's test metrics."""
    for k, v in metrics.items():
        st.history.setdefault(k, []).append((epoch + 1, v))
    if epoch + 1 > st.logged_through:
        st.run.log_metrics(metrics, step=epoch + 1)
    raised = {
        f"detector.{k}": f"epoch {epoch + 1}"
        for k in task.COLLAPSE_FLAGS
        if metrics.get(k) == 1.0 and not any(v == 1.0 for _, v in st.history[k][:-1])
    }
    if raised:  # as tags the MLflow UI can filter on
        st.run.set_tags(raised)
    objective = metrics.get(ctx.metric)
    improved = objective is not None and ctx.objective.better(objective, st.best)
    if improved:
        # One snapshot of the selected weights: best.pt, state.pt's best_model, the test score and
        # the logged model all come from it (a plugin's export_state may hand back live tensors).
        st.best, st.best_model = objective, {"epoch": epoch + 1, "model": snapshot(task.export_state())}
        save_best(tmp / BEST_FILE, cfg, st.best_model)
        st.run.log_artifact(tmp / BEST_FILE, "checkpoints", keep_dir=session.trial_dir)
    last = epoch + 1 == cfg.max_epochs
    step = epoch + 1 if image_epoch(epoch, cfg.max_epochs) and epoch + 1 > st.logged_through else None
    if improved or last or step is not None:
        log_figures(task, tmp / "figures", st.run, session.trial_dir if improved or last else None, step)
    if last:
        log_curves(task, st.history, tmp / "figures", st.run, session.trial_dir)
        # Before the last report (Tune may end the trial there). A replayed last epoch asks the
        # run: an attempt can die between the epoch's metrics and these.
        if st.best_model and not (st.run.attached and st.run.tag(TEST_EPOCH_TAG)):
            log_test(task, st.best_model, st.run)


def _checkpoint_and_report(task, generator, session: Session, st: _State, metrics: dict, epoch: int, tmp: Path):
    """Everything a restart needs in a checkpoint, handed to the session with the epoch's metrics.
    Tune, ASHA and the searcher see validation metrics only (no test_* key is ever computed before
    the last epoch's report, and log_test's never reach Tune)."""
    ckpt_dir = tmp / f"ckpt-{epoch + 1}"
    ckpt_dir.mkdir()
    save_state(
        ckpt_dir,
        epoch + 1,
        task,
        generator,
        run_id=st.run.run_id,
        trial_id=session.trial_id,
        best=st.best,
        history=st.history,
        train_time_s=st.train_time,
        mlflow_pending=st.run.pending,
        best_model=st.best_model,
    )
    extra = {"epoch": epoch + 1, "mlflow_run_id": st.run.run_id, "beta_settled": float(task.settled(epoch))}
    session.report({**metrics, **extra}, str(ckpt_dir))
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # Tune has persisted its copy


def _collapsed(task, cfg, st: _State, metrics: dict, epoch: int, tmp: Path, session: Session) -> bool:
    """True (the run tagged ``collapsed``, its curves logged) once a collapse detector has fired
    for ``cfg.collapse_patience`` epochs in a row before the last."""
    flagged = [k for k in task.COLLAPSE_FLAGS if metrics.get(k) == 1.0]
    st.collapsed_for = st.collapsed_for + 1 if flagged else 0
    if not cfg.collapse_patience or st.collapsed_for < cfg.collapse_patience or epoch + 1 == cfg.max_epochs:
        return False
    log_curves(task, st.history, tmp / "figures", st.run, session.trial_dir)
    reason = f"{', '.join(flagged)} for {st.collapsed_for} epochs"
    st.run.set_tags({TRIAL_STATUS: "collapsed", "collapsed_epoch": epoch + 1, "collapsed_reason": reason})
    return True


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
