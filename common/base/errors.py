"""Bad input, as one type: ``UserError`` and its one-line summary of a foreign exception.

Every error the user can fix (a space file, ``--set``, data, a tracking URI, a folder, a cluster
address, a checkpoint) is a ``UserError`` subclass whose message says what is wrong and how to
fix it; ``run_sweep.py`` prints it as one line and exits with status 2. Subclassing (not a list
of class names) is what makes a new error, or a renamed one, exit 2.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input the user can fix; the message says what is wrong and how (CLI: one line, exit 2).
    A ``ValueError``, so library callers that catch ``ValueError`` keep working."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of ``exc``'s message, whitespace collapsed, at most ``limit``
    characters: what a one-line error quotes from a library's multi-line traceback text. The
    exception's type name when its message is empty."""
    lines = [" ".join(ln.split()) for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:limit] if lines else type(exc).__name__
