"""Data sources -> one cached uint8 tensor set; ``DataError`` for bad input.

``load_dataset(spec)``: ``synthetic``, ``cifar10`` (torchvision download), a ``cifar-10-batches-py``
folder, or an image-folder tree (``train/<class>/*``, ``test/<class>/*``) as a folder or ``.tar.gz``.
Images are decoded once and cached in ``cache_dir`` (``$VAEGAN_CACHE``, ``~/.cache/vaegan/data``;
how, and the cache key: common.base.sources). Then the tensors: the seeded train subset and
validation draw, the [-1, 1] conversions, and DeviceData (one split on the trial's device).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from common.base.sources import DataError, cached, cifar10_folder, identify


@dataclass(frozen=True)
class Dataset:
    """Both splits as CPU tensors: ``*_x`` (N, 3, 32, 32) uint8, ``*_y`` (N,) int64."""

    train_x: torch.Tensor = field(repr=False)
    train_y: torch.Tensor = field(repr=False)
    test_x: torch.Tensor = field(repr=False)
    test_y: torch.Tensor = field(repr=False)
    classes: tuple[str, ...]
    source: str
    content_hash: str


def load_dataset(spec: str, cache_dir: str | os.PathLike | None = None) -> Dataset:
    """Load ``spec`` (see module doc), decoding at most once per distinct source content."""
    if spec == "synthetic":
        return _synthetic()
    path = cifar10_folder() if spec == "cifar10" else Path(spec).expanduser()
    if not path.exists():
        raise DataError(
            f"data path '{path}' does not exist; pass --data cifar10, synthetic, or the path to "
            "a cifar-10-batches-py folder or an image-folder tree / .tar.gz"
        )
    kind, key, build = identify(path)
    p = cached(kind, key, build, cache_dir)
    return Dataset(
        p["train_x"],
        p["train_y"],
        p["test_x"],
        p["test_y"],
        tuple(p["classes"]),
        "cifar10" if spec == "cifar10" else path.name,
        p["content_hash"],
    )


# ---- tensors ------------------------------------------------------------------------------
def subset_indices(n_total: int, n: int, seed: int) -> torch.Tensor:
    """Sorted (min(n, n_total),) int64 indices of a seeded random subset of ``range(n_total)``."""
    if n >= n_total:
        return torch.arange(n_total)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n_total, generator=g)[:n].sort().values


VAL_MAX = 5_000  # the automatic validation set: this many images, or a tenth of the train split if fewer


def auto_val_size(n_total: int, train_subset: int) -> int:
    """``val_size = 0``: min(5,000, a tenth of the ``n_total`` train images, the images outside the
    train subset), at least 1: CIFAR-10's 50,000 give 5,000, a 1,437-image folder 143."""
    outside = n_total - train_subset if train_subset < n_total else n_total
    return max(1, min(VAL_MAX, n_total // 10, outside))


def split_indices(
    n_total: int, train_subset: int, val_size: int, seed: int, val_seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train (T,), validation (V,)) sorted int64 indices into a train split of ``n_total`` images.
    ``val_size = 0`` is ``auto_val_size``.

    train = ``subset_indices(n_total, train_subset, seed)`` (the slides' seeded subset), and the
    validation set is a ``val_seed``-seeded draw of ``val_size`` images from the train images
    *outside* it, so the subset is the same with or without a validation set. When the subset
    takes the whole split, the validation set is held out of it first (train = the rest). The two
    never overlap, and nothing trains on the validation images. DataError when they do not fit.
    """
    val_size = val_size or auto_val_size(n_total, train_subset)
    if train_subset >= n_total:  # the whole split: hold the validation images out of it
        if n_total - val_size < 1:
            raise DataError(
                f"val_size={val_size} leaves no training images: the train split has {n_total}; "
                f"lower --set val_size (e.g. {max(16, n_total // 5)})"
            )
        val = subset_indices(n_total, val_size, val_seed)
        keep = torch.ones(n_total, dtype=torch.bool)
        keep[val] = False
        return keep.nonzero().squeeze(1), val
    train = subset_indices(n_total, train_subset, seed)
    rest = torch.ones(n_total, dtype=torch.bool)
    rest[train] = False
    rest = rest.nonzero().squeeze(1)
    if len(rest) < val_size:
        raise DataError(
            f"val_size={val_size} does not fit: the train split has {n_total} images and train_subset="
            f"{train_subset} leaves {len(rest)} outside the subset; lower --set val_size or train_subset"
        )
    return train, rest[subset_indices(len(rest), val_size, val_seed)]


def to_unit_range(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, 32, 32) in [0, 255] -> float32 (B, 3, 32, 32) in [-1, 1]."""
    if x_uint8.dtype != torch.uint8:
        raise TypeError(f"to_unit_range expects a uint8 tensor, got {x_uint8.dtype}")
    return x_uint8.to(torch.float32).div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float (B, 3, 32, 32) in [-1, 1] -> uint8 (B, 3, 32, 32); out-of-range values are clamped."""
    return ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round_().to(torch.uint8)


class DeviceData:
    """One split: images ``x`` (N, 3, 32, 32) uint8 and labels ``y`` (N,) int64, moved to ``device`` once.

    Kept as uint8 on the device (4x smaller than float32) and converted per batch there: an epoch
    costs no host->device copies, no worker processes and no decoding.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, device: torch.device | str = "cpu"):
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != (3, 32, 32) or y.shape != x.shape[:1]:
            raise ValueError(
                f"DeviceData expects uint8 (N, 3, 32, 32) images and (N,) labels, got "
                f"{x.dtype} {tuple(x.shape)} and {tuple(y.shape)}"
            )
        self.x, self.y = x.to(device), y.to(device=device, dtype=torch.int64)
        self.device = self.x.device

    def __len__(self) -> int:
        return self.x.shape[0]

    def num_batches(self, batch_size: int, drop_last: bool = True) -> int:
        return len(self) // batch_size if drop_last else math.ceil(len(self) / batch_size)

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        shuffle: bool = True,
        drop_last: bool = True,
        with_labels: bool = False,
    ) -> Iterator:
        """Yield float32 (B, 3, 32, 32) batches in [-1, 1] on ``self.device`` (or (x, y) pairs,
        y (B,) int64, if ``with_labels``). The order is a permutation drawn from ``generator`` (a
        CPU ``torch.Generator``) on the CPU, so it is the same whatever the device."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if shuffle and (generator is None or generator.device.type != "cpu"):
            raise ValueError("shuffle=True needs a CPU torch.Generator so runs are reproducible")
        order = torch.randperm(len(self), generator=generator).to(self.device) if shuffle else None
        n = self.num_batches(batch_size) * batch_size if drop_last else len(self)

        def gen():  # a nested generator so the checks above run at call time
            for start in range(0, n, batch_size):
                idx = slice(start, min(start + batch_size, n))
                idx = idx if order is None else order[idx]
                xb = to_unit_range(self.x[idx])
                yield (xb, self.y[idx]) if with_labels else xb

        return gen()


# ---- synthetic ----------------------------------------------------------------------------
def _synthetic(n_train: int = 512, n_test: int = 256, k: int = 10) -> Dataset:
    """Per-class colour and stripe orientation plus noise: a linear probe beats chance."""
    g = torch.Generator().manual_seed(1234)
    colours = torch.rand(k, 3, 1, 1, generator=g) * 160 + 48
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    angle = torch.arange(k) * math.pi / k
    period = 4.0 + 2.0 * (torch.arange(k) % 3)
    stripes = torch.sin(
        (xx * angle.cos()[:, None, None] + yy * angle.sin()[:, None, None]) * (2 * math.pi / period)[:, None, None]
    )  # (k, 32, 32)

    def make(n):
        y = torch.randperm(n, generator=g) % k
        x = colours[y] + 40 * stripes[y].unsqueeze(1) + 25 * torch.randn(n, 3, 32, 32, generator=g)
        return x.round().clamp(0, 255).to(torch.uint8), y

    t = (*make(n_train), *make(n_test))
    digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in t)).hexdigest()
    return Dataset(*t, tuple(f"class{i}" for i in range(k)), "synthetic", digest)
