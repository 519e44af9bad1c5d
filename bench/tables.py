"""Rebuild a BENCHMARKS.md table from the run files ``bench/export_runs.py`` wrote, nothing else.

Run (from the repository root)::

    .venv/bin/python bench/tables.py bench/results/vae_layouts --sort val_mse_kl \\
        --columns kernel_size,base_channels,stage_mults,hidden_dim,n_params_vae,epoch,val_recon,val_kl,val_mse_kl,test_mse_kl
    .venv/bin/python bench/tables.py bench/results/winners --by-seed --columns family,test_mse_kl,test_kl,fid,recall
    .venv/bin/python bench/tables.py bench/results/gan_layouts bench/results/dcgan_winners/dcgan_winners_s42 \
        --columns g_channels,d_hidden,val_classifier_fd@15
    .venv/bin/python bench/tables.py bench/results/slides_seeds bench/results/vae_layouts ... --budget

A column is ``epoch`` (the epoch chosen on validation, whose weights the test numbers score; for a
trial stopped early, its best validation epoch), a
config field, a ``val_*`` metric (at that epoch; ``val_*@E`` at epoch E, to compare runs of
different lengths at the same epoch), a ``test_*`` metric, an ``n_params_*`` count, a
final-stage metric (``fid``, ``recall``, ...), ``n_<split>`` (images), ``train_time_s``,
``status``, ``device``, ``machine`` or ``run``. ``--by-seed``
folds the runs that differ only in their seed into one row: mean ± sample std [95% Student-t
interval] over the seeds. The caption under the table names the data, its hash, the image counts
and the commits, so every number says what it was measured on.

``--budget`` prints the report's "Best within the slides' budget" section instead, built by the
report's own code (``common.report.seeds.budget_blocks``) from the run files read as the report
reads MLflow's runs (``as_trial``): the same table as ``run_sweep.py --report`` over the same runs,
without their MLflow store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common.base.names import PRESET_TAG, TRIAL_STATUS  # noqa: E402
from common.report.intervals import t_interval  # noqa: E402
from common.report.render import to_markdown  # noqa: E402
from common.report.seeds import budget_blocks  # noqa: E402
from common.sweep.export import FINAL  # noqa: E402
from common.sweep.export import load_records as load  # noqa: E402

WHERE = {"seed", "data", "device", "deterministic"}  # where and with which seed a run ran, not what it computed


def cell(record: dict, column: str):
    """One run's value for ``column`` (the module docstring lists the kinds); None if it has none."""
    epoch = record["test"].get("epoch") or _best_epoch(record)
    if column == "epoch":
        return epoch
    if column == "run":
        return record["run_id"][:8]
    if column.startswith("n_params"):
        return record["n_params"].get(column)
    if column.startswith("n_") and column[2:] in record["n"]:
        return record["n"][column[2:]]
    if column.startswith("val_"):
        column, _, at = column.partition("@")
        return record["validation"].get(column, {}).get(at or str(epoch))
    if column.startswith("test_"):
        return record["test"].get(column)
    if column in FINAL or column in record["final"]:  # "precision" is also a config field (fp32, bf16)
        return record["final"].get(column)
    if column in ("train_time_s", "status", "device", "machine"):
        return record.get(column)
    return record["params"].get(column)


def fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = float(value) if "." in value or "e" in value else int(value)
        except ValueError:
            return value
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4g}"


def rows(records: list[dict], columns: list[str], sort: str | None, by_seed: bool) -> list[list[str]]:
    """The table's body: a row per run, or per group of seeds with ``by_seed``."""
    if sort:
        records = sorted(records, key=lambda r: (cell(r, sort) is None, _number(cell(r, sort))))
    if not by_seed:
        return [[fmt(cell(r, c)) for c in columns] for r in records]
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault(tuple(sorted((k, v) for k, v in r["params"].items() if k not in WHERE)), []).append(r)
    return [[_fold([cell(r, c) for r in group]) for c in columns] + [_seeds(group)] for group in groups.values()]


