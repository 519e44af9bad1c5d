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


def from_checkpoint(config: dict, models: dict) -> nn.Module:
    """Rebuild a trial's generative model from its saved config and weights.

    config: the trial config dict; models: name -> state_dict, as in best.pt's ``model``
    (``vae`` [+ ``d``] or ``g`` + ``d``). Returns the family task's ``build_sampler`` (the ConvVAE
    for vae and vaegan, whose decoder is the generator; the Generator for dcgan) in eval mode on the
    CPU; each has ``sample(n, device)`` -> (n,3,32,32) in [-1, 1].
    """
    from common.trial.families import get

    family = get(config["family"])
    return family.task.build_sampler(family.config.from_dict(config), models).eval()
