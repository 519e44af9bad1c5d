"""Model families: Conv-VAE and DCGAN (G, D), plus a parameter counter."""
from __future__ import annotations

from torch import nn

from .dcgan import Discriminator, Generator, dcgan_init
from .vae import ConvVAE

__all__ = ["ConvVAE", "Generator", "Discriminator", "dcgan_init", "count_params", "from_checkpoint"]


def count_params(module: nn.Module) -> int:
    """Total number of parameter elements (trainable or not; BN running stats are buffers
    and are not counted) — the figure the seed reports as 'Parameters'."""
    return sum(p.numel() for p in module.parameters())


def from_checkpoint(config: dict, models: dict) -> nn.Module:
    """Rebuild a trial's generative model from its saved config and weights.

    config: the trial config dict; models: name -> state_dict, as in best.pt's ``model``
    (``vae`` [+ ``d``] or ``g`` + ``d``). Returns the ConvVAE for vae and vaegan (a VAE-GAN's
    decoder is its generator) or the Generator for dcgan, in eval mode on the CPU; both have
    ``sample(n, device)`` -> (n,3,32,32) in [-1, 1].
    """
    from common.trial.config import config_class

    cfg = config_class(config["family"]).from_dict(config)
    if cfg.family in ("vae", "vaegan"):
        model = ConvVAE(cfg.latent_dim, cfg.base_channels, cfg.hidden_dim,
                        learned_scale=getattr(cfg, "likelihood", "mse") == "logistic")
        model.load_state_dict(models["vae"])
    else:
        model = Generator(cfg.latent_dim, cfg.g_channels, cfg.g_hidden)
        model.load_state_dict(models["g"])
    return model.eval()
