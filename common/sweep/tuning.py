"""Ray Tune and Optuna: one Tune experiment per model family (Optuna TPE in an RDB study,
ASHA or PBT, a concurrency limit, a checkpoint every epoch, FailureConfig restarts), and the
driver callback that closes each trial's MLflow run with its final status."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ray.tune import Callback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from common.base import compat
from common.base.errors import TrialCodeError, first_line
from common.base.names import TRIAL_STATUS
from common.base.objective import Objective
from common.base.progress import SweepProgress, quiet_trial_failures
from common.base.tracking import TrialRun, check_tracking_uri
from common.sweep.export import Exporter
from common.sweep.resources import slots
from common.sweep.result import BestTrial
from common.sweep.space import Space
from common.sweep.storage import NoSpaceLeft, SweepStorage, check_error_file, no_space_line
from common.sweep.studies import ResilientRDBStorage, fail_orphans
from common.trial.config import TrialConfig
from common.trial.contract import SweepContext
from common.trial.families import Family, config_class, get
from common.trial.records import RUN_ID_FILE

# Trials run one after another in the same Ray worker process instead of a fresh one each:
# a new process pays for importing torch, MLflow and Ray Tune again (bench/overhead.py, BENCHMARKS.md).
REUSE_ACTORS = True


@dataclass(frozen=True)
class FamilyRun:
    """One family's Tune experiment, as the driver asks for it."""

    family: str
    trainable: Callable[[Family], Callable]  # the family -> Tune's function (trainables.trial.trainable)
    ctx: SweepContext  # where trials log, and the objective (ctx.metric, ctx.mode) Tune ranks them on
    fixed: dict[str, Any]  # config values every trial of it gets
    path: str  # "<sweep>/<name>" under the sweep's storage; restored if it exists
    resources: dict[str, float]  # per trial: {"cpu", "gpu", "memory_mb"}
    num_samples: int
    max_failures: int = 2  # restarts per trial (FailureConfig)
    study: tuple[str, str] | None = None  # (RDB storage URL, study name) of the Optuna searcher
    sampler_seed: int | None = None  # its sampler's (common.sweep.warm_start.sampler_seed); None: the trials' seed
    verbose: bool = False  # Ray's own tables, else one status line (common.base.progress)
    exporter: Exporter | None = None  # --export: each finished trial's JSON file (common.sweep.export)

    @property
    def max_epochs(self) -> int:
        return int(self.fixed.get("max_epochs") or config_class(self.family)().max_epochs)


def fit_family(space: Space, run: FamilyRun, storage: SweepStorage) -> tuple[BestTrial | None, list[str]]:
    """Run (or restore and finish) ``run``'s Tune experiment; return (its best trial, or None when
    no trial has a model worth keeping; the first line of each failed trial's error)."""
    from ray import tune

    # 1. The trainable, with the trial's share of a node; this command's --export (a restored
    #    Tuner keeps the callbacks it was started with, so they read it here, not from their pickle).
    #    A trial whose own code raised is not restarted: it would raise again.
    compat.no_restart_after(TrialCodeError)
    if not run.verbose:  # the progress line names each failed trial; Tune's tracebacks stay in its error files
        quiet_trial_failures()
    trainable = _trainable(run)
    MlflowStatusCallback.exporter = run.exporter
    # 2. Tune's saved state when the experiment ran before (--resume, a restarted driver), else a new one.
    fs = storage.tune_filesystem  # None: a local folder
    if storage.exists(run.path) and tune.Tuner.can_restore(storage.path(run.path), storage_filesystem=fs):
        # (A restored Tuner keeps the callbacks and verbosity it was started with.)
        tuner = tune.Tuner.restore(
            storage.path(run.path), trainable=trainable, resume_errored=True, storage_filesystem=fs
        )
    else:
        tuner = _new_tuner(space, run, storage, trainable)
    # 3. Fit; then trials a killed driver left RUNNING in the study are failed (replacements ran).
    results = _fit(tuner, run.num_samples)
    if run.study:
        fail_orphans(*run.study)
    return _best(results, run.ctx), [_error_line(r.error) for r in results if r.error is not None]


def _run_id_file(trial) -> str | None:
    """The MLflow run id a trial wrote into its folder (``RUN_ID_FILE``) before its first report: a
    trial that failed in its first epoch reported nothing."""
    with contextlib.suppress(OSError, TypeError):
        return (Path(trial.local_path) / RUN_ID_FILE).read_text().strip() or None
    return None


