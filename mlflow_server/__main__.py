"""``python -m mlflow_server``: start the tracking server, print the UI URL, stop on Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys

from mlflow_server import MlflowServer, ServerConfig, ServerError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mlflow_server", description=__doc__)
    p.add_argument(
        "--backend-store-uri", default="", help="sqlite:///PATH (default ./mlflow.db) or postgresql://USER@HOST:PORT/DB"
    )
    p.add_argument("--artifacts-dir", default="mlartifacts", help="where the server stores artifacts")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--expose", action="store_true", help="allow a non-loopback --host (needs --auth or --no-auth)")
    p.add_argument("--auth", action="store_true", help="basic auth; admin from MLFLOW_AUTH_ADMIN_USERNAME/PASSWORD")
    p.add_argument("--no-auth", action="store_true", help="with --expose: an open server, on purpose")
    p.add_argument(
        "--allowed-hosts",
        default="",
        help="Host headers to accept, comma-separated (default: loopback, private IPs, this host)",
    )
    p.add_argument(
        "--cors-allowed-origins",
        default="",
        help="browser origins allowed to write, comma-separated (default: localhost only)",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--log-file", help="server output (default: discarded)")
    args = p.parse_args(argv)
    try:
        cfg = ServerConfig(
            backend_store_uri=args.backend_store_uri,
            artifacts_dir=args.artifacts_dir,
            host=args.host,
            port=args.port,
            expose=args.expose,
            auth=args.auth,
            no_auth=args.no_auth,
            allowed_hosts=args.allowed_hosts,
            cors_allowed_origins=args.cors_allowed_origins,
            workers=args.workers,
        )
        server = MlflowServer(cfg, args.log_file).start()
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"MLflow UI: {server.url}   (runs: --tracking-uri {server.url}; Ctrl-C stops)", flush=True)
    try:
        server.proc.wait()  # returns early only if the server dies on its own
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("MLflow server stopped", flush=True)
    return 0


def _interrupt(signum, frame):  # SIGTERM stops the server like Ctrl-C does
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
