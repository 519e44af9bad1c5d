"""How long a sweep whose every trial raises takes to say so, today and at an older revision.

Run (from the repository root, with nothing else running)::

    .venv/bin/python bench/fail_fast.py --before d85de11^ --repeats 3 --data ../shared/data/cifar10-jpeg.tar.gz
    .venv/bin/python bench/fail_fast.py --repeats 1      # synthetic data, quick

Each repeat runs ``run_sweep.py`` as a user would: a 2-trial sweep (2 cores, 1 CPU per trial) of a
plugin family, passed with ``--plugin``, whose ``train_epoch`` always raises, on ``--data``
(default synthetic; a real source is what a user meets: each attempt loads it and the domain
classifier, from the cache once the first sweep wrote it) with ``--no-report``. ``--before REV`` runs the same command from a git worktree of REV (built
against this checkout's venv) in the same repeat, so both sides share the machine's state.

Per side: the wall time to the exit, the exit status, how many attempts the trials made (the
``Failure #`` entries of Tune's error files), the console's ``error:`` lines and whether a Tune
ERROR line or a ``/tmp/ray`` path reached it. Reported as medians (min-max) and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PLUGIN = """
from typing import ClassVar

from common.trial.config import DCGANConfig
from common.trial.families import Family, register
from common.trial.tasks.dcgan import DCGANTask


class RaiserConfig(DCGANConfig):
    family: ClassVar[str] = "raiser"


class RaiserTask(DCGANTask):
    def train_epoch(self, epoch):
        raise RuntimeError("this family always raises")


register(Family("raiser", RaiserConfig, RaiserTask, "Raiser", decodes=False, curve_metrics=("g_loss",)))
"""
TINY = '"g_channels": 16, "d_channels": 16, "eval_samples": 64, "val_size": 128, "max_epochs": 2'
SPACE = f"runs = [{{'family': 'raiser', 'seed': 1, {TINY}}}, {{'family': 'raiser', 'seed': 2, {TINY}}}]\n"
SPACE += "resources = {'cpu': 1, 'gpu': 0}\n"


def run_once(checkout: Path, work: Path, data: str = "synthetic") -> dict:
    """One failing sweep from ``checkout`` in the fresh folder ``work``: its measurements."""
    work.mkdir(parents=True)
    (work / "raiser.py").write_text(PLUGIN)
    (work / "space.py").write_text(SPACE)
    cmd = [sys.executable, str(checkout / "run_sweep.py"), "--space", "space.py", "--plugin", "raiser.py"]
    cmd += ["--data", data, "--eval-n", "0", "--no-report", "--experiment", "fail_fast"]
    cmd += ["--tracking-uri", f"sqlite:///{work / 'mlflow.db'}", "--storage", str(work / "ray_results")]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    console = done.stdout + done.stderr
    attempts = sum(f.read_text().count("Failure # ") for f in (work / "ray_results").rglob("error.txt"))
    return {
        "wall_s": wall,
        "rc": done.returncode,
        "attempts": attempts,
        "error_lines": sum(line.startswith("error:") for line in console.splitlines()),
        "tune_noise": "Trials did not complete" in console or "/tmp/ray" in console,
    }


def _data(source: str) -> str:
    """A path source made absolute: each sweep runs in its own folder."""
    return str(Path(source).resolve()) if Path(source).exists() else source


def _worktree(rev: str, into: Path) -> Path:
    """A checkout of ``rev`` that uses this checkout's venv (the interpreter running this)."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(into), rev], check=True)
    return into


def _summary(name: str, runs: list[dict]) -> str:
    walls = [r["wall_s"] for r in runs]
    last = runs[-1]
    return (
        f"| {name} | {statistics.median(walls):.1f} ({min(walls):.1f}-{max(walls):.1f}) | "
        f"{sorted({r['rc'] for r in runs})} | {last['attempts']} | {last['error_lines']} | "
        f"{'yes' if any(r['tune_noise'] for r in runs) else 'no'} |"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", metavar="REV", help="also run the same sweep from git revision REV")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data", default="synthetic", help="a data source as run_sweep.py takes it")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fail_fast-") as tmp:
        sides = {"today": REPO}
        if args.before:
            sides[f"before ({args.before})"] = _worktree(args.before, Path(tmp) / "before")
        try:
            runs: dict[str, list[dict]] = {name: [] for name in sides}
            for i in range(args.repeats):
                for name, checkout in sides.items():
                    runs[name].append(r := run_once(checkout, Path(tmp) / f"{i}-{name[:6]}", _data(args.data)))
                    print(f"repeat {i + 1} {name}: {r}", flush=True)
        finally:
            if args.before:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(sides.popitem()[1])])
    print(
        "\n| side | wall s, median (min-max) | exit | attempts | error: lines | Tune ERROR or /tmp/ray on the console |"
    )
    print("|---|---|---|---|---|---|")
    for name, rs in runs.items():
        print(_summary(name, rs))
    if args.before:
        today, before = (statistics.median(r["wall_s"] for r in rs) for rs in runs.values())
        print(f"\nratio before / today: {before / today:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
