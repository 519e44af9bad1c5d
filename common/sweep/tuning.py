"""Ray Tune and Optuna: one Tune experiment per model family (Optuna TPE in an RDB study,
ASHA, a concurrency limit, a checkpoint every epoch, FailureConfig restarts), and the driver
callback that closes each trial's MLflow run with its final status."""

from __future__ import annotations

import functools
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage, RDBStorage
from ray.tune import Callback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from common.errors import first_line
from common.sweep.progress import SweepProgress
from common.sweep.space import Space
from common.sweep.storage import SweepStorage, disk_full, stop_if_disk_full
from common.sweep.tracking import TrackingError, TrialRun, check_tracking_uri, redact
from common.trial.config import ConfigError, config_class
from common.trial.loop import SweepContext

# Trials run one after another in the same Ray worker process instead of a fresh one each:
# a new process pays for importing torch, MLflow and Ray Tune again (bench/overhead.py, BENCHMARKS.md).
REUSE_ACTORS = True


def check_optuna_storage(url: str) -> None:
    """Connect once (creating a sqlite file's schema), so a bad URL fails before Ray starts."""
    import optuna

    try:
        optuna.storages.RDBStorage(url)
    except Exception as e:
        raise TrackingError(
            f"--optuna-storage {redact(url)!r} is not a usable Optuna RDB storage "
            f"({first_line(e, 160)}); use sqlite:///PATH or postgresql://..."
        ) from None


DB_OUTAGE_S = 120.0  # how long a study call waits out a dropped database connection (a restart)


def _is_connection_loss(exc: BaseException) -> bool:
    """A dropped or refused database connection (SQLAlchemy's OperationalError/InterfaceError,
    e.g. PostgreSQL restarting), possibly wrapped in Optuna's StorageInternalError; not bad data."""
    import sqlalchemy.exc

    while exc is not None:
        if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)) or getattr(
            exc, "connection_invalidated", False
        ):
            return True
        exc = exc.__cause__
    return False


