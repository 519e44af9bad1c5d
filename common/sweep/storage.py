"""Where a sweep writes: checked before anything starts, so a full disk or a bad folder is one
clear line (exit 2) instead of a trial failing hours later."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from common.base.errors import UserError, first_line

MIN_FREE_MB = int(os.environ.get("VAEGAN_MIN_FREE_MB", "100"))  # checkpoints, figures, the MLflow store


class StorageError(UserError):
    """A folder the sweep must write to is unusable (CLI: one line, exit 2)."""


NO_SPACE = ("No space left on device", "[Errno 28]", "database or disk is full")  # OSError, pyarrow, sqlite


class NoSpaceLeft(Exception):
    """The disk filled mid-sweep: raised out of Tune's loop by the driver's callback when a trial
    error says so (every retry and every other trial would fail the same way). Tune stops its
    trials and keeps the state it last saved, from which ``--resume`` continues."""


def no_space_line(text: str) -> str | None:
    """The last line of ``text`` (a trial's error file, an exception) that says the disk is full."""
    lines = [ln.strip() for ln in text.splitlines() if any(k in ln for k in NO_SPACE)]
    return lines[-1][:200] if lines else None


def check_error_file(error_file: str | None) -> None:
    """Driver side, on each trial error: NoSpaceLeft if the trial failed for want of space."""
    if error_file and os.path.isfile(error_file):
        if line := no_space_line(Path(error_file).read_text(errors="replace")):
            raise NoSpaceLeft(line)


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
        raise StorageError(
            f"cannot write {what} {target} ({e.strerror or type(e).__name__} in {existing}); {fix}"
        ) from None
    free_mb = shutil.disk_usage(existing).free / 2**20
    if free_mb < min_free_mb:
        raise StorageError(
            f"only {free_mb:.0f} MiB free for {what} {target}; a sweep needs >= {min_free_mb} MiB "
            f"(set VAEGAN_MIN_FREE_MB to change): free some space or {fix}"
        )


class SweepStorage:
    """Where Tune keeps a sweep's state and checkpoints: a local folder, or a URI that every
    node can reach (``s3://bucket/prefix``, ``gs://...``: anything ``pyarrow.fs`` opens; an
    S3-compatible server such as MinIO through ``$AWS_ENDPOINT_URL``). One API for both, so a
    trial restarted on another node finds its checkpoints and ``--resume`` finds the sweep.

    Paths given to the methods are relative to the root (``"<sweep>/<family>"``).
    """

    def __init__(self, spec: str):
        import pyarrow.fs as pafs

        self.remote = "://" in spec and not spec.startswith("file://")
        if self.remote:
            try:
                self.fs, self.root = pafs.FileSystem.from_uri(spec)
            except Exception as e:  # unknown scheme, missing credentials config
                raise StorageError(
                    f"--storage {spec!r} cannot be opened ({first_line(e)}); use a local folder or "
                    "a URI like s3://bucket/prefix (S3-compatible servers: set AWS_ENDPOINT_URL)"
                ) from None
        else:
            self.fs, self.root = pafs.LocalFileSystem(), str(Path(spec.removeprefix("file://")).expanduser().resolve())
        self.spec = spec
        self._pafs = pafs

    @property
    def tune_filesystem(self):
        """``storage_filesystem`` for Tune: None for a local folder (Tune's own default)."""
        return self.fs if self.remote else None

    def path(self, rel: str = "") -> str:
        return f"{self.root.rstrip('/')}/{rel}" if rel else self.root

    def show(self, rel: str = "") -> str:
        """``rel`` as the user would write it (a URI for remote storage)."""
        return f"{self.spec.rstrip('/')}/{rel}" if rel else self.spec

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type != self._pafs.FileType.NotFound

    def makedirs(self, rel: str) -> None:
        self.fs.create_dir(self.path(rel), recursive=True)

    def write_text(self, rel: str, text: str) -> None:
        with self.fs.open_output_stream(self.path(rel)) as f:
            f.write(text.encode())

    def read_text(self, rel: str) -> str:
        with self.fs.open_input_stream(self.path(rel)) as f:
            return f.read().decode()

    def latest(self, prefix: str, marker: str) -> str | None:
        """The newest folder directly under the root named ``prefix_*`` that holds ``marker``."""
        found = self.fs.get_file_info(self._pafs.FileSelector(self.root, allow_not_found=True))
        names = sorted(
            i.base_name
            for i in found
            if i.type == self._pafs.FileType.Directory
            and i.base_name.startswith(f"{prefix}_")
            and self.exists(f"{i.base_name}/{marker}")
        )
        return names[-1] if names else None  # names end in a %Y%m%d-%H%M%S stamp: sorted = by time

    def check(self) -> None:
        """A local folder: ``check_writable``. Remote: write and delete a probe object, so bad
        credentials, a missing bucket or an unreachable endpoint fail before anything starts."""
        if not self.remote:
            return check_writable(self.root, "the Tune results folder", "pass --storage PATH on a disk with room")
        probe = ".vaegan-probe"
        try:
            self.fs.create_dir(self.root, recursive=True)
            self.write_text(probe, "probe")
            self.fs.delete_file(self.path(probe))
        except Exception as e:
            raise StorageError(
                f"cannot write to --storage {self.spec} ({first_line(e)}); check the bucket, the "
                "credentials (AWS_ACCESS_KEY_ID, ...) and AWS_ENDPOINT_URL"
            ) from None