def _error_line(error: BaseException) -> str:
    """A failed trial's error in one line: the trial's own exception (Ray wraps it), type and message."""
    cause = getattr(error, "cause", None) or error
    if isinstance(cause, TrialCodeError):  # it names the exception and where it was raised
        return first_line(cause, 400)
    return f"{type(cause).__name__}: {first_line(cause, 300)}"


def _trainable(run: FamilyRun):
    """The family's Tune trainable, its fixed config bound, with the trial's resources."""
    from ray import tune

    fn = run.trainable(get(run.family))
    r = run.resources
    # Ray's "memory" is a reservation, per node: a node runs only the trials whose peaks fit it.
    need = {"cpu": r["cpu"], "gpu": r["gpu"], "memory": r["memory_mb"] * 2**20}
    return tune.with_resources(tune.with_parameters(fn, ctx=run.ctx, fixed=run.fixed), need)


def _new_tuner(space: Space, run: FamilyRun, storage: SweepStorage, trainable):
    """A fresh Tuner: the space's searcher and scheduler, checkpoints, restarts and callbacks."""
    from ray import tune

    scheduler, param_space = _scheduler(space, run)
    callbacks = [MlflowStatusCallback(run.ctx.tracking_uri, run.max_epochs), TrialEnds()]
    if not run.verbose:
        callbacks.append(ProgressCallback(run.family, run.ctx.objective, run.num_samples, run.max_epochs))
    folder, name = run.path.rsplit("/", 1)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=run.ctx.metric,
            mode=run.ctx.mode,
            search_alg=_searcher(space, run),
            scheduler=scheduler,
            num_samples=run.num_samples,
            reuse_actors=REUSE_ACTORS,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage.path(folder),
            storage_filesystem=storage.tune_filesystem,
            verbose=int(run.verbose),
            # PBT / PB2 would otherwise exploit a trial on its last report, re-running its last epoch.
            stop={"training_iteration": run.max_epochs} if param_space else None,
            # The last two: a trial whose newest checkpoint is corrupt restarts from the one before;
            # four under PBT / PB2, so a donor's checkpoint outlives the clone that restores it.
            # (The best model is kept apart, as the trial's MLflow artifact checkpoints/best.pt.)
            checkpoint_config=tune.CheckpointConfig(num_to_keep=4 if param_space else 2),
            failure_config=tune.FailureConfig(max_failures=run.max_failures),
            callbacks=callbacks,
        ),
    )


# TPE's settings, stated rather than left to Optuna's defaults (Optuna 5's, which changed from
# 4's: multivariate and constant liar on), so a new Optuna default changes no sweep unannounced.
TPE = {"n_startup_trials": 10, "n_ei_candidates": 24, "multivariate": True, "constant_liar": True}


def optuna_sampler(kind: str | None, seed: int) -> tuple[Any, str]:
    """(the Optuna sampler of a searched space: TPE, or random for ``sampler = "random"``; its
    settings in one line, as the parent run's tag ``optuna.sampler`` records them)."""
    import optuna

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed), f"RandomSampler(seed={seed})"
    settings = {"seed": seed, **TPE}
    return optuna.samplers.TPESampler(**settings), f"TPESampler({', '.join(f'{k}={v}' for k, v in settings.items())})"


def _searcher(space: Space, run: FamilyRun):
    """Optuna (TPE, or random with ``sampler = "random"``; several objectives: multi-objective) in
    the run's RDB study, no further ahead than the trials that fit at once; None for fixed runs."""
    if space.search is None or space.runs:
        return None
    from ray.tune.search import ConcurrencyLimiter

    seed = run.sampler_seed if run.sampler_seed is not None else int(run.fixed.get("seed", TrialConfig.seed))
    multi = len(space.objectives) > 1
    searcher = PrunedAwareOptunaSearch(
        run.max_epochs,
        space=space.search_for(run.family),
        sampler=optuna_sampler(space.sampler, seed)[0],  # seeded itself
        metric=[m for m, _ in space.objectives] if multi else run.ctx.metric,
        mode=[m for _, m in space.objectives] if multi else run.ctx.mode,
        storage=ResilientRDBStorage(run.study[0]),
        study_name=run.study[1],
    )
    return ConcurrencyLimiter(searcher, max_concurrent=space.max_concurrent or slots(run.resources))


def _scheduler(space: Space, run: FamilyRun) -> tuple[Any, dict | None]:
    """(Tune scheduler, param space): PBT and PB2 draw and mutate their own configs (no searcher); ASHA
    stops the laggards when there is more than one trial and epoch and a single objective."""
    kind = (space.scheduler or {}).get("kind")
    if kind in ("pbt", "pb2"):
        return population_based(space.scheduler)
    if space.scheduler and run.num_samples > 1 and run.max_epochs > 1 and len(space.objectives) <= 1:
        asha = ScheduleAwareASHA(
            time_attr="training_iteration",
            max_t=run.max_epochs,
            grace_period=min(space.scheduler.get("grace_period", 1), run.max_epochs),
            reduction_factor=space.scheduler.get("reduction_factor", 3),
        )
        return asha, None
    return None, None


