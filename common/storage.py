"""Where a sweep writes: checked before anything starts, so a full disk or a bad folder is one
clear line (exit 2) instead of a trial failing hours later."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MIN_FREE_MB = int(os.environ.get("VAEGAN_MIN_FREE_MB", "100"))  # checkpoints, figures, the MLflow store


class StorageError(ValueError):
    """A folder the sweep must write to is unusable (CLI: one line, exit 2)."""


def check_writable(path: str | os.PathLike, what: str, fix: str, min_free_mb: int = MIN_FREE_MB) -> None:
    """Fail unless files can be created at ``path`` (existing or not: its nearest existing
    ancestor is probed) with at least ``min_free_mb`` MiB free. ``what`` names the folder,
    ``fix`` the flag that moves it. Writes nothing that stays: a probe file is removed."""
    target = Path(path).expanduser().absolute()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise StorageError(f"{what} {target}: {existing} is a file, not a folder; {fix}")
    try:  # a real write: root ignores permission bits, read-only mounts and full disks do not
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".vaegan-probe-")
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise StorageError(f"cannot write {what} {target} ({e.strerror or type(e).__name__} in {existing}); "
                           f"{fix}") from None
    free_mb = shutil.disk_usage(existing).free / 2**20
    if free_mb < min_free_mb:
        raise StorageError(f"only {free_mb:.0f} MiB free for {what} {target}; a sweep needs >= {min_free_mb} MiB "
                           f"(set VAEGAN_MIN_FREE_MB to change): free some space or {fix}")
