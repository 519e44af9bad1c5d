"""The model protocol every family's sampler keeps, and ``sample`` for those that map a
standard-normal latent to images (the DCGAN's generator, the Conv-VAE's decoder): one place that
draws z.

Every sampler (``Task.build_sampler``'s module) has ``sample(n, device) -> (n, 3, 32, 32)`` in
[-1, 1]. A family that decodes (``Family.decodes``) also has ``encode(x)``, x (B, 3, 32, 32) ->
its code (B, D), or a tuple whose first element is the code (a VAE's (mu, logvar): the
posterior mean), and ``decode(code) -> (B, 3, 32, 32)``; ``code_of`` reads either form.
"""

from __future__ import annotations

import torch


class PriorSampler:
    """Mixin for an ``nn.Module`` with ``latent_dim`` and ``from_latent(z)``: z (n, latent_dim) ->
    images (n, 3, 32, 32) in [-1, 1]."""

    latent_dim: int

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(
        self, n: int, device: torch.device | str | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Generate n images from z ~ N(0, I) (drawn with ``generator`` on ``device``, by default
        the model's) -> (n, 3, 32, 32) in [-1, 1]."""
        if device is None:
            device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return self.from_latent(z)


def code_of(encoded) -> torch.Tensor:
    """What ``encode`` returned -> the code (B, D): the tensor itself, or a tuple's first element."""
    return encoded[0] if isinstance(encoded, (tuple, list)) else encoded