def _best(results, ctx: SweepContext) -> BestTrial | None:
    """The best trial of a fit, each at its best epoch (the one its checkpoints/best.pt holds), on
    the validation objective; a diverged trial has no model worth keeping."""
    ok = [
        r
        for r in results
        if r.metrics and ctx.metric in r.metrics and r.metrics.get("mlflow_run_id") and not r.metrics.get("diverged")
    ]
    if not ok:
        return None
    value = {id(r): best_reported(r, ctx.objective) for r in ok}
    best = ctx.objective.pick(ok, key=lambda r: value[id(r)])
    return BestTrial(best.metrics["mlflow_run_id"], ctx.metric, value[id(best)], dict(best.config))


def population_based(scheduler: dict) -> tuple[Any, dict]:
    """``scheduler = {"kind": "pbt" | "pb2", ...}`` -> (Tune's PopulationBasedTraining or PB2, the
    param space it draws the first configs from). ``mutations``: field -> a list of choices, or
    ("uniform" | "log", low, high). Every ``perturbation_interval`` epochs the bottom
    ``quantile_fraction`` of the trials clone a top trial's checkpoint and change its config: PBT
    perturbs or resamples it, PB2 asks a GP bandit (scikit-learn's) fitted on the population's
    improvement per interval for the next values inside the bounds. ``synch``: perturb only once
    every live trial has reached the interval (Ray's synchronous PBT), so the population is ranked
    at one epoch even when it is larger than the trials that run at once."""
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pb2 import PB2

    draw = {"uniform": tune.uniform, "log": tune.loguniform}
    space = {
        k: tune.choice(list(v)) if isinstance(v, list) else draw[v[0]](v[1], v[2])
        for k, v in scheduler["mutations"].items()
    }
    common = {
        "time_attr": "training_iteration",
        "perturbation_interval": scheduler["perturbation_interval"],
        "quantile_fraction": scheduler.get("quantile_fraction", 0.25),
        "synch": scheduler.get("synch", False),
    }
    if scheduler["kind"] == "pb2":
        bounds = {k: [v[1], v[2]] for k, v in scheduler["mutations"].items()}
        return _resumable(PB2)(**common, hyperparam_bounds=bounds), space
    return _resumable(PopulationBasedTraining)(**common, hyperparam_mutations=space), space


def next_sync(current: float, live_times: list[float], interval: int) -> float:
    """Synchronous PBT's next perturbation time, once Ray has set it to ``current``: a paused trial
    only runs while it is behind that time, so when every live trial is already there (a resumed
    sweep whose trials all stopped at one epoch past the old sync point), move it one interval past
    the earliest of them, or none would run again."""
    if live_times and min(live_times) >= current:
        return min(live_times) + interval
    return current


def _resumable(base: type) -> type:
    """``base`` (Tune's PBT or PB2) whose synchronous mode cannot stall after ``--resume``."""

    class Resumable(base):
        def on_trial_result(self, tune_controller, trial, result):
            decision = super().on_trial_result(tune_controller, trial, result)
            compat.pbt_resync(self, tune_controller, next_sync)
            return decision

    Resumable.__name__ = Resumable.__qualname__ = f"Resumable{base.__name__}"
    return Resumable


def best_reported(result, objective: Objective) -> float:
    """A trial's best reported objective over its epochs (the epoch its best.pt holds)."""
    df, metric = result.metrics_dataframe, objective.metric
    best = objective.best(df[metric].tolist()) if df is not None and metric in df else None
    return result.metrics[metric] if best is None else best


def _fit(tuner, num_samples: int):
    """``tuner.fit()``; KeyboardInterrupt if Ctrl+C (SIGINT) stopped it, NoSpaceLeft if a full disk did.

    Tune catches the first SIGINT, saves its state and returns as if the fit had ended; what
    TrialEnds saw (a trial started and never ended, or fewer trials than asked for) tells them apart.
    """
    TrialEnds.active = None
    try:
        results = tuner.fit()
    except NoSpaceLeft:
        raise
    except Exception as exc:  # Tune's own writes fail too when the disk is full
        if line := no_space_line(f"{exc}\n{exc.__cause__ or ''}"):
            raise NoSpaceLeft(line) from None
        raise
    ends = TrialEnds.active  # None: an experiment restored from before TrialEnds; the count alone tells
    if ends.interrupted(len(results)) if ends else len(results) < num_samples:
        raise KeyboardInterrupt("Tune was stopped by SIGINT")
    return results


