"""MLflow plumbing: tracking URIs, reachability, parent/child runs, retrying loggers.

Trials log straight from their Ray workers through ``MlflowClient`` (no global active run,
so many trials in one process or many processes stay independent). The embedded default is
a sqlite file plus a local artifact folder in the working directory: no server needed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from common.base.errors import UserError, first_line
from common.base.objective import Objective

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
UNLOGGED_FILE = "mlflow_unlogged.jsonl"  # in a trial's folder: the writes MLflow never received
_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "databricks")


class TrackingError(UserError):
    """The tracking backend is malformed or unreachable (CLI: one line, exit 2)."""


def resolve_tracking_uri(uri: str | None, workdir: str | os.PathLike = ".") -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<workdir>/mlflow.db``.

    A relative sqlite path is made absolute against ``workdir``: Ray runs each trial in its own
    folder, where ``sqlite:///mlflow.db`` would name a different, empty database.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        uri = f"sqlite:///{Path(workdir).resolve() / DEFAULT_DB}"
    elif uri.startswith("sqlite:///") and not uri.startswith("sqlite:////") and uri[len("sqlite:///") :].split("?")[0]:
        path, sep, query = uri[len("sqlite:///") :].partition("?")
        uri = f"sqlite:///{Path(workdir).resolve() / path}{sep}{query}"
    return uri


def default_artifact_location(uri: str, workdir: str | os.PathLike = ".") -> str | None:
    """Local artifact folder beside a sqlite store; a server decides its own (None)."""
    if uri.startswith("sqlite:"):
        return (Path(workdir).resolve() / DEFAULT_ARTIFACTS).as_uri()
    return None


def check_tracking_uri(uri: str, timeout_s: float = 5.0, must_exist: bool = False) -> None:
    """Fail fast, before Ray starts, on a malformed or unreachable backend.

    ``must_exist``: reading only (the report): a missing sqlite file is an error, not created.
    """
    parsed = urlparse(uri)
    scheme = parsed.scheme.split("+")[0]
    if scheme not in _SCHEMES:
        raise TrackingError(
            f"tracking URI {redact(uri)!r} is not supported; use sqlite:///path/mlflow.db, "
            "http(s)://host:port of an MLflow server, or a postgresql:// URI"
        )
    if scheme == "sqlite":
        db = Path(uri[len("sqlite:///") :].split("?")[0]) if uri.startswith("sqlite:///") else None
        if db is None or not str(db):
            raise TrackingError(f"tracking URI {redact(uri)!r} is malformed; use sqlite:///path/to/mlflow.db")
        parent = db.resolve().parent
        if must_exist and not db.is_file():
            raise TrackingError(f"no MLflow database at {db}; run a sweep first or pass --tracking-uri")
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise TrackingError(f"cannot write the MLflow database {db}: folder {parent} is missing or not writable")
    elif scheme in ("http", "https"):
        if not parsed.hostname:
            raise TrackingError(f"tracking URI {redact(uri)!r} has no host; use http://HOST:PORT")
        import requests  # mlflow's own dependency

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=timeout_s).raise_for_status()
        except Exception as exc:  # connection refused, DNS, timeout, 5xx
            raise TrackingError(
                f"MLflow tracking server {redact(uri)} is unreachable ({type(exc).__name__}); "
                "start it (python -m mlflow_server) or pass another --tracking-uri"
            ) from None


def prepare_store(uri: str) -> None:
    """Create the sqlite schema once in the driver and switch it to WAL.

    Concurrent trials then only append rows: WAL lets readers and one writer proceed
    together, which is what keeps >=4 logging trials free of 'database is locked'.
    """
    if not uri.startswith("sqlite:///"):
        MlflowClient(uri).search_experiments(max_results=1)
        return
    from filelock import FileLock

    path = uri[len("sqlite:///") :].split("?")[0]
    with FileLock(f"{path}.lock", timeout=120):  # two drivers migrating one new file at once corrupt it
        MlflowClient(uri).search_experiments(max_results=1)  # runs migrations on a new file
        with sqlite3.connect(path, timeout=30) as con:
            con.execute("PRAGMA journal_mode=WAL")


# One retry layer per kind of MLflow backend, each with a stated bound:
# - an HTTP(S) tracking server: MLflow's own (urllib3) retries, set by fail_fast_http: 2 retries
#   after the first try, backoff 1 s then 2 s, 10 s timeout per try: at most about 33 s a call;
# - a database store (sqlite, PostgreSQL, MySQL) written in-process: retry() below, on a lock or a
#   dropped connection, with backoff until DB_RETRY_S have passed.
HTTP_RETRIES, HTTP_BACKOFF_S, HTTP_TIMEOUT_S = 2, 1, 10
DB_RETRY_S = 30.0


def fail_fast_http() -> None:
    """A dead tracking server must cost seconds per call, not MLflow's default minutes of
    HTTP retries (7 with backoff factor 2); users' own settings win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(HTTP_RETRIES))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", str(HTTP_BACKOFF_S))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(HTTP_TIMEOUT_S))


