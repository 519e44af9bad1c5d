"""In-trial training throughput: the product's trainable step vs a bare PyTorch loop.

Run (from the repository root)::

    .venv/bin/python bench/throughput.py --data ../shared/data/cifar10-jpeg.tar.gz --repeats 5
    .venv/bin/python bench/throughput.py                       # synthetic data, quick smoke run
    .venv/bin/python bench/throughput.py --json out.json --models vae --device cuda
    .venv/bin/python bench/throughput.py --data ... --variants        # candidate speed-ups instead

What it measures, per model family (VAE, DCGAN):

* trainable: ``task.train_epoch(epoch)`` of a ``VAETask`` / ``DCGANTask`` built exactly as
  ``common.trial.loop.run_trial`` builds it (``*Config.from_dict``, ``load_dataset``,
  ``configure_threads``, ``seed_everything``, ``FAMILIES[family].task(cfg, data, device, generator)``).
* bare: the minimal loop a person would write for the same ``common.trial.models`` nets, batch
  size, optimizer settings and thread count, over the same uint8 train subset already in
  memory: index a random permutation, convert to float [-1, 1], forward, loss, backward,
  step. It runs with torch's default ``use_deterministic_algorithms(False)`` (the product
  turns it on in ``seed_everything``), so any cost of that switch shows up in the ratio.

Both run in one process, interleaved (trainable, bare, trainable, bare ...) for ``--repeats``
epochs after one warm-up epoch of each. Reported: median images/s with min-max, and the
ratio trainable/bare (median of the per-repeat ratios; 1.0 = no overhead). Separately, the
per-epoch trial time the loop adds outside ``train_epoch``: ``task.evaluate(probe=False)``
(first call, which also builds the real-feature stats once per trial, and a steady-state
call) and ``torch.save(task.state_dict())`` (size, time), each as a fraction of one measured
training epoch and of an epoch at the config's default ``train_subset``.

Other processes distort CPU numbers badly: with as many torch threads as cores, one busy
core elsewhere can cut throughput by 2-20x. Each repeat therefore also records the CPU that
other processes used meanwhile (from /proc/stat, in cores; "other load" in the table) and
the run warns above 0.25 cores: rerun on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common.base.data import load_dataset  # noqa: E402
from common.base.device import configure_threads, pick_device, seed_everything  # noqa: E402
from common.trial.config import DCGANConfig, VAEConfig  # noqa: E402
from common.trial.families import FAMILIES  # noqa: E402
from common.trial.models import ConvVAE, Discriminator, Generator  # noqa: E402

CONFIGS = {"vae": VAEConfig, "dcgan": DCGANConfig}


def machine(threads: int, device: torch.device) -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or cpu
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (
        f"{cpu}, {os.cpu_count()} cores{gpu}; torch {torch.__version__}, {threads} threads, "
        f"python {platform.python_version()}, load avg {os.getloadavg()[0]:.2f} at start"
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Bare:
    """The minimal training loop: same nets, optimizer settings and data, nothing else."""

    def __init__(
        self,
        cfg,
        x_uint8: torch.Tensor,
        device: torch.device,
        channels_last: bool = False,
        compile: bool = False,
        fused: bool = False,
        bf16: bool = False,
    ):
        """The keyword switches are the candidate speed-ups ``--variants`` compares (all off = baseline)."""
        self.cfg, self.x, self.device = cfg, x_uint8.to(device), device
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.bf16 = bf16
        opt = lambda params, **kw: (
            torch.optim.Adam(params, fused=True, **kw) if fused else torch.optim.Adam(params, **kw)
        )
        wrap = lambda m: torch.compile(m) if compile else m  # noqa: E731
        if cfg.family == "vae":
            self.vae = ConvVAE.for_config(cfg).to(device, memory_format=self.fmt)
            self.opt = opt(self.vae.parameters(), lr=cfg.lr)
            self.vae = wrap(self.vae)
        else:
            self.g = Generator.for_config(cfg).to(device, memory_format=self.fmt)
            self.d = Discriminator.for_config(cfg).to(device, memory_format=self.fmt)
            betas = (cfg.beta1, cfg.beta2)
            self.opt_g = opt(self.g.parameters(), lr=cfg.lr_g, betas=betas)
            self.opt_d = opt(self.d.parameters(), lr=cfg.lr_d, betas=betas)
            self.g, self.d = wrap(self.g), wrap(self.d)

    def train_epoch(self) -> None:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            self._train_epoch()

    def _train_epoch(self) -> None:
        bs, n = self.cfg.batch_size, len(self.x)
        perm = torch.randperm(n).to(self.device)
        for i in range(0, n - bs + 1, bs):  # drop_last, like the product
            x = (self.x[perm[i : i + bs]].float() / 127.5 - 1.0).contiguous(memory_format=self.fmt)
            if self.cfg.family == "vae":
                x_hat, mu, logvar = self.vae(x)
                x_hat, mu, logvar = x_hat.float(), mu.float(), logvar.float()
                kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
                loss = ((x_hat - x).pow(2).flatten(1).sum(1) + self.cfg.beta * kl).mean()
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
            else:
                fake = self.g(torch.randn(bs, self.cfg.latent_dim, device=self.device))
                real_logits, fake_logits = self.d(x).float(), self.d(fake.detach()).float()
                d_loss = F.binary_cross_entropy_with_logits(
                    real_logits, torch.ones_like(real_logits)
                ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
                self.opt_d.zero_grad()
                d_loss.backward()
                self.opt_d.step()
                fake_logits = self.d(fake).float()
                g_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
                self.opt_g.zero_grad()
                g_loss.backward()
                self.opt_g.step()


def busy_cpu_s() -> float:
    """CPU-seconds all processes have spent busy since boot (/proc/stat; 0 where unreadable)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    except (OSError, ValueError):
        return 0.0