def _retrying(method):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        deadline = time.monotonic() + DB_OUTAGE_S
        while True:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                if not _is_connection_loss(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(1.0)  # pool_pre_ping then replaces the dead connections

    return call


class ResilientRDBStorage(RDBStorage):
    """Optuna's RDBStorage whose calls wait out a database restart (up to ``DB_OUTAGE_S``)
    instead of failing the sweep: the searcher asks and tells through it from the driver."""


for _name in dir(BaseStorage):  # every storage call, but the two that raise on purpose or touch no database
    if not _name.startswith("_") and _name not in ("check_trial_is_updatable", "remove_session"):
        setattr(ResilientRDBStorage, _name, _retrying(getattr(RDBStorage, _name)))


def optuna_storage_url(tracking_uri: str, explicit: str | None = None) -> str:
    """Where the searcher's Optuna studies live: ``--optuna-storage``, else a sqlite file
    ``optuna.db`` beside a sqlite MLflow store, else ``./optuna.db``. Browse it with
    ``optuna-dashboard <url>``."""
    if explicit:
        return explicit
    if tracking_uri.startswith("sqlite:///"):
        return f"sqlite:///{Path(tracking_uri[len('sqlite:///') :].split('?')[0]).with_name('optuna.db')}"
    return f"sqlite:///{Path.cwd() / 'optuna.db'}"


def fit_family(
    space: Space,
    family: str,
    ctx: SweepContext,
    fixed: dict[str, Any],
    max_failures: int,
    storage: SweepStorage,
    path: str,
    resources: dict[str, float],
    num_samples: int,
    study: tuple[str, str] | None = None,
    *,
    verbose: bool = False,
) -> dict[str, Any] | None:
    """One Tune experiment for ``family`` in ``path`` ("<sweep>/<family>" under ``storage``;
    restored if it exists); return its best result. resources: per trial, {"cpu", "gpu", "memory_mb"}. study: (RDB storage URL,
    study name) for the Optuna searcher. verbose: Ray's own tables, else one status line (common.sweep.progress)."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from common.trial.families import get
    from trainables.trial import trainable as family_trainable

    fn = family_trainable(get(family))
    # Ray's "memory" is a reservation, per node: a node runs only the trials whose peaks fit it.
    ray_resources = {"cpu": resources["cpu"], "gpu": resources["gpu"], "memory": resources["memory_mb"] * 2**20}
    trainable = tune.with_resources(tune.with_parameters(fn, ctx=ctx, fixed=fixed), ray_resources)
    max_epochs = int(fixed.get("max_epochs") or config_class(family)().max_epochs)
    fs = storage.tune_filesystem  # None: a local folder
    callbacks = [MlflowStatusCallback(ctx.tracking_uri, max_epochs)]
    if not verbose:
        callbacks.append(ProgressCallback(family, ctx.metric, ctx.mode, num_samples, max_epochs))
    if storage.exists(path) and tune.Tuner.can_restore(storage.path(path), storage_filesystem=fs):
        # (A restored Tuner keeps the callbacks and verbosity it was started with.)
        tuner = tune.Tuner.restore(storage.path(path), trainable=trainable, resume_errored=True, storage_filesystem=fs)
    else:
        searcher = None
        if space.search is not None and not space.runs:
            seed = int(fixed.get("seed", 42))
            multi = len(space.objectives) > 1
            import optuna

            random = space.sampler == "random"
            searcher = PrunedAwareOptunaSearch(
                max_epochs,
                space=space.search_for(family),
                seed=None if random else seed,
                sampler=optuna.samplers.RandomSampler(seed=seed) if random else None,
                metric=[m for m, _ in space.objectives] if multi else ctx.metric,
                mode=[m for _, m in space.objectives] if multi else ctx.mode,
                storage=ResilientRDBStorage(study[0]),
                study_name=study[1],
            )
            searcher = ConcurrencyLimiter(searcher, max_concurrent=space.max_concurrent or _slots(resources))
        scheduler, param_space = None, None
        if space.scheduler and space.scheduler.get("kind") == "pbt":  # no searcher: PBT draws and mutates
            scheduler, param_space = population_based(space.scheduler)
        elif space.scheduler and num_samples > 1 and max_epochs > 1 and len(space.objectives) <= 1:
            scheduler = ScheduleAwareASHA(
                time_attr="training_iteration",
                max_t=max_epochs,
                grace_period=min(space.scheduler.get("grace_period", 1), max_epochs),
                reduction_factor=space.scheduler.get("reduction_factor", 3),
            )
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=ctx.metric,
                mode=ctx.mode,
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=num_samples,
                reuse_actors=REUSE_ACTORS,
            ),
            run_config=tune.RunConfig(
                name=path.rsplit("/", 1)[-1],
                storage_path=storage.path(path.rsplit("/", 1)[0]),
                storage_filesystem=fs,
                verbose=int(verbose),
                # The last two: a trial whose newest checkpoint is corrupt restarts from the one before.
                # (The best model is kept apart, as the trial's MLflow artifact checkpoints/best.pt.)
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=max_failures),
                callbacks=callbacks,
            ),
        )
    results = _fit(tuner)
    if study:
        _fail_orphans(*study)
    ok = [
        r
        for r in results
        if r.metrics and ctx.metric in r.metrics and r.metrics.get("mlflow_run_id") and not r.metrics.get("diverged")
    ]  # a diverged trial has no model worth keeping
    if not ok:
        return None
    # Each trial at its best epoch (the one its checkpoints/best.pt holds), on the validation objective.
    value = {id(r): best_value(r, ctx.metric, ctx.mode) for r in ok}
    best = (min if ctx.mode == "min" else max)(ok, key=lambda r: value[id(r)])
    return {
        "metric": ctx.metric,
        "value": value[id(best)],
        "mlflow_run_id": best.metrics["mlflow_run_id"],
        "config": {k: v for k, v in best.config.items()},
    }


def population_based(scheduler: dict) -> tuple[Any, dict]:
    """``scheduler = {"kind": "pbt", ...}`` -> (Tune's PopulationBasedTraining, the param space it
    draws the first configs from and mutates). ``mutations``: field -> a list of choices, or
    ("uniform" | "log", low, high). Every ``perturbation_interval`` epochs the bottom
    ``quantile_fraction`` of the trials clone a top trial's checkpoint and mutate its config."""
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    draw = {"uniform": tune.uniform, "log": tune.loguniform}
    space = {
        k: tune.choice(list(v)) if isinstance(v, list) else draw[v[0]](v[1], v[2])
        for k, v in scheduler["mutations"].items()
    }
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=scheduler["perturbation_interval"],
        quantile_fraction=scheduler.get("quantile_fraction", 0.25),
        hyperparam_mutations=space,
    )
    return pbt, space


def best_value(result, metric: str, mode: str) -> float:
    """A trial's best reported ``metric`` over its epochs (the epoch its best.pt holds)."""
    df = result.metrics_dataframe
    values = df[metric].dropna().tolist() if df is not None and metric in df else []
    return (min if mode == "min" else max)(values) if values else result.metrics[metric]


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
    except Exception:
        if not disk_full():
            raise
        interrupted = True  # stopped for a full disk: Tune's half-written error files don't read back
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

    storage = ResilientRDBStorage(storage_url)
    study = optuna.load_study(study_name=study_name, storage=storage)
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_user_attr(t._trial_id, "orphaned", "the driver died before Tune recorded this trial")
        storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)


MAX_PACK = 16  # trials per GPU at most: the largest count bench/packing.py measures
GPU_MEMORY_USE = 0.9  # of a GPU's memory that packed trials may plan on: the rest is fragmentation headroom


