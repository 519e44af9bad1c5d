"""common/sweep/studies.py: the Optuna study storage rides out a dropped database connection."""

from __future__ import annotations

import optuna
import pytest


def test_the_study_storage_waits_out_a_dropped_database_connection_but_not_bad_data(monkeypatch, tmp_path):
    """A PostgreSQL restart surfaces as Optuna's StorageInternalError caused by SQLAlchemy's
    OperationalError: retried (tests/test_mlflow_server_postgres.py restarts a real one under a sweep).
    Any other error is raised at once."""
    import sqlalchemy.exc

    from common.sweep import studies

    monkeypatch.setattr(studies.time, "sleep", lambda s: None)
    calls = []

    def flaky(self):
        calls.append(1)
        if len(calls) < 3:
            try:
                raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("terminating connection"))
            except sqlalchemy.exc.OperationalError as e:
                raise optuna.exceptions.StorageInternalError("commit failed") from e
        return "studies"

    monkeypatch.setattr(studies.ResilientRDBStorage, "get_all_studies", studies._retrying(flaky))
    storage = studies.ResilientRDBStorage(f"sqlite:///{tmp_path / 'o.db'}")
    assert storage.get_all_studies() == "studies" and len(calls) == 3
    with pytest.raises(KeyError):  # not a connection loss: no retry
        studies._retrying(lambda self: {}["x"])(storage)
    assert all(
        hasattr(getattr(studies.ResilientRDBStorage, n), "__wrapped__")
        for n in ("create_new_trial", "set_trial_state_values", "set_trial_intermediate_value", "get_all_trials")
    )


@pytest.mark.parametrize("url", ["sqlite:///{tmp}/o.db", "postgresql+psycopg2://u@127.0.0.1:1/db"])
def test_every_rdb_storage_pings_its_pooled_connections_before_use(url, tmp_path, monkeypatch):
    from optuna.storages import RDBStorage

    from common.sweep.studies import ResilientRDBStorage

    seen = {}
    monkeypatch.setattr(RDBStorage, "__init__", lambda self, url, engine_kwargs=None, **kw: seen.update(engine_kwargs))
    ResilientRDBStorage(url.format(tmp=tmp_path))
    assert seen == {"pool_pre_ping": True}
