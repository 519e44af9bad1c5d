"""bench/tables.py: stale test numbers marked, search-selected runs kept out of a confirmation, the
paired mode, and every generated table of the docs equal to what its command prints now."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import tables  # noqa: E402


def _record(seed: int, value: float, *, config: str = "a", chosen: int = 3, snapshot: bool = True, **extra) -> dict:
    """A run file of a 3-epoch run of config ``config`` whose test_mse_kl is ``value``, chosen at ``chosen``."""
    return {
        "run_id": f"{config}{seed}".ljust(32, "0"),
        "params": {"lr": config, "seed": seed},
        "objective": {"metric": "val_mse_kl", "mode": "min", "per_epoch": {"1": 3.0, "2": 2.0, "3": 1.0}},
        "validation": {},
        "test": {"epoch": chosen, "test_mse_kl": value, "test_probe_acc_pixels": 0.39},
        "test_weights": "snapshot" if snapshot else None,
        "final": {},
        "n": {"train": 100, "val": 10, "test": 50},
        "n_params": {},
        "data": "synthetic",
        "data_hash": "ab" * 8,
        "git_commit": "c0ffee1",
        "machine": "box",
        **extra,
    }


def _write(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for r in records:
        (folder / f"vae-{r['run_id'][:8]}.json").write_text(json.dumps(r))
    return folder


def test_a_test_number_scored_from_the_last_epochs_weights_is_marked_and_named():
    runs = [
        _record(42, 1.0, chosen=2, snapshot=False),  # before the fix, chosen before the last: stale
        _record(43, 2.0, chosen=3, snapshot=False),  # before the fix, chosen last: right
        _record(44, 3.0, chosen=2, snapshot=True),  # after the fix: right
    ]
    table = tables.markdown(runs, ["seed", "test_mse_kl", "test_probe_acc_pixels"])
    body = table.splitlines()[2:5]
    assert body == ["| 42 | 1.00† | 0.39 |", "| 43 | 2.00 | 0.39 |", "| 44 | 3.00 | 0.39 |"]
    assert "a42000000 (epoch 3, not 2)" not in table and "a4200000 (epoch 3, not 2)." in table
    assert tables.markdown(runs, ["test_mse_kl"], by_seed=True).splitlines()[2].startswith("| 2.00 ± 1.00 [")
    assert "†" in tables.markdown(runs, ["test_mse_kl"], by_seed=True).splitlines()[2]


def test_a_confirmation_over_seeds_refuses_a_run_a_search_selected(tmp_path, capsys):
    chosen = _record(42, 1.0, selected_by="the search s (parent run p), best on val_mse_kl")
    runs = [chosen, _record(43, 2.0), _record(44, 3.0)]
    with pytest.raises(tables.TableError, match="selected by the search s"):
        tables.markdown(runs, ["test_mse_kl"], by_seed=True)
    assert "42, 43, 44" in tables.markdown(runs, ["test_mse_kl"], by_seed=True, include_selected=True)
    assert tables.markdown(runs[1:], ["test_mse_kl"], by_seed=True)  # fresh seeds alone: a table
    assert tables.markdown(runs, ["seed", "test_mse_kl"])  # a row per run says nothing over seeds
    folder = _write(tmp_path / "group", runs)
    with pytest.raises(SystemExit) as exit_:
        tables.main([str(folder), "--by-seed", "--columns", "test_mse_kl"])
    assert exit_.value.code == 2 and capsys.readouterr().err.startswith("error: run a4200000 (seed 42) was selected")


def test_the_paired_mode_gives_per_seed_differences_their_interval_and_the_reports_verdict(tmp_path, capsys):
    a = _write(tmp_path / "winners", [_record(s, v, config="w") for s, v in ((45, 1.0), (46, 2.0), (47, 3.5))])
    b = _write(tmp_path / "preset", [_record(s, v, config="p") for s, v in ((45, 2.0), (46, 3.1), (47, 4.4))])
    tables.main([str(a), "--paired", str(b), "--columns", "test_mse_kl:min"])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| test_mse_kl"))
    # the differences -1.0, -1.1, -0.9: mean -1.00, t(2) half-width 4.303 * 0.1 / sqrt(3) = 0.248
    assert "| -1.00 [-1.25, -0.75] (3 seeds) | a gain |" in row
    tables.main([str(a), "--paired", str(b), "--columns", "test_mse_kl:max"])
    assert "| a loss |" in capsys.readouterr().out
    _write(tmp_path / "preset", [_record(46, 1.0, config="p")])  # 46 now 1.0: -1.0, +1.0, -0.9
    tables.main([str(a), "--paired", str(b), "--columns", "test_mse_kl:min"])
    assert "inconclusive (the interval holds 0)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        tables.main([str(a), "--paired", str(b), "--columns", "test_mse_kl"])  # which way is better?
    assert "test_mse_kl:min or test_mse_kl:max" in capsys.readouterr().err


def test_update_regenerates_a_block_and_verify_names_a_stale_one(tmp_path, capsys):
    folder = _write(tmp_path / "runs", [_record(42, 1.0)])
    doc = tmp_path / "doc.md"
    block = f"<!-- tables.py -->\n```\npython bench/tables.py {folder} --columns seed,test_mse_kl\n```\n\nhand-typed\n<!-- /tables.py -->\n"
    doc.write_text("# Results\n\n" + block)
    with pytest.raises(SystemExit):
        tables.main(["--verify", str(doc)])
    assert "stale table under: python bench/tables.py" in capsys.readouterr().err
    tables.main(["--update", str(doc)])
    assert "| 42 | 1.00 |" in doc.read_text() and "hand-typed" not in doc.read_text()
    tables.main(["--verify", str(doc)])  # fresh now: no exit


@pytest.mark.parametrize("doc", ["BENCHMARKS.md", "README.md"])
def test_every_generated_table_in_the_docs_is_what_its_command_prints_today(doc, monkeypatch):
    monkeypatch.chdir(ROOT)  # the commands name bench/results/... from the repository root
    text = (ROOT / doc).read_text()
    assert tables.BLOCK.search(text), f"{doc} has no generated table"
    _, stale = tables.refresh(text)
    assert not stale, f"{doc}: rerun `python bench/tables.py --update {doc}`; stale: {stale}"
