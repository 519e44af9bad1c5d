"""``sample`` for every model that maps a standard-normal latent to images (the DCGAN's generator,
the Conv-VAE's decoder): one place that draws z."""

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
