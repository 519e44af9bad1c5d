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
``status``, ``device``, ``machine``, ``cpu_flags``, ``threads``, ``precision_used``, ``selected_by``,
``run``, or ``A-B``: column A minus column B of the same run (``test_probe_acc-test_probe_acc_pixels``:
the probe over its raw-pixel baseline). ``--by-seed``
folds the runs that differ only in their seed into one row: mean ± sample std [95% Student-t
interval] over the seeds. The caption under the table names the data, its hash, the image counts
and the commits, so every number says what it was measured on.

The weights scored are the weights selected. A ``test_*`` number of a run logged before the trial
loop kept one snapshot of its selected epoch (no ``test_weights`` in its file) whose selected epoch
was not its last scored the last epoch's weights: it is printed with a ``†``, the caption says so.

``--by-seed`` refuses a group of seeds that holds a run a search selected (its ``selected_by``):
a search's best is an optimistic draw, not a confirmation (``--include-selected`` prints such a
group, its seeds marked). ``--paired B ...`` compares the runs of the folders given first (A, one
config over seeds) with those of B, seed by seed: each column ``metric:min`` or ``metric:max``
(which way is better) gets A, B and A − B over the seeds both ran, with its 95% t-interval and the
report's verdict words ('a gain' or 'a loss' only when the interval excludes 0).

``--update FILE`` and ``--verify FILE`` keep the tables of a Markdown file generated: each block

    <!-- tables.py -->
    ```
    python bench/tables.py FOLDERS ... OPTIONS
    ```
    (this command's output)
    <!-- /tables.py -->

is rewritten with its command's output (``--update``) or compared with it (``--verify``: exit 1
naming each stale block); tests/test_tables.py verifies BENCHMARKS.md and README.md.

``--budget`` prints the report's "Best within the slides' budget" section instead, built by the
report's own code (``common.report.seeds.budget_blocks``) from the run files read as the report
reads MLflow's runs (``as_trial``): the same table as ``run_sweep.py --report`` over the same runs,
without their MLflow store.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common.base.names import PRESET_TAG, TRIAL_STATUS  # noqa: E402
from common.base.objective import MODES, Objective  # noqa: E402
from common.report.intervals import fmt_interval, paired, t_interval  # noqa: E402
from common.report.render import to_markdown  # noqa: E402
from common.report.seeds import budget_blocks  # noqa: E402
from common.sweep.best import BASELINE_METRICS  # noqa: E402
from common.sweep.export import FINAL  # noqa: E402
from common.sweep.export import load_records as load  # noqa: E402

WHERE = {"seed", "data", "device", "deterministic"}  # where and with which seed a run ran, not what it computed
# where and how a run ran, and which search chose it: fields of the run file itself
RECORD = (
    "preset",
    "train_time_s",
    "status",
    "device",
    "machine",
    "cpu_flags",
    "threads",
    "precision_used",
    "selected_by",
)
STALE = "†"  # a test number that scored the last epoch's weights, not the selected epoch's


class TableError(ValueError):
    """Run files that cannot make the table asked for (printed as one ``error:`` line, exit 2)."""


def cell(record: dict, column: str):
    """One run's value for ``column`` (the module docstring lists the kinds); None if it has none."""
    if "-" in column:  # A-B: a difference of two columns of the same run (a probe minus its baseline)
        a, b = (cell(record, c) for c in column.split("-", 1))
        return None if a is None or b is None else float(a) - float(b)
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
    if column in RECORD:
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


def stale(record: dict, column: str) -> bool:
    """Whether ``column`` of ``record`` is an in-process test number that scored the last epoch's
    weights (logged before the loop kept a snapshot, its selected epoch not the last)."""
    if not column.startswith("test_") or column in BASELINE_METRICS or record.get("test_weights"):
        return False
    curve = record["objective"]["per_epoch"]
    chosen = record["test"].get("epoch")
    return chosen is not None and bool(curve) and chosen != max(int(e) for e in curve)


def groups(records: list[dict], include_selected: bool = False) -> list[list[dict]]:
    """The runs that differ only in their seed, in order of first appearance. A group of several
    seeds that holds a search-selected run is refused unless ``include_selected``."""
    out: dict[tuple, list[dict]] = {}
    for r in records:
        out.setdefault(tuple(sorted((k, v) for k, v in r["params"].items() if k not in WHERE)), []).append(r)
    for group in out.values():
        chosen = [r for r in group if r.get("selected_by")]
        if len(group) > 1 and chosen and not include_selected:
            r = chosen[0]
            raise TableError(
                f"run {r['run_id'][:8]} (seed {r['params'].get('seed')}) was selected by {r['selected_by']}: "
                "a confirmation over seeds must not hold it; leave its folder out, or pass --include-selected"
            )
    return list(out.values())


