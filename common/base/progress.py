"""What the console shows while a sweep runs: one status line per family instead of Ray's
tables, and a progress bar for each slow stage (decoding, Inception features, the probes).

On a terminal the status line is redrawn in place and the bars are tqdm's; otherwise (a log
file, CI) each event is one line: a trial started or ended, a new best, a stage begun and done.
``--verbose`` brings Ray's own tables and its workers' output back (common.sweep.driver).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from common.base.objective import Objective


def _tty() -> bool:
    """A terminal that can show a redrawn line: a pty that reports 0 columns (``script`` or
    ``docker exec -t`` with no size) gets the line-per-event output, since tqdm draws nothing there."""
    try:
        return sys.stdout.isatty() and os.get_terminal_size(sys.stdout.fileno()).columns > 0
    except (OSError, ValueError):  # no file descriptor (a captured stream) or not a terminal after all
        return False


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s"


class SweepProgress:
    """Tune callback hooks (common.sweep.tuning mixes in Ray's Callback, so this module needs no Ray): '<family>: D/N done, R running, P pending | best <metric> V (trial T, epoch E)
    | elapsed, ETA'. The ETA extrapolates the epochs done so far over every trial's max_epochs
    (trials ASHA stops early count as finished), so it shrinks as ASHA prunes."""

    def __init__(self, family: str, objective: Objective, total: int, max_epochs: int):
        self.family, self.objective, self.total, self.max_epochs = family, objective, total, max_epochs
        self.t0, self.best, self.epochs, self.done = time.monotonic(), None, {}, set()

    def line(self, running: int) -> str:
        pending = max(0, self.total - len(self.done) - running)
        out = f"{self.family}: {len(self.done)}/{self.total} done, {running} running, {pending} pending"
        if self.best:
            value, trial, epoch = self.best
            out += f" | best {self.objective.metric} {value:.4g} (trial {trial}, epoch {epoch})"
        elapsed = time.monotonic() - self.t0
        share = len(self.done) + sum(e / self.max_epochs for t, e in self.epochs.items() if t not in self.done)
        share /= max(self.total, 1)
        eta = f", ETA {_clock(elapsed * (1 - share) / share)}" if 0 < share < 1 else ""
        return f"{out} | {_clock(elapsed)} elapsed{eta}"

    def _show(self, trials, event: str | None = None, starting=None) -> None:
        # Tune calls on_trial_start before it marks the trial RUNNING: count that one as running.
        running = sum((t.status == "RUNNING" or t is starting) and t.trial_id not in self.done for t in trials)
        if _tty():
            print(f"\r\033[K{self.line(running)}", end="", flush=True)
        elif event:
            print(f"{event} | {self.line(running)}", flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        # A trial that reported before was paused (PBT) or restarted after a failure.
        epoch = self.epochs.get(trial.trial_id)
        how = "started" if epoch is None else f"resumed after epoch {epoch}"
        self._show(trials, f"trial {trial.trial_id} {how}", starting=trial)

    def get_state(self) -> dict:
        """What ``--resume`` carries over (Tune saves it with the experiment): the best so far, each
        trial's epochs and the running time, so the resumed line neither forgets the best nor
        counts the hours the sweep was not running."""
        elapsed = time.monotonic() - self.t0
        return {"best": self.best, "epochs": dict(self.epochs), "done": sorted(self.done), "elapsed": elapsed}

    def set_state(self, state: dict) -> None:
        self.best, self.epochs, self.done = state["best"], dict(state["epochs"]), set(state["done"])
        self.t0 = time.monotonic() - state["elapsed"]

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.epochs[trial.trial_id] = int(result.get("epoch", result.get("training_iteration", 0)))
        value, event = result.get(self.objective.metric), None
        if (
            value is not None
            and not result.get("diverged")
            and self.objective.better(value, None if self.best is None else self.best[0])
        ):
            self.best, event = (
                (value, trial.trial_id, self.epochs[trial.trial_id]),
                f"new best in trial {trial.trial_id}",
            )
        self._show(trials, event)

    def _ended(self, trials, trial, how: str) -> None:
        self.done.add(trial.trial_id)
        self._show(trials, f"trial {trial.trial_id} {how}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trials, trial, f"ended at epoch {self.epochs.get(trial.trial_id, 0)}")

    def on_trial_error(self, iteration, trials, trial, **info):
        # One line: the exception and where the user's code raised it; the error file's path is on
        # the trial's MLflow run (tag ``error``).
        self._ended(trials, trial, f"failed: {error_summary(getattr(trial, 'error_file', None))}")

    def on_experiment_end(self, trials, **info):
        if _tty():
            print(flush=True)  # keep the last status line


def error_summary(error_file: str | None) -> str:
    """A failed trial's error in one line, from Tune's error file: its last exception line, less the
    module path of the exception's type ('RuntimeError at plugin.py:20 in epoch 1: ...' for the
    loop's TrialCodeError, which already names the type and line it wraps)."""
    try:
        lines = [ln.strip() for ln in Path(error_file).read_text(errors="replace").splitlines() if ln.strip()]
    except (OSError, TypeError):
        return "see --verbose (no error file)"
    last = next(
        (ln for ln in reversed(lines) if re.match(r"^[\w.]+(Error|Exception)\b.*:", ln)), lines[-1] if lines else ""
    )
    kind, _, message = last.partition(": ")
    kind = kind.rsplit(".", 1)[-1]
    return message[:400] if kind == "TrialCodeError" else f"{kind}: {message[:300]}"


@contextmanager
def stage(what: str, capture: bool = False) -> Iterator[None]:
    """A slow step without an item count: '<what> ...' then '<what>: done in T'. ``capture``: hold
    what the step prints (MLflow's registry prints its own lines) and show it only if it fails."""
    import contextlib
    import io

    t0, held = time.monotonic(), io.StringIO()
    print(f"{what} ...", flush=True)
    try:
        with (
            contextlib.redirect_stdout(held) if capture else contextlib.nullcontext(),
            contextlib.redirect_stderr(held) if capture else contextlib.nullcontext(),
        ):
            yield
    except BaseException:
        sys.stderr.write(held.getvalue())
        raise
    print(f"{what}: done in {_clock(time.monotonic() - t0)}", flush=True)


def bar(items: Iterable, what: str, total: int, unit: str = "batch") -> Iterator:
    """``items`` with a tqdm bar on a terminal; elsewhere a start and a done line."""
    if _tty():
        from tqdm import tqdm

        yield from tqdm(items, desc=what, total=total, unit=unit, leave=False, dynamic_ncols=True)
        return
    with stage(what):
        yield from items


class _TrialFailures(logging.Filter):
    """Drops Tune's own ERROR records of a failed trial (its traceback, 'Trials did not complete'):
    the console's progress line and the final error line say it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Trial task failed for trial", "Trials did not complete"))


def quiet_trial_failures() -> None:
    """Install ``_TrialFailures`` on the two Tune loggers that write them (once)."""
    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _TrialFailures) for f in log.filters):
            log.addFilter(_TrialFailures())