class TrialEnds(Callback):
    """Which trials this fit started, and which Tune saw end (complete, stopped or failed). A
    restored Tuner runs the callbacks it was started with, so the one in use is ``active``."""

    active: "TrialEnds | None" = None

    def setup(self, total_num_samples: int = 0, **info):
        self.started, self.ended, self.total = set(), set(), total_num_samples
        TrialEnds.active = self

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started.add(trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended.add(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended.add(trial.trial_id)

    def interrupted(self, n_trials: int) -> bool:
        return bool(self.started - self.ended) or n_trials < self.total


class PrunedAwareOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch, except that a trial that ended before ``max_epochs`` (stopped by ASHA or
    pruned by ``collapse_patience``) reaches the Optuna study as PRUNED, not COMPLETE with its early
    value: TPE then ranks it by its intermediate values (reported every epoch) behind every trial
    that completed. A diverged trial stays COMPLETE with its finite penalty (the region is bad)."""

    def __init__(self, max_epochs: int, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._max_epochs = max_epochs

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        early = (
            result
            and not error
            and not result.get("diverged")
            and result.get("epoch", self._max_epochs) < self._max_epochs
        )
        if not (early and compat.optuna_search_prune(self, trial_id)):
            return super().on_trial_complete(trial_id, result, error)


class ScheduleAwareASHA(ASHAScheduler):
    """ASHA that never compares a trial on an epoch before its beta schedule has settled (the
    trial reports ``beta_settled``; ``common.trial.losses.beta_settled_epoch``): a warm-up or cyclical
    schedule's early objectives are inflated by a KL weighted below its final value, and plain ASHA
    would stop such trials for it. A trial settling after a rung is compared at the highest rung it
    has passed, with its settled value. Trials without the key (DCGAN, VAE-GAN) are plain ASHA."""

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if not result.get("beta_settled", 1.0):
            return self.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if not result.get("beta_settled", 1.0):  # ended before settling (collapse, failure): no rung value
            compat.asha_forget(self, trial.trial_id)
            return
        super().on_trial_complete(tune_controller, trial, result)


class ProgressCallback(SweepProgress, Callback):
    """common.base.progress's status line as a Tune callback."""


class MlflowStatusCallback(Callback):
    """Driver side: close each trial's MLflow run with its final status.

    A trial stopped by ASHA is ended by Tune without running its own code, so the driver,
    which sees every trial end, writes ``trial_status`` (completed | stopped | failed), then, with
    an ``exporter`` (``--export``, set by ``fit_family`` for the fit in progress), the finished
    trial's JSON file.
    """

    exporter: Exporter | None = None

    def __init__(self, tracking_uri: str, max_epochs: int):
        self.tracking_uri, self.max_epochs = tracking_uri, max_epochs

    def _close(self, trial, status: str, run_status: str, **tags) -> None:
        try:
            check_tracking_uri(self.tracking_uri)  # 5 s; a dead server must not stall the driver
            self._close_run(trial, status, run_status, **tags)
        except Exception as e:  # the tracking server is down: the sweep goes on without the status
            warnings.warn(f"could not record trial {trial.trial_id}'s status {status!r} in MLflow: {e}")

    def _close_run(self, trial, status: str, run_status: str, **tags) -> None:
        run_id = (trial.last_result or {}).get("mlflow_run_id") or _run_id_file(trial)
        if not run_id:
            return
        run = TrialRun.attach(self.tracking_uri, run_id)
        current = run.client.get_run(run_id).data.tags.get(TRIAL_STATUS)
        if current in ("diverged", "collapsed"):  # the trial's own verdict wins
            status = current
        run.set_tags({TRIAL_STATUS: status, **tags})
        run.finish(run_status)
        if self.exporter:
            self.exporter.trial(run.client, run_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        done = (trial.last_result or {}).get("epoch", 0) >= self.max_epochs
        self._close(trial, "completed" if done else "stopped", "FINISHED")

    def on_trial_recover(self, iteration, trials, trial, **info):
        check_error_file(trial.error_file)  # a full disk stops the sweep (NoSpaceLeft), not a retry

    def on_trial_error(self, iteration, trials, trial, **info):
        check_error_file(trial.error_file)  # stopped for want of space, not failed: --resume continues it
        self._close(trial, "failed", "FAILED", error=str(getattr(trial, "error_file", "") or ""))