def gpu_plan(gpu_memory_mb: float | None, need_mb: float, cpus_per_gpu: float, cpus_per_trial: float) -> int:
    """How many trials share one GPU: as many as ``GPU_MEMORY_USE`` of its memory holds at
    ``need_mb`` each and its node's CPUs per GPU can feed, at most ``MAX_PACK``, at least 1;
    1 when the GPU's memory is unknown."""
    if not gpu_memory_mb:
        return 1
    by_memory = int(GPU_MEMORY_USE * gpu_memory_mb // max(need_mb, 1))
    by_cpus = int(cpus_per_gpu // cpus_per_trial) if cpus_per_trial else MAX_PACK
    return max(1, min(by_memory, by_cpus, MAX_PACK))


def resolve_gpus(resources: dict, need_mb: float) -> dict[str, float]:
    """``resources`` with ``gpu="auto"`` replaced by a share: none on a cluster without GPUs (a
    trial on an Apple node, declared ``mps``, still uses MPS), else ``1/gpu_plan(...)`` of a GPU,
    sized by the smallest GPU node's CPUs per GPU and a probe of its GPU memory."""
    if resources["gpu"] != "auto":
        return resources
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive") and n["Resources"].get("GPU")]
    if not nodes:
        return {**resources, "gpu": 0.0}
    per_gpu = min(n.get("CPU", 0) / n["GPU"] for n in nodes)
    k = gpu_plan(_probe_gpu_memory_mb(), need_mb, per_gpu, resources["cpu"])
    return {**resources, "gpu": math.floor(1e4 / k) / 1e4}  # Ray counts GPU shares in 1e-4 steps


def _probe_gpu_memory_mb() -> float | None:
    """A GPU node's GPU memory, MiB, from a tiny task placed there (the driver may have no GPU)."""
    import ray

    @ray.remote(num_gpus=1e-4, num_cpus=0)
    def probe():
        from common.trial.device import gpu_memory_mb

        return gpu_memory_mb()

    try:
        return ray.get(probe.remote(), timeout=120)
    except Exception as e:  # noqa: BLE001 - no answer: one trial per GPU, and say so
        warnings.warn(f"could not read the GPU's memory ({type(e).__name__}); packing 1 trial per GPU")
        return None


def placement(resources: dict[str, float]) -> str:
    """What the sweep chose, for the console and each run's ``placement`` tag, e.g.
    ``8 trials at once, 1/8 GPU each (cuda)``."""
    import ray

    slots = _slots(resources)
    at_once = f"{slots} trial{'s' if slots > 1 else ''} at once"
    gpu = resources["gpu"]
    if gpu:
        share = f"1/{round(1 / gpu)}" if gpu < 1 and abs(1 / gpu - round(1 / gpu)) < 0.01 else f"{gpu:g}"
        return f"{at_once}, {share} GPU each (cuda)"
    where = "cpu, mps on Apple nodes" if ray.cluster_resources().get("mps") else "cpu"
    return f"{at_once}, {resources['cpu']:g} CPU each ({where})"


def _ray_units(resources: dict[str, float]) -> dict[str, float]:
    """A trial's {"cpu", "gpu", "memory_mb"} in the names and units of Ray's node resources."""
    return {"CPU": resources["cpu"], "GPU": resources["gpu"], "memory": resources.get("memory_mb", 0) * 2**20}


def check_fits(resources: dict[str, float]) -> None:
    """ConfigError unless some node of the cluster can hold one trial: Tune would otherwise wait
    forever for a node that never comes."""
    import ray

    need = _ray_units(resources)
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if any(all(n.get(k, 0) >= v for k, v in need.items()) for n in nodes):
        return
    best = {k: max((n.get(k, 0) for n in nodes), default=0) for k in need}
    short = [k for k in need if best[k] < need[k]]
    shown = lambda k, v: f"{v / 2**20:,.0f} MiB" if k == "memory" else f"{v:g}"
    flag = {"CPU": "--cpus-per-trial", "GPU": "--gpus-per-trial", "memory": "--memory-per-trial"}
    raise ConfigError(
        "a trial needs "
        + ", ".join(f"{k} {shown(k, need[k])}" for k in short or need)
        + " but no node has that much (largest: "
        + ", ".join(f"{k} {shown(k, best[k])}" for k in short or need)
        + "); lower "
        + " / ".join(flag[k] for k in short or need)
        + " or add a bigger node"
    )


def _slots(resources: dict[str, float]) -> int:
    """How many trials fit at once on this cluster (the searcher should not run ahead of it):
    the scarcest of CPUs, GPUs and memory, each total over the trial's need."""
    import ray

    total = ray.cluster_resources()
    need = _ray_units(resources)
    return max(1, min((int(total.get(k, 0) // v) for k, v in need.items() if v), default=10**6))


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
            and trial_id not in self._completed_trials
            and not result.get("diverged")
            and result.get("epoch", self._max_epochs) < self._max_epochs
        )
        if not early:
            return super().on_trial_complete(trial_id, result, error)
        import optuna

        self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)


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
            self._trial_info.pop(trial.trial_id, None)
            return
        super().on_trial_complete(tune_controller, trial, result)


class ProgressCallback(SweepProgress, Callback):
    """common.sweep.progress's status line as a Tune callback."""


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

    def on_trial_recover(self, iteration, trials, trial, **info):
        stop_if_disk_full(trial.error_file)

    def on_trial_error(self, iteration, trials, trial, **info):
        stop_if_disk_full(trial.error_file)
        if disk_full():  # stopped for want of space, not failed: --resume continues it
            return
        self._close(trial, "failed", "FAILED", error=str(getattr(trial, "error_file", "") or ""))
