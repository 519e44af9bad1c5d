"""Run many ``run_sweep.py`` command lines, each in a forked copy of one warm interpreter.

A fresh interpreter spends ~4 s importing torch, torchvision and the space-file machinery before it
can answer bad input; 50 cases at that cost were the slowest fixture of ``make test``. This helper
imports them once, then forks a child per case: each child starts from the same untouched state a
new ``python run_sweep.py ...`` would reach after its imports (nothing has run yet: no warning was
shown, no cache filled), takes the case's cwd, environment, stdout and stderr, and runs
``run_sweep.main`` the way ``python run_sweep.py`` does.

Protocol: JSON lines on stdin, ``{"id", "argv", "cwd", "env", "out"}`` (``out``: a folder for the
child's stdout.txt / stderr.txt); after stdin closes, one ``{"id", "rc"}`` line per case on stdout,
in the order they finish. ``-j N`` runs N children at once (the cases mostly wait on timeouts).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

# What `python run_sweep.py` imports to answer: the space-file machinery (torch included), and what
# the cases that get further load (resources, storage, tracking checks). The parent's stderr goes to
# the test, which fails on any warning here: a fresh interpreter would have shown it to the user.
import mlflow  # noqa: F401
import pyarrow.fs  # noqa: F401
import ray.tune  # noqa: F401

import common.sweep.driver  # noqa: F401
import common.sweep.options  # noqa: F401
import run_sweep

TIMEOUT_S = 120


def child(job: dict) -> None:
    """In the forked child: become ``python run_sweep.py *argv`` in ``cwd`` and exit with its code."""
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
        os.dup2(os.open(os.path.join(job["out"], name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    sys.argv = ["run_sweep.py", *job["argv"]]
    try:
        code = run_sweep.main(job["argv"])
    except SystemExit as e:  # what the interpreter does with sys.exit(code)
        code = e.code if isinstance(e.code, int) or e.code is None else (print(e.code, file=sys.stderr) or 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def main() -> None:
    width = int(sys.argv[sys.argv.index("-j") + 1]) if "-j" in sys.argv else 2
    jobs = [json.loads(line) for line in sys.stdin if line.strip()]
    running: dict[int, tuple[str, float]] = {}  # pid -> (case id, start)
    while jobs or running:
        while jobs and len(running) < width:
            job = jobs.pop(0)
            pid = os.fork()
            if pid == 0:
                child(job)
            running[pid] = (job["id"], time.monotonic())
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            for p, (_, start) in running.items():
                if time.monotonic() - start > TIMEOUT_S:
                    os.kill(p, 9)
            time.sleep(0.02)
            continue
        case_id, _ = running.pop(pid)
        print(json.dumps({"id": case_id, "rc": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
