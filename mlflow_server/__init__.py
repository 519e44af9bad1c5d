"""A real MLflow tracking server for sweeps that outgrow the embedded sqlite file.

    python -m mlflow_server                                  # sqlite ./mlflow.db, artifacts ./mlartifacts
    python -m mlflow_server --backend-store-uri postgresql://mlflow@127.0.0.1:5432/mlflow
    MLFLOW_AUTH_ADMIN_USERNAME=admin MLFLOW_AUTH_ADMIN_PASSWORD=... python -m mlflow_server --auth
    python -m mlflow_server --host 0.0.0.0 --expose --auth   # reachable from other machines

The server serves artifacts itself (``--serve-artifacts``), so Ray workers on other nodes log
figures and checkpoints over HTTP and need no shared disk. It binds to 127.0.0.1 unless
``--expose`` is given, and an exposed server needs ``--auth`` (or ``--no-auth``, to mean an open
one). MLflow's own guards stay on when exposed: Host headers are checked against
``--allowed-hosts`` (default: loopback, private networks and this machine's names: DNS
rebinding) and cross-origin writes are refused unless ``--cors-allowed-origins`` lists them. ``MlflowServer`` is the same launcher as a context manager, for tests
and scripts: it refuses a taken port, waits for ``/health`` and stops the whole process group.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ServerError(RuntimeError):
    """The server cannot start (taken port, missing credentials, bad store URI); says how to fix it."""


@dataclass(frozen=True)
class ServerConfig:
    backend_store_uri: str = ""  # "" = sqlite:///<cwd>/mlflow.db, the embedded default's file
    artifacts_dir: str = "mlartifacts"
    host: str = "127.0.0.1"
    port: int = 5000
    expose: bool = False  # required to bind anything but loopback
    auth: bool = False  # MLflow's basic-auth app; admin credentials from the environment
    no_auth: bool = False  # the explicit "yes, an open server" that --expose without --auth needs
    allowed_hosts: str = ""  # comma-separated Host patterns; "" = default_allowed_hosts()
    cors_allowed_origins: str = ""  # comma-separated origins allowed to write; "" = localhost only
    workers: int = 2

    def __post_init__(self):
        if self.host not in LOOPBACK and not self.expose:
            raise ServerError(
                f"--host {self.host} would expose the server beyond this machine; add --expose --auth to mean it"
            )
        if self.auth and self.no_auth:
            raise ServerError("--auth and --no-auth contradict each other; keep one")
        if self.expose and not (self.auth or self.no_auth):
            raise ServerError(
                "--expose without --auth lets anyone who reaches the port read, change and "
                "delete every run and model; add --auth (admin from MLFLOW_AUTH_ADMIN_USERNAME/"
                "PASSWORD), or --no-auth if an open server on a trusted network is what you mean"
            )
        if "*" in self.allowed_hosts.replace(" ", "").split(","):
            raise ServerError(
                "--allowed-hosts '*' turns off MLflow's DNS-rebinding guard; list the names "
                "clients use instead, e.g. --allowed-hosts mlflow.example.org,10.0.0.5"
            )
        if not 0 < self.port < 65536:
            raise ServerError(f"--port must be in 1..65535 (got {self.port})")
        scheme = self.store_uri.split(":", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgresql+psycopg2", "mysql", "mysql+pymysql", "mssql"):
            raise ServerError(
                f"--backend-store-uri {self.store_uri!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
            )

    @property
    def store_uri(self) -> str:
        return self.backend_store_uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


def default_allowed_hosts(host: str) -> list[str]:
    """MLflow's own default Host patterns (loopback and private networks) plus the bind address and
    this machine's names, each with and without a port: what cluster nodes put in the Host header."""
    from mlflow.server.security_utils import get_default_allowed_hosts

    names = {socket.gethostname(), socket.getfqdn()} | ({host} if host not in ("0.0.0.0", "::") else set())
    return get_default_allowed_hosts() + [p for n in sorted(names) if n for p in (n, f"{n}:*")]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1" if host == "localhost" else host, port))
        except OSError:
            return True
    return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port() -> int:
    """A port nothing listens on right now (for tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """``mlflow server`` as a child process group: ``with MlflowServer(cfg) as server: server.url``."""

    def __init__(self, cfg: ServerConfig, log_file: str | Path | None = None):
        self.cfg = cfg
        self.log_file = Path(log_file) if log_file else None
        self.proc: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        return self.cfg.url

    def command(self) -> list[str]:
        cfg = self.cfg
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            cfg.store_uri,
            "--serve-artifacts",
            "--artifacts-destination",
            str(Path(cfg.artifacts_dir).resolve()),
            "--host",
            cfg.host,
            "--port",
            str(cfg.port),
            "--workers",
            str(cfg.workers),
        ]
        if cfg.allowed_hosts or cfg.host not in LOOPBACK:  # keep the DNS-rebinding guard, widened
            cmd += ["--allowed-hosts", cfg.allowed_hosts or ",".join(default_allowed_hosts(cfg.host))]
        if cfg.cors_allowed_origins:
            cmd += ["--cors-allowed-origins", cfg.cors_allowed_origins]
        if cfg.auth:
            cmd += ["--app-name", "basic-auth"]
        return cmd

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if not self.cfg.auth:
            return env
        # Admin credentials: MLflow reads MLFLOW_AUTH_ADMIN_*; fall back to the client's own
        # MLFLOW_TRACKING_* so one pair of variables serves both sides. Never written to disk.
        for role in ("USERNAME", "PASSWORD"):
            value = env.get(f"MLFLOW_AUTH_ADMIN_{role}") or env.get(f"MLFLOW_TRACKING_{role}")
            if not value:
                raise ServerError(
                    f"--auth needs MLFLOW_AUTH_ADMIN_{role} (or MLFLOW_TRACKING_{role}) in the "
                    "environment: the admin credentials are never stored in code or files"
                )
            env[f"MLFLOW_AUTH_ADMIN_{role}"] = value
        if len(env["MLFLOW_AUTH_ADMIN_PASSWORD"]) < 12:  # MLflow's own rule; it would only exit 1
            raise ServerError(
                "--auth: the admin password (MLFLOW_AUTH_ADMIN_PASSWORD or MLFLOW_TRACKING_PASSWORD) "
                "must have at least 12 characters"
            )
        # CSRF key of the auth app: random per start unless the user pins one (needed only when
        # several servers sit behind one load balancer).
        env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
        self._tmp = tempfile.TemporaryDirectory(prefix="mlflow-auth-")
        users_db = Path(self.cfg.artifacts_dir).resolve().parent / "mlflow-auth.db"
        ini = Path(self._tmp.name) / "basic_auth.ini"
        ini.write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{users_db}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
        return env

    def start(self, timeout: float = 90.0) -> "MlflowServer":
        if port_in_use(self.cfg.host, self.cfg.port):
            raise ServerError(
                f"port {self.cfg.port} on {self.cfg.host} is already in use; pick another with "
                "--port, or stop what holds it"
            )
        Path(self.cfg.artifacts_dir).mkdir(parents=True, exist_ok=True)
        env = self._env()
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            self.command(), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )  # its own group: stop() reaches the workers
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (code := self.proc.poll()) is not None:
                self.proc = None
                where = f" (log: {self.log_file})" if self.log_file else ""
                raise ServerError(
                    f"mlflow server exited with status {code} while starting; check "
                    f"--backend-store-uri {self.cfg.store_uri!r}{where}"
                )
            if self.healthy():
                return self
            time.sleep(0.5)
        self.stop()
        raise ServerError(f"mlflow server did not answer {self.url}/health within {timeout:.0f} s")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group (uvicorn workers too), SIGKILL what is left after ``timeout``;
        returns when no process of the group remains."""
        if self.proc is not None:
            pgid = self.proc.pid
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
                if not _group_alive(pgid):
                    break
                os.killpg(pgid, sig)
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline and _group_alive(pgid):
                    self.proc.poll()  # reap the leader so it does not linger as a zombie
                    time.sleep(0.1)
            self.proc.poll()
        self.proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "MlflowServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
