"""examples/one_trial.py, the public API's tour, runs as written (synthetic data, one epoch)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_one_trial_example_trains_evaluates_and_prints_its_numbers(workdir):
    # workdir's VAEGAN_CACHE holds the session's classifier and Inception-feature caches: the
    # synthetic test split's features are the same for every test, and most of this test's time.
    tmp_path = workdir
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "one_trial.py"), "--data", "synthetic", "--n", "32"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    m = re.fullmatch(
        r"run (\w{32}), best epoch 1: Inception FID ([\d.]+), KID (-?[\d.]+) \(32 generated .*synthetic\)", line
    )
    assert m and float(m.group(2)) > 0, line
    assert (tmp_path / "mlflow.db").is_file()
