"""Convolutional VAE for 32x32 RGB images in [-1, 1].

Layer table (the slides, 'Technical Details')::

    x (B,3,32,32)
      Conv(3->c)   + BN + ReLU   -> (B,c,16,16)
      Conv(c->2c)  + BN + ReLU   -> (B,2c,8,8)
      Conv(2c->4c) + BN + ReLU   -> (B,4c,4,4)
      flatten 4*4*4c [-> Linear(hidden) + ReLU] -> Linear mu, Linear logvar   (B,latent)
    z = mu + exp(logvar/2) * eps
      [Linear(hidden) + ReLU ->] Linear -> (B,4c,4,4)
      ConvT(4c->2c) + BN + ReLU  -> (B,2c,8,8)
      ConvT(2c->c)  + BN + ReLU  -> (B,c,16,16)
      ConvT(c->3)   + Tanh       -> (B,3,32,32)

What the slides left open, and what was chosen:

* Kernel/stride/padding: not given. Kernel 4, stride 2, padding 1 (the DCGAN convention)
  halves/doubles the side exactly: 32 -> 16 -> 8 -> 4 and back. ``kernel_size`` 3 or 5 keeps
  the same sides (padding (k-1)//2, and an output padding of k % 2 on the transposed convs).
* Widths: c, 2c, 4c (``stage_mults`` = (1, 2, 4) times ``base_channels`` = c).
* Whether there is a hidden FC layer between the 4x4 map and the latent: not given. The
  constructor's defaults keep the first guess, a 256-unit hidden FC on each side with widths
  32-64-128 (1.43M, +3.8%). The layout study (BENCHMARKS.md) found the slides' numbers at no
  hidden FC with widths 48-96-192 (1.34M, -3.2%): ``sweeps/slides.py`` uses that one.
* Conv biases: convolutions followed by BatchNorm carry no bias (BN's shift makes it
  redundant); this changes the count by < 0.1%.
* Initialisation: PyTorch defaults (the slides name none for the VAE).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from common.metrics.prior import PriorSampler

LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


def _block(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


def down(c_in: int, c_out: int, k: int = 4, bias: bool = False) -> nn.Conv2d:
    """A stride-2 conv that halves the side for any kernel size k >= 2: (B,c_in,H,W) -> (B,c_out,H/2,W/2)."""
    return nn.Conv2d(c_in, c_out, k, 2, (k - 1) // 2, bias=bias)


def up(c_in: int, c_out: int, k: int = 4, bias: bool = False) -> nn.ConvTranspose2d:
    """A stride-2 transposed conv that doubles the side for any kernel size k >= 2:
    (B,c_in,H,W) -> (B,c_out,2H,2W) (odd kernels need an output padding of 1)."""
    return nn.ConvTranspose2d(c_in, c_out, k, 2, (k - 1) // 2, output_padding=k % 2, bias=bias)


def stage_widths(base: int, mults: tuple[float, ...]) -> tuple[int, ...]:
    """Each stage's width, base * mult rounded down, at least 1: (32, (1, 2, 4)) -> (32, 64, 128)."""
    return tuple(max(1, int(base * m)) for m in mults)


class ConvVAE(PriorSampler, nn.Module):
    """Gaussian-latent VAE; the decoder outputs the mean image (MSE likelihood).

    Args:
        latent_dim: size D of z.
        base_channels: encoder widths c, 2c, 4c (decoder mirrors them).
        hidden_dim: width of the hidden FC on each side of the latent; 0 = none.
        kernel_size: k of every conv and transposed conv (stride 2 always).
        stage_mults: the three encoder widths as multiples of ``base_channels``.
        learned_scale: add ``log_scale`` (3,1,1), the decoder likelihood's per-channel log scale
            (``likelihood = "logistic"``); off, the module is the slides' VAE exactly.
    """

    def __init__(
        self,
        latent_dim: int = 64,
        base_channels: int = 32,
        hidden_dim: int = 256,
        learned_scale: bool = False,
        kernel_size: int = 4,
        stage_mults: tuple[float, float, float] = (1, 2, 4),
    ):
        super().__init__()
        w1, w2, w3 = stage_widths(base_channels, stage_mults)
        k = kernel_size
        self.latent_dim = latent_dim
        self.base_channels = base_channels
        self.hidden_dim = hidden_dim
        self.top = w3  # channels of the 4x4 map
        flat = 4 * 4 * w3

        self.encoder = nn.Sequential(
            _block(down(3, w1, k), w1), _block(down(w1, w2, k), w2), _block(down(w2, w3, k), w3), nn.Flatten()
        )
        if hidden_dim > 0:
            self.enc_fc = nn.Sequential(nn.Linear(flat, hidden_dim), nn.ReLU(inplace=True))
            head_in = hidden_dim
            self.dec_fc = nn.Sequential(
                nn.Linear(latent_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, flat)
            )
        else:
            self.enc_fc = nn.Identity()
            head_in = flat
            self.dec_fc = nn.Linear(latent_dim, flat)
        self.fc_mu = nn.Linear(head_in, latent_dim)
        self.fc_logvar = nn.Linear(head_in, latent_dim)

        # The slide has no nonlinearity between the FC and the first ConvT: the ConvT's
        # BN+ReLU follows immediately.
        self.decoder = nn.Sequential(
            _block(up(w3, w2, k), w2), _block(up(w2, w1, k), w1), up(w1, 3, k, bias=True), nn.Tanh()
        )
        if learned_scale:  # starts at the scale MSE implies (sigma^2 = 1/2); registered last: the
            # other parameters are drawn exactly as without it
            self.log_scale = nn.Parameter(torch.full((3, 1, 1), 0.5 * math.log(0.5)))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B,3,32,32) -> (mu (B,D), logvar (B,D)), logvar clamped to [-30, 20].

        The clamp is a numerical guard, not a modelling choice: while beta = 0 (the first
        epoch of a cyclical schedule) nothing penalises logvar, it can pass 88 where exp()
        overflows float32, and 0 * inf makes the loss NaN. Real posteriors stay far inside it.
        """
        h = self.enc_fc(self.encoder(x))
        return self.fc_mu(h), self.fc_logvar(h).clamp(LOGVAR_MIN, LOGVAR_MAX)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B,D) -> x_hat (B,3,32,32) in [-1, 1]."""
        h = self.dec_fc(z).view(z.shape[0], self.top, 4, 4)
        return self.decoder(h)

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I); all (B,D)."""
        if generator is None:
            eps = torch.randn_like(mu)
        else:
            # A caller-owned generator makes the noise reproducible without touching the
            # global RNG (it must live on mu's device).
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B,3,32,32) -> (x_hat (B,3,32,32), mu (B,D), logvar (B,D))."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator)
        return self.decode(z), mu, logvar

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode(z)

    @classmethod
    def for_config(cls, cfg) -> "ConvVAE":
        """The net a VAE or VAE-GAN config describes (its layout fields; a learned likelihood
        scale when ``likelihood = "logistic"``)."""
        return cls(
            cfg.latent_dim,
            cfg.base_channels,
            cfg.hidden_dim,
            learned_scale=getattr(cfg, "likelihood", "mse") == "logistic",
            kernel_size=cfg.kernel_size,
            stage_mults=cfg.mults("stage_mults"),
        )
