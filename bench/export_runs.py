"""Export every finished trial run of an MLflow experiment as one JSON file, to commit.

Run (from the repository root), after each finished trial or run of a long experiment (or let
the sweep do it: ``run_sweep.py --export bench/results``)::

    .venv/bin/python bench/export_runs.py --tracking-uri sqlite:///$HOME/experiments/NAME/mlflow.db \\
        --experiment NAME

The files and their keys: ``common/sweep/export.py``. ``bench/tables.py`` rebuilds
BENCHMARKS.md's tables from these files alone, so a finished run outlives the machine and its
MLflow store. Every field comes from the store (the run's own tags), none from this command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common.sweep.export import export  # noqa: E402, F401  (tests call export_runs.export)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--experiment", required=True)
    p.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "results",
        help="a folder: the files go to OUT/EXPERIMENT/ (default bench/results)",
    )
    args = p.parse_args(argv)
    try:
        written = export(args.tracking_uri, args.experiment, args.out)
    except LookupError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{len(written)} finished run(s) of {args.experiment} written under {args.out / args.experiment}")


if __name__ == "__main__":
    main()