def caption(records: list[dict]) -> str:
    """What every number was measured on: data, hash, image counts, commits, machines."""
    seen = lambda f, sep=", ": sep.join(sorted({str(f(r)) for r in records}))
    n = lambda split: seen(lambda r: r["n"].get(split))
    return (
        f"{len(records)} runs; data {seen(lambda r: r['data'])} (hash {seen(lambda r: (r['data_hash'] or '?')[:12])}); "
        f"images: train {n('train')}, validation {n('val')}, test {n('test')}; "
        f"commit {seen(lambda r: (r['git_commit'] or '?')[:7])}; machine {seen(lambda r: r['machine'] or '?', ' / ')}"
    )


def markdown(records: list[dict], columns: list[str], sort: str | None = None, by_seed: bool = False) -> str:
    header = columns + (["seeds"] if by_seed else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(records, columns, sort, by_seed)]
    return "\n".join(lines) + "\n\n" + caption(records) + "\n"


def as_trial(record: dict) -> dict:
    """A run file as the report's trial dict (``runs.Trial.as_dict``): its params, the metric values
    its MLflow run held last (the test epoch's ``test_*``, the final stage's, the image and parameter
    counts, ``train_time_s``) and the tags the report reads (status, preset, ``eval.*``, data)."""
    final = record["final"]
    metrics = {k: v for k, v in record["test"].items() if k != "epoch"}
    metrics |= {k: v for k, v in final.items() if not k.startswith("eval.")}
    metrics |= {f"n_{split}_images": n for split, n in record["n"].items() if n is not None}
    metrics |= {**record["n_params"], "train_time_s": record["train_time_s"]}
    tags = {TRIAL_STATUS: record["status"], PRESET_TAG: record.get("preset"), "data": record["data"]}
    tags |= {k: v for k, v in final.items() if k.startswith("eval.")}
    return {
        "id": record["run_id"],
        "params": record["params"],
        "metrics": {k: v for k, v in metrics.items() if v is not None},
        "tags": {k: v for k, v in tags.items() if v is not None},
    }


def budget(records: list[dict]) -> str:
    """The report's 'Best within the slides' budget' section (Markdown) over ``records``, a run's
    validation curves standing in for its MLflow history."""
    by_id = {r["run_id"]: r for r in records}
    history = lambda trial, metric: by_id[trial["id"]]["validation"].get(metric, {}).values()
    blocks = budget_blocks([as_trial(r) for r in records], history)
    return to_markdown(blocks) + "\n" + caption(records) + "\n" if blocks else ""


def _best_epoch(record: dict) -> int | None:
    """The epoch of the best objective value (a stopped trial has no test epoch: its last best)."""
    curve = record["objective"]["per_epoch"]
    if not curve:
        return None
    pick = min if record["objective"]["mode"] == "min" else max
    return int(pick(curve, key=lambda e: curve[e]))


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _fold(values: list) -> str:
    """Seeds' values of one column: the common value, or mean ± std [95% interval] of numbers."""
    present = [v for v in values if v is not None]
    if not present or len({str(v) for v in present}) == 1:
        return fmt(present[0] if present else None)
    if not all(isinstance(v, (int, float)) for v in present):
        return ", ".join(fmt(v) for v in present)
    mean, sd, lo, hi = t_interval(present)
    return f"{fmt(mean)} ± {fmt(sd)} [{fmt(lo)}, {fmt(hi)}]"


def _seeds(group: list[dict]) -> str:
    return ", ".join(sorted(str(r["params"].get("seed")) for r in group))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", type=Path, nargs="+", help="folders of run files, e.g. bench/results/vae_layouts")
    p.add_argument("--columns", help="comma-separated, e.g. hidden_dim,epoch,val_kl,test_mse_kl")
    p.add_argument("--sort", help="a column to sort the runs by, ascending")
    p.add_argument("--by-seed", action="store_true", help="one row per group of runs differing only in seed")
    p.add_argument("--budget", action="store_true", help="the report's 'Best within the slides' budget' instead")
    args = p.parse_args(argv)
    if bool(args.columns) == args.budget or args.budget and (args.sort or args.by_seed):
        p.error("give either --columns (with --sort, --by-seed) or --budget alone")
    records = [r for folder in args.folders for r in load(folder)]
    if not records:
        raise SystemExit(
            f"error: no run files in {' '.join(map(str, args.folders))}; write them with bench/export_runs.py"
        )
    if args.budget:
        print(budget(records) or "no seed group of a budget family in these runs: no table", end="")
        return
    print(markdown(records, args.columns.split(","), args.sort, args.by_seed), end="")


if __name__ == "__main__":
    main()