OTHER: list[float] = []  # per timed call: cores' worth of CPU other processes used meanwhile


def timed(fn, device: torch.device) -> float:
    sync(device)
    busy0, own0, t0 = busy_cpu_s(), sum(os.times()[:2]), time.perf_counter()
    fn()
    sync(device)
    wall = time.perf_counter() - t0
    OTHER.append(max(0.0, busy_cpu_s() - busy0 - (sum(os.times()[:2]) - own0)) / wall)
    return wall


def _config(family: str, args):
    """The family's config at the benchmark's data, subset, batch size and device."""
    keys = ("data", "train_subset", "val_size", "batch_size", "device")
    return CONFIGS[family].from_dict({k: getattr(args, k) for k in keys})


def _bare_epoch(bare: Bare) -> None:
    torch.use_deterministic_algorithms(False)  # what a bare script has
    try:
        bare.train_epoch()
    finally:
        torch.use_deterministic_algorithms(True, warn_only=True)


def _interleaved_epochs(family: str, task, bare: Bare, n_img: int, repeats: int, device: torch.device) -> tuple:
    """A warm-up epoch of each, then ``repeats`` interleaved: seconds, and other processes' CPU per repeat."""
    timed(lambda: task.train_epoch(0), device)  # warm-up (allocator, kernels, Adam state)
    timed(lambda: _bare_epoch(bare), device)
    t_task, t_bare, other = [], [], []
    for r in range(repeats):
        t_task.append(timed(lambda: task.train_epoch(r + 1), device))
        other_task = OTHER[-1]
        t_bare.append(timed(lambda: _bare_epoch(bare), device))
        other.append(max(other_task, OTHER[-1]))
        print(
            f"  {family} repeat {r + 1}/{repeats}: trainable {n_img / t_task[-1]:7.1f} img/s, "
            f"bare {n_img / t_bare[-1]:7.1f} img/s (other processes: {other_task:.2f}, {OTHER[-1]:.2f} cores)",
            flush=True,
        )
    return t_task, t_bare, other


def _outside_train_epoch(task, device: torch.device) -> dict:
    """Trial time per epoch outside train_epoch (loop.run_trial): evaluate (1st, steady) and state save."""
    eval_first = timed(lambda: task.evaluate(probe=False), device)
    eval_next = timed(lambda: task.evaluate(probe=False), device)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.pt"
        ckpt_s = timed(lambda: torch.save(task.state_dict(), path), device)
        ckpt_mb = path.stat().st_size / 1e6
    return {"eval_first_s": eval_first, "eval_s": eval_next, "ckpt_s": ckpt_s, "ckpt_mb": ckpt_mb}


