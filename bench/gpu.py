"""Every GPU measurement the project promises, with torch alone: one command, one JSON, time-boxed.

Run on the lent GPU machine (BENCHMARKS.md, "GPU": what to carry, the one command)::

    python bench/gpu.py --out $OUT --data cifar10-jpeg.tar.gz --fid-weights inception_fp16.pt

and rehearsed in ``make test`` on the CPU (``--device cpu --tiny``) with Ray, MLflow and Optuna
made unimportable (tests/test_bench_gpu.py). It imports none of them: it drives each family
through the same ``Task`` a trial runs (``train_epoch``, ``evaluate``) and the final stage's
Inception evaluation (``common.metrics.evaluation``), and measures, each part in its own time box:

1. ``slides``: the slides' two runs (sweeps/slides.py's configs) end to end: data, training with
   the per-epoch validation, the final evaluation at N = 10,000, each stage's wall time;
2. ``throughput``: each family's training images/s through ``Task.train_epoch`` against a bare
   PyTorch loop of the same nets on the same images, in bf16 and fp32;
3. ``memory``: each family's peak GPU memory over an epoch and its evaluation (what sizes
   ``TrialConfig.gpu_memory_mb``);
4. ``packing``: 1, 2, 4, 8, 16 trial processes training the DCGAN at once on one GPU (what Ray's
   fractional GPUs do): aggregate images/s;
5. ``fid``: the 10,000-sample FID, generation and the reference features included;
6. ``deterministic``: a DCGAN epoch with deterministic kernels on and off.

A part that runs out of its time stops where it is and says so; the JSON holds what was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch  # noqa: E402

from common.base.data import load_dataset  # noqa: E402
from common.base.device import configure_threads, seed_everything  # noqa: E402
from common.trial.families import (
    FAMILIES,  # noqa: E402
    config_class,  # noqa: E402
)

PARTS = ("slides", "throughput", "memory", "packing", "fid", "deterministic")
SHARE = {"slides": 0.40, "throughput": 0.15, "memory": 0.05, "packing": 0.20, "fid": 0.15, "deterministic": 0.05}


class Budget:
    """A part's time box: ``left()`` seconds remain; ``over()`` once they are spent."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def over(self) -> bool:
        return self.left() <= 0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def slides_configs(args) -> list:
    """sweeps/slides.py's two configs, on this run's data and device (tiny nets with --tiny)."""
    from sweeps.slides import runs

    out = []
    for run in runs:
        values = {**run, "data": args.data, "device": args.device, "param_budget": "" if args.tiny else "slides"}
        if args.tiny:
            values |= {
                **FAMILIES[run["family"]].tiny,
                "max_epochs": 1,
                "val_size": 64,
                "eval_samples": 64,
                "batch_size": 64,
            }
        out.append(config_class(run["family"]).from_dict(values))
    return out


def build(cfg, data, device, deterministic: bool = False):
    """The family's task, as a trial builds it (same seed, same classifier cache)."""
    generator = seed_everything(cfg.seed, deterministic)
    return FAMILIES[cfg.family].task(cfg, data, device, generator)


def part_slides(args, data, device, budget: Budget) -> dict:
    """The slides' runs end to end: training with per-epoch validation, then the final evaluation."""
    from common.metrics.evaluation import evaluate

    out = {}
    for cfg in slides_configs(args):
        t0 = time.perf_counter()
        task = build(cfg, data, device)
        row = {"setup_s": time.perf_counter() - t0, "epochs": [], "stopped": None}
        for epoch in range(cfg.max_epochs):
            if budget.over():
                row["stopped"] = f"time box spent after {epoch} epochs"
                break
            t0 = time.perf_counter()
            task.train_epoch(epoch)
            sync(device)
            t1 = time.perf_counter()
            task.evaluate("val")
            row["epochs"].append({"train_s": t1 - t0, "val_s": time.perf_counter() - t1})
        t0 = time.perf_counter()
        sampler = FAMILIES[cfg.family].task.build_sampler(cfg, task.export_state()).to(device).eval()
        scores = evaluate(sampler, ("fid", "kid"), n=args.eval_n, data=data, device=device, weights=args.fid_weights)
        row |= {"final_eval_s": time.perf_counter() - t0, "final_eval_n": args.eval_n, "final": scores}
        row["train_s"] = sum(e["train_s"] for e in row["epochs"])
        out[cfg.family] = row
    return out


