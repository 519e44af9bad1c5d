"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The same random, differentiable transforms go on the real and the fake images before D sees
them, in D's step and in G's, so D cannot overfit a small train set (the paper's 20% CIFAR-10
setting is our 10k subset) and G's gradient flows back through the transform. Pure functions
over (N,3,H,W) images in [-1, 1]; every draw is per image, from torch's global RNG on the
images' device. The transforms and their ranges follow the paper's code.
"""

from __future__ import annotations

import torch

POLICIES = ("color", "translation", "cutout")


def brightness(x: torch.Tensor) -> torch.Tensor:
    """Add U(-0.5, 0.5) per image."""
    return x + (torch.rand(len(x), 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)


def saturation(x: torch.Tensor) -> torch.Tensor:
    """Scale each pixel's distance from its channel mean by U(0, 2) per image."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (torch.rand(len(x), 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean


def contrast(x: torch.Tensor) -> torch.Tensor:
    """Scale each image's distance from its mean by U(0.5, 1.5)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(len(x), 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size in each direction, zero-filled (a gather:
    the gradient reaches every pixel that stays in view)."""
    n, c, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    rows = torch.arange(h, device=x.device)[None, :, None] + torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
    cols = torch.arange(w, device=x.device)[None, None, :] + torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)  # (n, h, w)
    source = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).flatten(1)  # (n, h*w)
    out = x.flatten(2).gather(2, source[:, None, :].expand(n, c, h * w)).view(n, c, h, w)
    return out * inside[:, None].to(x.dtype)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of ``ratio`` of the image's side at a random centre, per image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device) - cw // 2
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    hole = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~hole)[:, None].to(x.dtype)


TRANSFORMS = {"color": (brightness, saturation, contrast), "translation": (translation,), "cutout": (cutout,)}


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation"`` -> ("color", "translation"); "" -> () (off). ValueError on a name
    outside ``POLICIES``."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment transform(s) {', '.join(unknown)}; choose from {', '.join(POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """(N,3,H,W) -> the same shape, each transform of ``policy`` applied in order."""
    for name in policy:
        for transform in TRANSFORMS[name]:
            x = transform(x)
    return x.contiguous()
