"""DCGAN generator and discriminator for 32x32 RGB images in [-1, 1].

Layer tables (seed slides, 'Technical Details')::

    Generator                                   Discriminator
    z (B,latent)                                x (B,3,32,32)
      [Linear(h) + BN1d + ReLU]                   Conv(3->c)   + LReLU(0.2)      (B,c,16,16)
      Linear -> (B,c,4,4) + BN + ReLU             Conv(c->2c)  + BN + LReLU(0.2) (B,2c,8,8)
      ConvT(c->c)    + BN + ReLU  (B,c,8,8)       Conv(2c->4c) + BN + LReLU(0.2) (B,4c,4,4)
      ConvT(c->c/2)  + BN + ReLU  (B,c/2,16,16)   flatten [-> Linear(h) + LReLU(0.2)]
      ConvT(c/2->3)  + Tanh       (B,3,32,32)     Linear -> 1 logit              (B,)

What the slides left open, and what was chosen:

* Kernel/stride/padding: not given. Kernel 4, stride 2, padding 1 (Radford et al. 2016).
* Hidden FC layers: not given. The plain tables count 0.60M (G) and 0.66M (D), far from the
  reported 1.24M / 2.76M. A hidden FC of 384 units before G's 4x4 map gives 1.22M (-1.4%;
  ``g_hidden=392`` would give 1.240M) and one of 512 units before D's logit gives 2.76M
  (-0.1%). ``g_hidden=0`` / ``d_hidden=0`` remove them.
* G's hidden FC uses Linear + BatchNorm1d + ReLU: DCGAN puts BN after every generator layer
  except the output, so the extra layer follows the same rule. D's hidden FC is
  Linear + LeakyReLU without BN, like D's first layer (BN in D's head would couple the
  logits of a batch, which the loss then sees through).
* Biases: layers followed by BN carry no bias (BN's shift makes it redundant), and, as in
  the DCGAN reference code, neither does D's first conv; the Linear layers keep theirs.
* Initialisation: ``dcgan_init`` (N(0, 0.02) weights, BN scale N(1, 0.02), zero biases) is
  applied by both constructors.
"""
from __future__ import annotations

import torch
from torch import nn


def dcgan_init(module: nn.Module) -> None:
    """DCGAN weight init for one module; use as ``net.apply(dcgan_init)``."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z (B,latent_dim) -> images (B,3,32,32) in [-1, 1].

    Args:
        latent_dim: size of z.
        g_channels: widths c, c, c/2 of the 4x4, 8x8 and 16x16 maps.
        g_hidden: width of the hidden FC before the 4x4 map; 0 = none.
    """

    def __init__(self, latent_dim: int = 100, g_channels: int = 128, g_hidden: int = 384):
        super().__init__()
        c, half = g_channels, max(1, g_channels // 2)
        self.latent_dim = latent_dim
        self.g_channels = c
        if g_hidden > 0:
            self.hidden = nn.Sequential(
                nn.Linear(latent_dim, g_hidden, bias=False), nn.BatchNorm1d(g_hidden), nn.ReLU(inplace=True)
            )
            fc_in = g_hidden
        else:
            self.hidden = nn.Identity()
            fc_in = latent_dim
        self.fc = nn.Linear(fc_in, 4 * 4 * c, bias=False)
        self.net = nn.Sequential(
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c, c, 4, 2, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c, half, 4, 2, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(half, 3, 4, 2, 1, bias=False),
            nn.Tanh(),
        )
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B,latent_dim) -> (B,3,32,32)."""
        h = self.fc(self.hidden(z)).view(z.shape[0], self.g_channels, 4, 4)
        return self.net(h)

    def sample(
        self, n: int, device: torch.device | str | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Generate n images from z ~ N(0, I) -> (n,3,32,32)."""
        if device is None:
            device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return self(z)


class Discriminator(nn.Module):
    """images (B,3,32,32) -> real/fake logits (B,) (pre-sigmoid).

    Args:
        d_channels: conv widths c, 2c, 4c.
        d_hidden: width of the hidden FC before the logit; 0 = none.
    """

    def __init__(self, d_channels: int = 64, d_hidden: int = 512):
        super().__init__()
        c = d_channels
        self.d_channels = c
        self.blocks = nn.ModuleList([
            nn.Sequential(nn.Conv2d(3, c, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)),
            nn.Sequential(
                nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2, inplace=True)
            ),
            nn.Sequential(
                nn.Conv2d(2 * c, 4 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * c), nn.LeakyReLU(0.2, inplace=True)
            ),
        ])
        flat = 4 * 4 * 4 * c
        if d_hidden > 0:
            self.hidden = nn.Sequential(nn.Linear(flat, d_hidden), nn.LeakyReLU(0.2, inplace=True))
            out_in = d_hidden
        else:
            self.hidden = None
            out_in = flat
        self.out = nn.Linear(out_in, 1)
        self.apply(dcgan_init)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer activations, input to logit.

        Returns [(B,c,16,16), (B,2c,8,8), (B,4c,4,4)] plus (B,d_hidden) when the hidden FC
        exists. The tensors keep the autograd graph; wrap in ``torch.no_grad`` for probes.
        """
        feats = []
        h = x
        for block in self.blocks:
            h = block(h)
            feats.append(h)
        if self.hidden is not None:
            feats.append(self.hidden(h.flatten(1)))
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,32,32) -> logits (B,)."""
        return self.out(self.features(x)[-1].flatten(1)).squeeze(1)
