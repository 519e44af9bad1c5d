"""Model families: Conv-VAE and DCGAN (G, D), plus a parameter counter."""

from __future__ import annotations

from torch import nn

from .dcgan import Discriminator, Generator, dcgan_init
from .vae import ConvVAE

__all__ = ["ConvVAE", "Generator", "Discriminator", "dcgan_init", "count_params", "from_checkpoint"]


def count_params(module: nn.Module) -> int:
    """Total number of parameter elements (trainable or not; BN running stats are buffers
    and are not counted) — the figure the slides report as 'Parameters'."""
    return sum(p.numel() for p in module.parameters())
