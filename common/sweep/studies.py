"""The searcher's Optuna studies: where they live, a storage that rides out a database restart,
and the trials a killed driver left RUNNING in them."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from optuna.storages import BaseStorage, RDBStorage

from common.base import compat
from common.base.errors import first_line
from common.base.tracking import TrackingError, redact


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
    instead of failing the sweep: the searcher asks and tells through it from the driver. Its
    engine checks each pooled connection before use (``pool_pre_ping``, which Optuna sets itself
    only for MySQL), so a connection a PostgreSQL restart broke is replaced, not used."""

    def __init__(self, url: str, engine_kwargs: dict | None = None, **kwargs):
        super().__init__(url, engine_kwargs={"pool_pre_ping": True, **(engine_kwargs or {})}, **kwargs)


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


def fail_orphans(storage_url: str, study_name: str) -> None:
    """Mark Optuna trials still RUNNING after the fit as FAIL: a driver killed with SIGKILL
    after asking the searcher but before Tune saved its state leaves them behind, and the
    resumed searcher has run replacements."""
    import optuna

    storage = ResilientRDBStorage(storage_url)
    study = optuna.load_study(study_name=study_name, storage=storage)
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_user_attr(
            compat.optuna_trial_id(t), "orphaned", "the driver died before Tune recorded this trial"
        )
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
