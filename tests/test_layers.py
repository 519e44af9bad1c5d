"""The import contracts of pyproject.toml ([tool.importlinter], run by make lint) catch what they
name: a copy of the tree with one upward or sideways import per contract breaks each of them."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["bench", "trainables", "common", "sweeps", "mlflow_server"]

# file (in the copy) -> the import appended to it, and the contract it must break
VIOLATIONS = {
    "common/base/names.py": ("import bench.tables", "floors: bench > trainables"),
    "common/trial/families.py": ("import run_sweep", "run_sweep.py is the top"),
    "sweeps/slides.py": ("import common.base.names", "space files are declarations"),
    "mlflow_server/__init__.py": ("import common.base.tracking", "the tracking server stands alone"),
    "common/report/top_trials.py": ("import common.report.glance", "the report's sections know nothing"),
}


def test_each_contract_breaks_on_an_import_it_forbids(tmp_path):
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "results"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    shutil.copy(REPO / "run_sweep.py", tmp_path)
    for file, (line, _) in VIOLATIONS.items():
        with open(tmp_path / file, "a") as f:
            f.write(f"\n{line}  # noqa\n")
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    broken = [line for line in done.stdout.splitlines() if line.endswith(" BROKEN")]
    assert done.returncode == 1, done.stdout[-2000:]
    assert len(broken) == len(VIOLATIONS), broken
    for _, contract in VIOLATIONS.values():
        assert any(line.startswith(contract) for line in broken), (contract, broken)
