"""Loss functions and the VAE beta schedules: pure functions over tensors.

Per-image quantities are returned as (B,) tensors so callers can log them in nats/image;
the scalar training objectives are batch means.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

BETA_SCHEDULES = ("constant", "linear", "cyclical")


# ---- VAE ----------------------------------------------------------------------------------
def recon_mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Squared error summed over C*H*W: x_hat, x (B,C,H,W) -> (B,).

    A sum (not a mean) over pixels keeps the reconstruction term on the same per-image scale
    as the KL, so beta keeps its beta-VAE meaning.
    """
    return (x_hat - x).pow(2).flatten(1).sum(dim=1)


def _kl_elementwise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per element: (B,D) -> (B,D)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) in nats per image: mu, logvar (B,D) -> (B,)."""
    return _kl_elementwise(mu, logvar).sum(dim=1)


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL per latent dimension, mean over the batch: (B,D) -> (D,). Collapsed dims read ~0."""
    return _kl_elementwise(mu, logvar).mean(dim=0)


def vae_loss(
    x_hat: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L = mean_batch(recon + beta * KL) (seed: 'MSE + beta*KL').

    Args: x_hat, x (B,C,H,W); mu, logvar (B,D); beta >= 0.
    Returns: (loss scalar, recon (B,), kl (B,)); recon and kl keep their graph.
    """
    recon = recon_mse(x_hat, x)
    kl = gaussian_kl(mu, logvar)
    return (recon + beta * kl).mean(), recon, kl


def beta_at(
    epoch: int,
    *,
    schedule: str,
    beta: float,
    max_epochs: int,
    warmup_epochs: int = 10,
    cycles: int = 4,
) -> float:
    """KL weight for 0-based ``epoch``.

    * ``constant``: beta.
    * ``linear``: beta * min(1, (epoch + 1) / warmup_epochs). The weight applies to the
      epoch being trained, so epoch 0 already trains with beta / warmup_epochs (never 0)
      and the full beta is reached at epoch ``warmup_epochs - 1``, i.e. after
      ``warmup_epochs`` epochs of ramp.
    * ``cyclical``: the seed's schedule (Fu et al. 2019 style), ``cycle_len = max_epochs //
      cycles``, ``pos = (epoch % cycle_len) / cycle_len``, beta * min(1, 2 * pos): each cycle
      ramps from 0 over its first half and holds beta over the second. ``cycle_len`` is
      clamped to >= 1 so cycles > max_epochs does not divide by zero (then beta is 0 every
      epoch, as the seed's formula implies for a one-epoch cycle).
    """
    if schedule == "constant":
        return float(beta)
    if schedule == "linear":
        return float(beta) * min(1.0, (epoch + 1) / max(1, warmup_epochs))
    if schedule == "cyclical":
        cycle_len = max(1, max_epochs // max(1, cycles))
        pos = (epoch % cycle_len) / cycle_len
        return float(beta) * min(1.0, 2.0 * pos)
    raise ValueError(f"unknown beta schedule {schedule!r}; choose one of {', '.join(BETA_SCHEDULES)}")


# ---- GAN ----------------------------------------------------------------------------------
def d_loss_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator BCE: mean BCE(D(x), 1) + mean BCE(D(G(z)), 0) -> scalar.

    The two halves are summed, not averaged, as in the DCGAN reference training loop, so
    d_loss at chance (all logits 0) is 2 ln 2. Logits: any shape, e.g. (B,).
    """
    loss_real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    loss_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return loss_real + loss_fake


def g_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: mean BCE(D(G(z)), 1) = -mean log sigmoid(logit) -> scalar.

    Maximising log D(G(z)) instead of minimising log(1 - D(G(z))) keeps gradients alive
    when D confidently rejects the fakes early in training (Goodfellow et al. 2014).
    """
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