def bench_model(family: str, data, args, device: torch.device) -> dict:
    # 1. the task exactly as run_trial builds it, and the bare loop on the same train subset
    cfg = _config(family, args)
    configure_threads(args.threads)
    generator = seed_everything(cfg.seed)  # as run_trial: also turns on deterministic algorithms
    task = FAMILIES[family].task(cfg, data, device, generator)
    bare = Bare(cfg, data.train_x[cfg.split(len(data.train_x))[0]], device)
    n_img = (len(task.train) // cfg.batch_size) * cfg.batch_size  # images one epoch trains on
    # 2. the timed epochs, then 3. what the trial adds per epoch, after them (same warm state)
    t_task, t_bare, other = _interleaved_epochs(family, task, bare, n_img, args.repeats, device)
    extra = _outside_train_epoch(task, device)
    epoch_s = statistics.median(t_task)
    default_epoch_s = epoch_s * type(cfg)().train_subset / n_img  # same rate, the config's default subset
    ips = lambda ts: [n_img / t for t in ts]  # noqa: E731
    per_epoch = extra["eval_s"] + extra["ckpt_s"]
    return {
        "family": family,
        "images_per_epoch": n_img,
        "batch_size": cfg.batch_size,
        "trainable_ips": ips(t_task),
        "bare_ips": ips(t_bare),
        "ratio_median": statistics.median(b / a for a, b in zip(t_task, t_bare)),
        "other_cores_max": max(other),
        "epoch_train_s": epoch_s,
        "default_train_subset": type(cfg)().train_subset,
        **extra,
        "overhead_frac": per_epoch / epoch_s,
        "overhead_frac_default_subset": per_epoch / default_epoch_s,
    }


VARIANTS = {  # name -> (Bare switches, batch size or None for --batch-size)
    "baseline": ({}, None),
    "channels_last": ({"channels_last": True}, None),
    "fused_adam": ({"fused": True}, None),
    "bf16_autocast": ({"bf16": True}, None),
    "torch_compile": ({"compile": True}, None),
    "batch_256": ({}, 256),
}


def bench_variants(family: str, data, args, device: torch.device, names: list[str]) -> dict:
    """Candidate speed-ups of the bare loop, each against the plain one, interleaved per repeat."""
    base = _config(family, args)
    configure_threads(args.threads)
    torch.use_deterministic_algorithms(False)
    x = data.train_x[base.split(len(data.train_x))[0]]
    loops, n_img, warm = {}, {}, {}
    for name in names:
        switches, batch = VARIANTS[name]
        cfg = CONFIGS[family].from_dict({**base.to_dict(), "batch_size": batch or base.batch_size})
        torch.manual_seed(0)
        loops[name] = Bare(cfg, x, device, **switches)
        n_img[name] = (len(x) // cfg.batch_size) * cfg.batch_size
        warm[name] = timed(loops[name].train_epoch, device)  # compile happens here
    ips = {name: [] for name in names}
    for r in range(args.repeats):
        for name in names:
            ips[name].append(n_img[name] / timed(loops[name].train_epoch, device))
        print(
            f"  {family} repeat {r + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in ips.items()),
            flush=True,
        )
    ratio = {k: statistics.median(a / b for a, b in zip(v, ips["baseline"])) for k, v in ips.items()}
    return {"family": family, "ips": ips, "ratio": ratio, "warmup_s": warm}


def fmt(v: list[float]) -> str:
    return f"{statistics.median(v):8.1f} ({min(v):.0f}-{max(v):.0f})"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="synthetic", help="synthetic | path (e.g. ../shared/data/cifar10-jpeg.tar.gz)")
    p.add_argument("--train-subset", type=int, default=2048, help="train images per epoch (default 2048)")
    p.add_argument("--val-size", type=int, default=5000, help="validation images held out (128 for synthetic data)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads for both loops")
    p.add_argument("--repeats", type=int, default=5, help="timed epochs per loop after one warm-up")
    p.add_argument("--models", default="vae,dcgan", help="comma-separated: vae,dcgan")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument(
        "--variants",
        nargs="*",
        metavar="NAME",
        help=f"instead: compare candidate speed-ups of the bare loop with it ({', '.join(VARIANTS)}; no names = all)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return p


def _print_variants(results: list[dict], names: list[str], args) -> None:
    print(
        f"\nbare-loop variants, images/s: median (min-max) over {args.repeats} interleaved repeats; "
        "ratio = median of per-repeat ratios to baseline; first epoch (compile, warm-up) apart"
    )
    for r in results:
        for name in names:
            print(
                f"{r['family']:6} {name:14} {fmt(r['ips'][name]):>24} {r['ratio'][name]:6.3f} "
                f"first epoch {r['warmup_s'][name]:6.1f}s"
            )
    if max(OTHER) > 0.25:
        print("WARNING: other processes used CPU during the timed epochs; rerun on a quiet machine")


def _print_results(results: list[dict], args) -> None:
    """The throughput table, then the trial's time per epoch outside train_epoch."""
    print(f"\ntraining throughput, images/s: median (min-max) over {args.repeats} interleaved repeats")
    print(f"{'model':6} {'trainable train_epoch':>24} {'bare loop':>24} {'ratio':>6} {'other load':>10}")
    for r in results:
        print(
            f"{r['family']:6} {fmt(r['trainable_ips']):>24} {fmt(r['bare_ips']):>24} {r['ratio_median']:6.3f} "
            f"{r['other_cores_max']:5.2f} cores"
        )
    if max(r["other_cores_max"] for r in results) > 0.25:
        print(
            "WARNING: other processes used CPU during the timed epochs (other load = the most, in cores, "
            "during any repeat); the numbers are contended: rerun on a quiet machine"
        )
    print("\ntrial time per epoch outside train_epoch (common/trial/loop.py), vs one training epoch")
    print(
        f"{'model':6} {'epoch train':>11} {'evaluate 1st':>12} {'evaluate':>9} {'ckpt save':>15} "
        f"{'overhead':>9} {'at default subset':>18}"
    )
    for r in results:
        print(
            f"{r['family']:6} {r['epoch_train_s']:10.2f}s {r['eval_first_s']:11.2f}s {r['eval_s']:8.2f}s "
            f"{r['ckpt_s']:6.3f}s {r['ckpt_mb']:5.1f}MB {100 * r['overhead_frac']:8.1f}% "
            f"{100 * r['overhead_frac_default_subset']:9.1f}% ({r['default_train_subset']})"
        )
    print(
        "(overhead = (evaluate + checkpoint save) / training epoch; 'evaluate 1st' also builds the "
        "real-feature stats, once per trial; figures, best.pt and MLflow logging are not counted)"
    )


def _write_json(args, device: torch.device, key: str, results: list[dict]) -> None:
    """--json: the machine (as at the end of the run), the flags, and ``results`` under ``key``."""
    Path(args.json).write_text(
        json.dumps({"machine": machine(args.threads, device), "args": vars(args), key: results}, indent=2)
    )


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    families = [m.strip() for m in args.models.split(",") if m.strip()]
    if not families or set(families) - set(CONFIGS):
        p.error(f"--models must name some of {', '.join(CONFIGS)}")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    # 1. the machine and data lines come first, even before a bad --variants name is reported
    device = pick_device(args.device)
    configure_threads(args.threads)
    print(f"machine: {machine(args.threads, device)}")
    t0 = time.perf_counter()
    data = load_dataset(args.data)
    print(
        f"data: {data.source} ({len(data.train_x)} train / {len(data.test_x)} test images, "
        f"loaded in {time.perf_counter() - t0:.1f} s); device {device}; train subset {args.train_subset}, "
        f"batch {args.batch_size}, {args.repeats} repeats",
        flush=True,
    )
    if args.variants is not None:
        names = ["baseline"] + [n for n in (args.variants or VARIANTS) if n != "baseline"]
        if set(names) - set(VARIANTS):
            p.error(f"--variants must name some of {', '.join(VARIANTS)}")
        results = [bench_variants(f, data, args, device, names) for f in families]
        _print_variants(results, names, args)
        if args.json:
            _write_json(args, device, "variants", results)
        return 0
    # 2. the trainable against the bare loop, family by family, then the tables
    results = [bench_model(f, data, args, device) for f in families]
    _print_results(results, args)
    if args.json:
        _write_json(args, device, "results", results)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