def rows(
    records: list[dict], columns: list[str], sort: str | None, by_seed: bool, include_selected: bool = False
) -> list[list[str]]:
    """The table's body: a row per run, or per group of seeds with ``by_seed``."""
    if sort:
        records = sorted(records, key=lambda r: (cell(r, sort) is None, _number(cell(r, sort))))
    mark = lambda rs, c: STALE if any(stale(r, c) for r in rs) else ""
    if not by_seed:
        return [[fmt(cell(r, c)) + mark([r], c) for c in columns] for r in records]
    return [
        [_fold([cell(r, c) for r in group]) + mark(group, c) for c in columns] + [_seeds(group)]
        for group in groups(records, include_selected)
    ]


def caption(records: list[dict]) -> str:
    """What every number was measured on: data, hash, image counts, commits, machines."""
    seen = lambda f, sep=", ": sep.join(sorted({str(f(r)) for r in records}))
    n = lambda split: seen(lambda r: r["n"].get(split))
    return (
        f"{len(records)} runs; data {seen(lambda r: r['data'])} (hash {seen(lambda r: (r['data_hash'] or '?')[:12])}); "
        f"images: train {n('train')}, validation {n('val')}, test {n('test')}; "
        f"commit {seen(lambda r: (r['git_commit'] or '?')[:7])}; machine {seen(lambda r: r['machine'] or '?', ' / ')}; "
        f"precision {seen(lambda r: r.get('precision_used') or '?')}; threads {seen(lambda r: r.get('threads') or '?')}"
        + _evaluated(records)
    )


def _evaluated(records: list[dict]) -> str:
    """How the final-stage numbers were made, where some run has them: N, reference and extractor."""
    said = {
        f"{f['eval.n']} generated vs {f.get('eval.reference_n', '?')} {f.get('eval.reference', '?')} images, "
        f"{f.get('eval.extractor', '?')}"
        for r in records
        if "eval.n" in (f := r["final"])
    }
    return f"; final stage: {' / '.join(sorted(said))}" if said else ""


def stale_note(records: list[dict], columns: list[str]) -> str:
    """The caption's line on ``†`` cells, naming their runs and the epoch their weights were from."""
    hit = [r for r in records if any(stale(r, c) for c in columns)]
    if not hit:
        return ""
    last = lambda r: max(int(e) for e in r["objective"]["per_epoch"])
    which = ", ".join(f"{r['run_id'][:8]} (epoch {last(r)}, not {r['test']['epoch']})" for r in hit)
    return (
        f"\n{STALE} scored the last epoch's weights, not the selected epoch's (logged before the trial kept a "
        f"snapshot of its selected weights): {which}.\n"
    )


def markdown(
    records: list[dict],
    columns: list[str],
    sort: str | None = None,
    by_seed: bool = False,
    include_selected: bool = False,
) -> str:
    header = columns + (["seeds"] if by_seed else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(records, columns, sort, by_seed, include_selected)]
    return "\n".join(lines) + "\n\n" + caption(records) + "\n" + stale_note(records, columns)


