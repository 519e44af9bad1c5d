"""Bad input, as one type: ``UserError`` and its one-line summary of a foreign exception.

Every error the user can fix (a space file, ``--set``, data, a tracking URI, a folder, a cluster
address, a checkpoint) is a ``UserError`` subclass whose message says what is wrong and how to
fix it; ``run_sweep.py`` prints it as one line and exits with status 2. Subclassing (not a list
of class names) is what makes a new error, or a renamed one, exit 2.
"""

from __future__ import annotations

import traceback
from pathlib import Path


class UserError(ValueError):
    """Bad input the user can fix; the message says what is wrong and how (CLI: one line, exit 2).
    A ``ValueError``, so library callers that catch ``ValueError`` keep working."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of ``exc``'s message, whitespace collapsed, at most ``limit``
    characters: what a one-line error quotes from a library's multi-line traceback text. The
    exception's type name when its message is empty."""
    lines = [" ".join(ln.split()) for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:limit] if lines else type(exc).__name__


class TrialCodeError(RuntimeError):
    """A trial's own code raised (a family's, a plugin's): restarted from the same checkpoint with the
    same config and seed it would raise again, so a sweep does not restart it. The message names the
    exception, the line of the user's code that raised it and the epoch."""


# What a restart can cure: the machine's troubles (a disk, a connection, memory), not the code's.
RETRYABLE = (OSError, MemoryError)


def retryable(exc: BaseException) -> bool:
    """Whether a restart might not meet ``exc`` again: an OS or memory error, an out-of-memory on a
    device, or an error of Ray or MLflow (a lost worker, a tracking server that went away)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:  # the exception or any it was raised from
        top = type(exc).__module__.split(".")[0]
        if isinstance(exc, RETRYABLE) or top in ("ray", "mlflow") or "OutOfMemory" in type(exc).__name__:
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def raised_at(exc: BaseException) -> str:
    """'FILE:LINE' of the deepest frame of the user's code in ``exc``'s traceback: not this package's
    (``common/``, ``trainables/``), not the import machinery's; else of the last frame ('?' without one)."""
    frames = traceback.extract_tb(exc.__traceback__)
    root = Path(__file__).resolve().parents[2]
    ours = tuple(str(root / d) for d in ("common", "trainables")) + ("<frozen",)
    theirs = [f for f in frames if not f.filename.startswith(ours)]
    frame = (theirs or frames or [None])[-1]
    return f"{frame.filename}:{frame.lineno}" if frame else "?"