def bare_steps(cfg, task, device, steps: int) -> float:
    """Images/s of a bare PyTorch loop: the task's nets, a fresh Adam, the same batches, no metrics."""
    nets = list(task.models.values())
    opt = torch.optim.Adam([p for n in nets for p in n.parameters()], lr=1e-4)
    batches = task.train.batches(cfg.batch_size, torch.Generator().manual_seed(0))
    sync(device)
    t0, seen = time.perf_counter(), 0
    for _, x in zip(range(steps), batches):
        with task.autocast():
            if cfg.family == "vae":
                x_hat, mu, logvar = task.model(x)
                loss = (x_hat.float() - x).pow(2).sum() + (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum()
            else:
                fake = task.g(torch.randn(len(x), cfg.latent_dim, device=device))
                loss = task.d(x).float().mean() - task.d(fake).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(x)
    sync(device)
    return seen / (time.perf_counter() - t0)


def part_throughput(args, data, device, budget: Budget) -> list:
    """Each family and precision: Task.train_epoch's images/s beside the bare loop's."""
    rows = []
    for base in slides_configs(args):
        for precision in ("bf16", "fp32"):
            if budget.over():
                return rows
            cfg = config_class(base.family).from_dict({**base.to_dict(), "precision": precision})
            task = build(cfg, data, device)
            sync(device)
            t0 = time.perf_counter()
            task.train_epoch(0)
            sync(device)
            trainable = len(task.train) // cfg.batch_size * cfg.batch_size / (time.perf_counter() - t0)
            bare = bare_steps(cfg, task, device, len(task.train) // cfg.batch_size)
            rows.append(
                {"family": cfg.family, "precision": task.precision_used, "task_img_s": trainable, "bare_img_s": bare}
            )
    return rows


def part_memory(args, data, device, budget: Budget) -> dict:
    """Each family's peak GPU memory (MiB) over one epoch and its validation; None on the CPU."""
    out = {}
    for cfg in slides_configs(args):
        if budget.over() or device.type != "cuda":
            out[cfg.family] = None
            continue
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        task = build(cfg, data, device)
        task.train_epoch(0)
        task.evaluate("val")
        out[cfg.family] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def part_packing(args, budget: Budget) -> list:
    """N processes training the DCGAN at once on the device: aggregate images/s, N = 1, 2, 4, 8, 16."""
    rows = []
    for n in (1, 2) if args.tiny else (1, 2, 4, 8, 16):
        seconds = min(args.pack_seconds, budget.left() - 5)
        if seconds < 1:
            break
        cmd = [sys.executable, __file__, "--worker", str(seconds), "--data", args.data, "--device", args.device]
        cmd += ["--tiny"] if args.tiny else []
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        rates = [json.loads(p.communicate(timeout=seconds + 300)[0].strip().splitlines()[-1])["img_s"] for p in procs]
        rows.append({"n": n, "img_s": sum(rates), "per_process": rates})
    return rows


def worker(args) -> None:
    """One packed process: train the slides' DCGAN for ``--worker`` seconds; print its images/s."""
    device = torch.device(args.device)
    configure_threads(1)
    cfg = slides_configs(args)[1]
    task = build(cfg, load_dataset(args.data), device)
    end, seen = time.monotonic() + args.worker, 0
    t0 = time.perf_counter()
    while time.monotonic() < end:
        task.train_epoch(0)
        seen += len(task.train) // cfg.batch_size * cfg.batch_size
    sync(device)
    print(json.dumps({"img_s": seen / (time.perf_counter() - t0)}))


def part_fid(args, data, device, budget: Budget) -> dict:
    """FID at ``--eval-n`` samples of an untrained generator vs all test images: the reference
    features (computed once, then cached) and the samples' generation and features, timed apart."""
    from common.metrics.evaluation import Evaluator

    cfg = slides_configs(args)[1]
    sampler = FAMILIES["dcgan"].task.build_sampler(cfg, build(cfg, data, device).export_state()).to(device).eval()
    t0 = time.perf_counter()
    # the reference features are part of the time measured; the CPU rehearsal reads its cached ones
    ev = Evaluator(data, device=device, weights=args.fid_weights, cache_dir="default" if args.tiny else None)
    out = ev(sampler, ("fid",), args.eval_n)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = ev(sampler, ("fid",), args.eval_n)
    return {"n": args.eval_n, "first_s": first, "again_s": time.perf_counter() - t0, "fid": out["fid"]}


def part_deterministic(args, data, device, budget: Budget) -> dict:
    """One DCGAN epoch with deterministic kernels on, then off (cuDNN autotuning), seconds each."""
    cfg = slides_configs(args)[1]
    out = {}
    for on in (True, False):
        task = build(cfg, data, device, deterministic=on)
        task.train_epoch(0)  # warm-up: autotuning happens in the first steps
        sync(device)
        t0 = time.perf_counter()
        task.train_epoch(1)
        sync(device)
        out["on" if on else "off"] = time.perf_counter() - t0
    seed_everything(0, True)
    return out


def machine(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "python": sys.version.split()[0], "device": str(device)}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info |= {"gpu": p.name, "memory_mib": p.total_memory // 2**20, "capability": f"{p.major}.{p.minor}"}
    return info


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="folder for gpu.json and gpu.log")
    p.add_argument("--data", default="cifar10", help="a --data source (the carried cifar10-jpeg.tar.gz)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--tiny", action="store_true", help="tiny nets, 1 epoch, small N: the CPU rehearsal")
    p.add_argument("--budget-s", type=float, default=540.0, help="seconds for all parts (default 9 min)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    p.add_argument("--eval-n", type=int, default=10_000, help="samples of the final evaluation and the FID part")
    p.add_argument("--fid-weights", help="a TorchScript Inception (e.g. the carried fp16 one, made fp32)")
    p.add_argument("--pack-seconds", type=float, default=20.0, help="training seconds per packing point")
    p.add_argument("--worker", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        return worker(args)
    if args.out is None:
        p.error("--out DIR is required")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.tiny:
        args.eval_n = min(args.eval_n, 64)
    device = torch.device(args.device)
    if args.fid_weights:
        args.fid_weights = fp32_weights(Path(args.fid_weights), args.out)
    result = {"machine": machine(device), "args": {k: str(v) for k, v in vars(args).items()}, "parts": {}, "errors": {}}
    data = load_dataset(args.data)
    for part in args.parts.split(","):
        budget = Budget(SHARE[part] * args.budget_s)
        t0 = time.perf_counter()
        try:
            run = globals()[f"part_{part}"]
            result["parts"][part] = run(args, budget) if part == "packing" else run(args, data, device, budget)
        except Exception as exc:  # one part failing leaves the others' numbers
            result["errors"][part] = f"{type(exc).__name__}: {exc}"
        result.setdefault("seconds", {})[part] = time.perf_counter() - t0
        (args.out / "gpu.json").write_text(json.dumps(result, indent=1))  # after each part: a kill keeps them
        with open(args.out / "gpu.log", "a") as log:
            print(f"{part}: {result['seconds'][part]:.1f} s {result['errors'].get(part, 'ok')}", file=log, flush=True)
    print(json.dumps(result, indent=1))


def fp32_weights(path: Path, out: Path) -> str:
    """The carried Inception, stored in fp16 to fit the carry limit, as the fp32 TorchScript the
    evaluation loads (its FIDs then differ slightly from the reference network's: BENCHMARKS.md)."""
    net = torch.jit.load(str(path), map_location="cpu").float()
    dest = out / "inception_fp32.pt"
    torch.jit.save(net, str(dest))
    return str(dest)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