def paired_table(a: list[dict], b: list[dict], columns: list[str], names: tuple[str, str]) -> str:
    """A against B seed by seed, one row per ``metric:min|max`` column (the module docstring)."""
    for side, runs in zip(names, (a, b)):
        if len(groups(runs)) != 1:
            raise TableError(f"--paired: {side} holds {len(groups(runs))} configs; give each side one config's seeds")
    header = ["metric", f"A: {names[0]}", f"B: {names[1]}", "A − B, per seed [95% CI]", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for column in columns:
        metric, _, mode = column.partition(":")
        if mode not in MODES:
            raise TableError(f"--paired column {column!r}: write {metric}:min or {metric}:max (which way is better)")
        seed = lambda r: r["params"].get("seed")
        theirs = {seed(r): cell(r, metric) for r in b}
        diffs = [
            v - theirs[seed(r)] for r in a if (v := cell(r, metric)) is not None and theirs.get(seed(r)) is not None
        ]
        side = lambda runs: (
            _fold([cell(r, metric) for r in runs]) + (STALE if any(stale(r, metric) for r in runs) else "")
        )
        if len(diffs) < 2:
            diff, said = f"{len(diffs)} seed(s) in common: no interval", "—"
        else:
            mean, lo, hi, said = paired(diffs, Objective(metric, mode))
            places = 2 if abs(mean) >= 1 else 4  # the mean's precision for its bounds too
            signed = lambda v: f"{v:+.{places}f}"
            diff = f"{signed(mean)} {fmt_interval(lo, hi, signed).removeprefix('95% CI ')} ({len(diffs)} seeds)"
        lines.append("| " + " | ".join([metric, side(a), side(b), diff, said]) + " |")
    notes = stale_note(a + b, [c.partition(":")[0] for c in columns])
    return "\n".join(lines) + f"\n\nA: {caption(a)}\nB: {caption(b)}\n" + notes


def as_trial(record: dict) -> dict:
    """A run file as the report's trial dict (``runs.Trial.as_dict``): its params, the metric values
    its MLflow run held last (the test epoch's ``test_*``, the final stage's, the image and parameter
    counts, ``train_time_s``) and the tags the report reads (status, preset, ``eval.*``, data)."""
    final = record["final"]
    metrics = {k: v for k, v in record["test"].items() if k != "epoch" and not stale(record, k)}  # † left out
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
    objective = Objective(record["objective"]["metric"], record["objective"]["mode"])
    return int(objective.pick(list(curve), key=lambda e: curve[e]))


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


BLOCK = re.compile(r"(<!-- tables.py -->\n```\n(.*?)\n```\n)(.*?)(<!-- /tables.py -->)", re.S)


def output(command: str) -> str:
    """What ``command`` (a ``python bench/tables.py ...`` line, ``\\``-continued lines joined) prints."""
    argv = shlex.split(command.replace("\\\n", " "))
    start = next((i + 1 for i, a in enumerate(argv) if a.endswith("tables.py")), None)
    if start is None:
        raise TableError(f"a tables.py block's command does not run bench/tables.py: {command!r}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(argv[start:])
    return out.getvalue()


def refresh(text: str) -> tuple[str, list[str]]:
    """``text`` with every tables.py block's output regenerated, and the commands whose output changed."""
    changed: list[str] = []

    def one(m: re.Match) -> str:
        fresh = "\n" + output(m.group(2)) + "\n"
        if fresh != m.group(3):
            changed.append(m.group(2))
        return m.group(1) + fresh + m.group(4)

    return BLOCK.sub(one, text), changed


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", type=Path, nargs="*", help="folders of run files, e.g. bench/results/vae_layouts")
    p.add_argument("--columns", help="comma-separated, e.g. hidden_dim,epoch,val_kl,test_mse_kl")
    p.add_argument("--sort", help="a column to sort the runs by, ascending")
    p.add_argument("--by-seed", action="store_true", help="one row per group of runs differing only in seed")
    p.add_argument("--include-selected", action="store_true", help="--by-seed: allow a search-selected run in a group")
    p.add_argument("--paired", type=Path, nargs="+", metavar="B", help="folders of B: A − B seed by seed")
    p.add_argument("--budget", action="store_true", help="the report's 'Best within the slides' budget' instead")
    p.add_argument("--update", type=Path, metavar="FILE", help="regenerate FILE's tables.py blocks")
    p.add_argument("--verify", type=Path, metavar="FILE", help="exit 1 if a tables.py block of FILE is stale")
    args = p.parse_args(argv)
    try:
        if args.update or args.verify:
            return _doc(args.update or args.verify, write=bool(args.update))
        if bool(args.columns) == args.budget or args.budget and (args.sort or args.by_seed or args.paired):
            p.error("give either --columns (with --sort, --by-seed or --paired) or --budget alone")
        records = _load(args.folders)
        if args.budget:
            print(budget(records) or "no seed group of a budget family in these runs: no table", end="")
        elif args.paired:
            names = (" ".join(f.name for f in args.folders), " ".join(f.name for f in args.paired))
            print(paired_table(records, _load(args.paired), args.columns.split(","), names), end="")
        else:
            print(markdown(records, args.columns.split(","), args.sort, args.by_seed, args.include_selected), end="")
    except TableError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _load(folders: list[Path]) -> list[dict]:
    records = [r for folder in folders for r in load(folder)]
    if not records:
        raise TableError(
            f"no run files in {' '.join(map(str, folders)) or '(no folder)'}; write them with bench/export_runs.py"
        )
    return records


def _doc(path: Path, write: bool) -> None:
    text, changed = refresh(path.read_text())
    if write:
        path.write_text(text)
        print(f"{path}: {len(changed)} table(s) regenerated")
    elif changed:
        print("\n".join(f"{path}: stale table under: {c}" for c in changed), file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
