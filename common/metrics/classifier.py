"""The domain classifier: a small CNN trained once per dataset, by its labels, on its train split.

Its penultimate features and its logits are the per-epoch sample-quality scores of every sweep
(``common.metrics.maths``: classifier-FD against the validation images, class coverage, a classifier
Inception Score), chosen over a random conv net by the rank study in ``bench/proxy.py``. Inception
is the standard, but far too slow on a CPU to score every epoch; this net is cheap (BENCHMARKS.md).

* Training is seeded and deterministic on the CPU (at a fixed thread count), runs on the whole
  train split of whatever data the sweep uses (labels are always there: ``--data`` image folders
  have class folders), and is cached on disk by the data's content hash and this config:
  ``$VAEGAN_CACHE/classifier/<digest>.pt`` (weights, config, test accuracy). A sweep's driver
  trains or loads it before any trial starts and hands the weights to the trials.
* No fallback: a dataset with fewer than 2 classes or fewer than ``MIN_PER_CLASS`` train images
  of some class is refused with a DataError that says so.
* The test accuracy is a reported number (tag ``classifier.test_acc`` of the sweep's parent run);
  nothing selects on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from filelock import FileLock
from torch import nn

from common.base.data import DataError, Dataset, to_unit_range

MIN_PER_CLASS = 10  # train images per class below which the classifier is refused


@dataclass(frozen=True)
class ClassifierConfig:
    """How the domain classifier is built and trained (part of its cache key)."""

    widths: tuple[int, int, int] = (16, 32, 64)
    epochs: int = 8
    batch_size: int = 256
    lr: float = 0.1  # SGD + Nesterov momentum 0.9, one-cycle schedule
    weight_decay: float = 5e-4
    seed: int = 0
    min_steps: int = 30  # tiny data sets (tests) still get enough steps to learn their classes

    def digest(self, content_hash: str) -> str:
        key = json.dumps({"data": content_hash, **dataclasses.asdict(self), "version": 1}, sort_keys=True)
        return hashlib.sha1(key.encode()).hexdigest()[:16]


class DomainClassifier(nn.Module):
    """(B,3,32,32) in [-1, 1] -> logits (B,K); ``features`` -> (B, widths[2]) penultimate features.

    Four 3x3 conv + BN + ReLU stages (w0 @32, w1 @16, w2 @8, w2 @4 px, 2x2 max-pool between),
    global average pool, a linear head. ``name`` identifies the weights (it keys feature caches).
    """

    def __init__(self, num_classes: int, widths: tuple[int, int, int] = (16, 32, 64), name: str = "classifier"):
        super().__init__()
        a, b, c = widths
        block = lambda i, o: [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(
            *block(3, a),
            nn.MaxPool2d(2),
            *block(a, b),
            nn.MaxPool2d(2),
            *block(b, c),
            nn.MaxPool2d(2),
            *block(c, c),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(c, num_classes)
        self.name, self.dim, self.num_classes = name, c, num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,32,32) -> (B, widths[2]) float32."""
        return self.body(x.float().contiguous(memory_format=torch.channels_last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,32,32) -> logits (B, num_classes)."""
        return self.head(self.features(x))

    @torch.no_grad()
    def features_and_logits(self, x: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N,3,32,32) uint8 or [-1, 1] float -> (features (N,F), logits (N,K)) on the CPU, float32."""
        self.eval()
        dev = next(self.parameters()).device
        feats, logits = [], []
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(dev)
            xb = to_unit_range(xb) if xb.dtype == torch.uint8 else xb.float()
            f = self.features(xb)
            feats.append(f.cpu())
            logits.append(self.head(f).cpu())
        return torch.cat(feats), torch.cat(logits)


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and translations by up to 4 px (reflect padding): (B,3,32,32)."""
    flip = torch.rand(len(x), generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    dx, dy = torch.randint(0, 9, (2, len(x)), generator=g).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32] for i in range(len(x))])


def check_labels(data: Dataset) -> None:
    """DataError unless every one of >= 2 classes has MIN_PER_CLASS train images."""
    counts = torch.bincount(data.train_y, minlength=len(data.classes)).tolist()
    if len(counts) < 2 or min(counts) < MIN_PER_CLASS:
        worst = min(range(len(counts)), key=counts.__getitem__) if counts else None
        shown = f"class {data.classes[worst]!r} has {counts[worst]}" if worst is not None else "no classes"
        raise DataError(
            f"the domain classifier behind the per-epoch sample scores needs >= 2 classes with >= "
            f"{MIN_PER_CLASS} train images each, but {data.source} has {len(counts)} class(es) and {shown}; "
            "give each class folder more images"
        )


def train_classifier(
    data: Dataset, cfg: ClassifierConfig = ClassifierConfig(), log=print
) -> tuple[DomainClassifier, dict]:
    """Train on the whole train split (CPU, seeded); return (net in eval mode, info with test_acc).

    Seeding uses private generators and a forked global RNG, so a caller's RNG stream is untouched.
    """
    check_labels(data)
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = DomainClassifier(len(data.classes), cfg.widths).to(memory_format=torch.channels_last)
    n = len(data.train_x)
    per_epoch = max(1, n // cfg.batch_size)
    steps = max(cfg.epochs * per_epoch, cfg.min_steps)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.25)
    net.train()
    step = 0
    while step < steps:
        order = torch.randperm(n, generator=g)
        for i in range(per_epoch):
            if step == steps:
                break
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x = _augment(to_unit_range(data.train_x[idx]), g)
            loss = F.cross_entropy(net(x), data.train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
    net.eval()
    _, logits = net.features_and_logits(data.test_x)
    acc = float((logits.argmax(1) == data.test_y).float().mean())
    info = {
        "test_acc": acc,
        "train_seconds": time.perf_counter() - t0,
        "steps": steps,
        "n_train": n,
        "n_test": len(data.test_x),
        "config": dataclasses.asdict(cfg),
    }
    log(
        f"domain classifier: {acc:.1%} test accuracy on {len(data.test_x):,} {data.source} test images "
        f"({steps} steps, {info['train_seconds']:.0f} s)"
    )
    return net, info


def cache_path(data: Dataset, cfg: ClassifierConfig = ClassifierConfig()) -> Path:
    root = Path(os.environ.get("VAEGAN_CACHE") or "~/.cache/vaegan/data").expanduser()
    return root / "classifier" / f"{cfg.digest(data.content_hash)}.pt"


def get_classifier(data: Dataset, cfg: ClassifierConfig = ClassifierConfig(), log=print) -> tuple[dict, dict]:
    """(state, info) of ``data``'s classifier: from the disk cache, else trained (under a file lock,
    so concurrent processes train it once) and cached. ``state`` feeds ``load_classifier``."""
    path = cache_path(data, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)

    def read():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # missing or torn: (re)train
            return None

    if (saved := read()) is None:
        with FileLock(str(path) + ".lock"):
            if (saved := read()) is None:
                log(f"training the domain classifier for {data.source} once (cached in {path.parent})")
                net, info = train_classifier(data, cfg, log)
                saved = {
                    "weights": net.state_dict(),
                    "num_classes": len(data.classes),
                    "widths": list(cfg.widths),
                    "name": f"classifier-{path.stem}",
                    "info": json.dumps(info),
                }
                fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
                with os.fdopen(fd, "wb") as f:
                    torch.save(saved, f)
                os.replace(tmp, path)
    return saved, json.loads(saved["info"])


def load_classifier(state: dict, device: torch.device | str = "cpu") -> DomainClassifier:
    """The classifier of ``get_classifier``'s state on ``device``, in eval mode."""
    net = DomainClassifier(state["num_classes"], tuple(state["widths"]), name=state["name"])
    net.load_state_dict(state["weights"])
    net = net.to(device)
    if torch.device(device).type == "cpu":
        net = net.to(memory_format=torch.channels_last)
    return net.eval()


def chance_warning(info: dict, num_classes: int) -> str | None:
    """A warning when the classifier is barely above chance: its scores would then say little."""
    if info["test_acc"] < 1.5 / num_classes:
        return (
            f"the domain classifier reaches only {info['test_acc']:.1%} test accuracy ({num_classes} classes, "
            f"chance {1 / num_classes:.1%}): per-epoch sample scores built on it are weak on this data"
        )
    return None