def retry(fn: Callable[[], Any], what: str, uri: str, budget_s: float = DB_RETRY_S) -> Any:
    """``fn()``, retried with exponential backoff on any error until ``budget_s`` have passed,
    for a database store; for an HTTP(S) server MLflow's own retries already ran, so once."""
    if urlparse(uri).scheme in ("http", "https"):
        return fn()
    deadline, delay = time.monotonic() + budget_s, 0.2
    while True:
        try:
            return fn()
        except Exception as exc:  # mlflow wraps sqlite/SQLAlchemy errors in several types
            if time.monotonic() + delay > deadline:
                raise
            warnings.warn(f"MLflow {what} failed ({exc.__class__.__name__}: {first_line(exc, 120)}); retrying")
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def best_value(client: MlflowClient, run_id: str, objective: Objective) -> float | None:
    """The best finite value of ``objective``'s metric over a run's epochs; None if it never logged one."""
    return objective.best(m.value for m in client.get_metric_history(run_id, objective.metric))


def find_trial_run(uri: str, experiment_id: str, parent_run_id: str | None, trial_id: str) -> str | None:
    """The run an earlier attempt of Tune trial ``trial_id`` created under ``parent_run_id``; None
    if none (or no parent: a local trial). A PBT clone restarts in a fresh trial folder, so the
    folder's ``mlflow_run_id`` file alone cannot say."""
    if not parent_run_id:
        return None
    runs = retry(
        lambda: MlflowClient(uri).search_runs(
            [experiment_id],
            f"tags.trial_id = '{trial_id}' and tags.`mlflow.parentRunId` = '{parent_run_id}'",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        ),
        "search_runs",
        uri,
    )
    return runs[0].info.run_id if runs else None


def get_or_create_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:  # the tag opens it in the UI's model-training view (MLflow 3's default is GenAI's traces)
        return client.create_experiment(
            name, artifact_location=artifact_location, tags={"mlflow.experimentKind": "custom_model_development"}
        )
    except Exception:  # another driver created it first
        return client.get_experiment_by_name(name).experiment_id


def ui_link(uri: str, experiment_id: str) -> str:
    """Where to watch an experiment in the MLflow UI, in its model-training view (MLflow 3's UI
    opens GenAI's traces unless told ``workflowType``; it ignores the experiment's kind tag)."""
    page = f"/#/experiments/{experiment_id}?workflowType=machine_learning"
    if uri.startswith(("http://", "https://")):
        return redact(uri).rstrip("/") + page
    return f"{MLFLOW_UI_URL}{page} (start the UI: {interpreter()} -m mlflow_server --backend-store-uri {redact(uri)})"


def interpreter() -> str:
    """The running Python as a hint can print it: relative to the working folder when under it
    (.venv/bin/python), else absolute; the command works as printed in this environment."""
    exe = Path(sys.executable)
    with contextlib.suppress(ValueError):
        return str(exe.relative_to(Path.cwd()))
    return str(exe)


