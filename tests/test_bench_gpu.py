"""bench/gpu.py rehearsed on the CPU (``--device cpu --tiny``): it runs every part with Ray,
MLflow and Optuna unimportable, in this process and in the packing workers it starts, and writes
the JSON the GPU runbook reads (BENCHMARKS.md, "GPU")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKER = """
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ray", "mlflow", "optuna"):
            raise ImportError(f"{name} is not on the GPU machine: bench/gpu.py must not import it")
sys.meta_path.insert(0, _Blocked())
"""


@pytest.mark.slow  # a minute of every part at tiny sizes; make test-slow (CI runs it)
def test_the_gpu_bench_runs_every_part_on_torch_alone_and_writes_its_json(workdir):
    site = workdir / "blocker"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)  # every Python started below, the workers too
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = workdir / "gpu"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cpu", "--tiny", "--data", "synthetic"]
        + ["--out", str(out), "--budget-s", "300", "--pack-seconds", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "gpu.json").read_text())
    assert result["errors"] == {}, result["errors"]
    parts = result["parts"]
    assert set(parts) == {"slides", "throughput", "memory", "packing", "fid", "deterministic"}
    assert {f: len(r["epochs"]) for f, r in parts["slides"].items()} == {"vae": 1, "dcgan": 1}
    assert all(r["final"]["fid"] > 0 and r["final_eval_n"] == 64 for r in parts["slides"].values())
    assert {(r["family"], r["precision"]) for r in parts["throughput"]} >= {("vae", "fp32"), ("dcgan", "fp32")}
    assert all(r["task_img_s"] > 0 and r["bare_img_s"] > 0 for r in parts["throughput"])
    assert parts["memory"] == {"vae": None, "dcgan": None}  # no GPU: not measured, and said so
    assert [r["n"] for r in parts["packing"]] == [1, 2] and all(
        len(r["per_process"]) == r["n"] for r in parts["packing"]
    )
    assert parts["fid"]["n"] == 64 and set(parts["deterministic"]) == {"on", "off"}
    assert result["machine"]["device"] == "cpu" and (out / "gpu.log").read_text().count(" ok") == 6


def test_the_blocker_would_catch_an_import_of_ray(workdir):
    site = workdir / "blocker"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    proc = subprocess.run(
        [sys.executable, "-c", "import mlflow"],
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "not on the GPU machine" in proc.stderr