MLFLOW_UI_URL = "http://127.0.0.1:5000"  # python -m mlflow_server's default address


def git_commit(repo: str | os.PathLike | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo or Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


class TrialRun:
    """One MLflow run (a sweep's parent or a trial's child), written through the client.

    ``tolerant`` (trials): when the backend stays down past the retries, a write is kept in
    ``pending`` instead of raising, so training and checkpointing go on; every later write
    first re-sends what is pending, in order (buffered and flushed when the backend is back).
    What is still pending when the trial ends is saved by ``save_pending`` (the loss recorded).
    """

    RECHECK_S = 30.0  # while the backend is down, try it again at most this often
    TOLERANT_RETRY_S = 2.0  # a trial's write to a database store waits this long before it is kept pending

    def __init__(self, client: MlflowClient, run_id: str, tolerant: bool = False):
        self.client, self.run_id, self.tolerant = client, run_id, tolerant
        self.pending: list[dict[str, Any]] = []  # {"kind": metrics|tags|artifact, ...}, oldest first
        self.attached = False  # an existing run continued (a restarted trial), not a new one
        self._failed_at: float | None = None  # monotonic time of the last failed delivery

    @classmethod
    def create(
        cls, uri: str, experiment_id: str, name: str, tags: Mapping[str, str], tolerant: bool = False
    ) -> "TrialRun":
        client = MlflowClient(uri)
        run = retry(lambda: client.create_run(experiment_id, run_name=name, tags=dict(tags)), "create_run", uri)
        return cls(client, run.info.run_id, tolerant)

    @classmethod
    def attach(cls, uri: str, run_id: str, tolerant: bool = False, reopen: bool = False) -> "TrialRun":
        """A handle on an existing run. Writing to it leaves its status alone: a finished run
        stays finished (the end stage logs to finished trial runs). ``reopen``: mark it RUNNING
        again, for a run that is really running again (a trial restored from its checkpoint, a
        resumed sweep's parent); whoever reopens it closes it."""
        client = MlflowClient(uri)
        if reopen:
            retry(lambda: client.update_run(run_id, status="RUNNING"), "update_run", uri)
        run = cls(client, run_id, tolerant)
        run.attached = True
        return run

    def last_step(self, key: str) -> int:
        """The highest step of metric ``key`` already in the run; 0 if none or unreachable."""
        try:
            return max((m.step for m in self.client.get_metric_history(self.run_id, key)), default=0)
        except Exception:  # backend down: its writes were kept as pending, not logged
            return 0

    def tag(self, key: str) -> str | None:
        """The run's tag ``key``; None if unset or the backend is unreachable."""
        try:
            return self.client.get_run(self.run_id).data.tags.get(key)
        except Exception:  # backend down: treat as unset, so the write is made (again)
            return None

    def log_datasets(self, datasets: list) -> None:
        """``datasets``: MLflow DatasetInputs (``dataset_inputs``), the runs table's Dataset column."""
        self._retry(lambda: self.client.log_inputs(self.run_id, datasets=datasets), "log_inputs")

    def _retry(self, fn: Callable[[], Any], what: str, budget_s: float = DB_RETRY_S) -> Any:
        return retry(fn, what, self.client.tracking_uri, budget_s)

    def _send(self, record: dict[str, Any]) -> None:
        kind = record["kind"]
        if kind == "metrics":
            model_id = record.get("model_id")
            items = [
                Metric(k, float(v), record["ts"], record["step"], model_id=model_id)
                for k, v in record["values"].items()
            ]
            self.client.log_batch(self.run_id, metrics=items)
        elif kind == "tags":
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in record["values"].items()])
        else:
            self.client.log_artifact(self.run_id, record["path"], record["artifact_path"])

    def _write(self, record: dict[str, Any]) -> None:
        if not self.tolerant:
            self._retry(lambda: self._send(record), record["kind"])
            return
        self.pending.append(record)
        if self._failed_at is not None and time.monotonic() - self._failed_at < self.RECHECK_S:
            return  # down a moment ago: don't stall training on it again yet
        try:
            while self.pending:
                self._retry(lambda: self._send(self.pending[0]), self.pending[0]["kind"], self.TOLERANT_RETRY_S)
                self.pending.pop(0)
            self._failed_at = None
        except Exception as exc:
            self._failed_at = time.monotonic()
            warnings.warn(
                f"MLflow unreachable ({exc.__class__.__name__}); {len(self.pending)} write(s) of run "
                f"{self.run_id} kept for later; training goes on"
            )

    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow's per-batch limit
            self._retry(lambda chunk=items[i : i + 100]: self.client.log_batch(self.run_id, params=chunk), "log_params")

    def log_metrics(self, metrics: Mapping[str, float], step: int, model_id: str | None = None) -> None:
        self._write(  # model_id: a logged model of this run the values describe (its page lists them)
            {
                "kind": "metrics",
                "values": {k: float(v) for k, v in metrics.items()},
                "step": step,
                "ts": int(time.time() * 1000),
                **({"model_id": model_id} if model_id else {}),
            }
        )

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._write({"kind": "tags", "values": {k: str(v) for k, v in tags.items()}})

    def log_image(self, path: str | os.PathLike, key: str, step: int) -> None:
        """A PNG as the run's image ``key`` at ``step`` (the UI's image slider). A convenience: a
        backend that refuses it gets a warning, not a retry (the same grid is in ``figures/``)."""
        import numpy as np
        from PIL import Image

        try:
            self.client.log_image(self.run_id, np.asarray(Image.open(path).convert("RGB")), key=key, step=step)
        except Exception as e:
            warnings.warn(f"could not log image {key!r} at step {step} of run {self.run_id}: {first_line(e)}")

    def log_artifact(
        self, path: str | os.PathLike, artifact_path: str | None = None, keep_dir: str | os.PathLike | None = None
    ) -> None:
        """``keep_dir``: where a tolerant run copies the file if it cannot upload it now (the
        original may be a temporary file)."""
        path = Path(path)
        if self.tolerant and keep_dir is not None:
            kept = Path(keep_dir) / "unlogged_artifacts" / (artifact_path or "") / path.name
            kept.parent.mkdir(parents=True, exist_ok=True)
            import shutil

            shutil.copy2(path, kept)
            path = kept
        self._write({"kind": "artifact", "path": str(path), "artifact_path": artifact_path})
        if self.tolerant and keep_dir is not None and not any(r.get("path") == str(path) for r in self.pending):
            path.unlink(missing_ok=True)  # uploaded: the kept copy is not needed

    def save_pending(self, folder: str | os.PathLike) -> Path | None:
        """Write what never reached MLflow to ``folder/mlflow_unlogged.jsonl``; None if nothing."""
        if not self.pending:
            return None
        import json

        out = Path(folder) / UNLOGGED_FILE
        with open(out, "a") as f:
            for record in self.pending:
                f.write(json.dumps({"run_id": self.run_id, **record}) + "\n")
        return out

    def finish(self, status: str = "FINISHED") -> None:
        self._retry(lambda: self.client.set_terminated(self.run_id, status=status), "set_terminated")


def supersede_unlogged(folder: str | os.PathLike) -> None:
    """A trial's new attempt re-does what an earlier attempt could not deliver: the writes before
    its checkpoint come back with it (``mlflow_pending``), those after it with the replayed
    epochs. So the earlier attempt's ``UNLOGGED_FILE`` waits no more: it is renamed out of
    ``--check``'s way, and kept for reading."""
    path = Path(folder) / UNLOGGED_FILE
    if path.is_file():
        os.replace(path, path.with_name("mlflow_unlogged.superseded.jsonl"))


def redact(url: str) -> str:
    """``url`` with any password masked (``postgresql://me:***@host/db``): safe for logs and tags."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    return url.replace(f":{parsed.password}@", ":***@", 1)
