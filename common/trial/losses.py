"""Loss functions and the VAE beta schedules: pure functions over tensors.

Per-image quantities are returned as (B,) tensors so callers can log them in nats/image;
the scalar training objectives are batch means.
"""

from __future__ import annotations

import math
from typing import Callable

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


# Decoder likelihoods on 8-bit images mapped to [-1, 1]: 256 levels 2/255 apart, each pixel's
# probability is the mass of its bin (the extreme bins take the tails), so log-likelihoods are
# of the discrete data and bits/dim compare with the literature (constants included).
BIN_HALF = 1.0 / 255.0
MSE_LOG_SCALE = 0.5 * math.log(0.5)  # log sigma of the Gaussian that MSE-sum implies on [-1, 1]: sigma^2 = 1/2


def _log_diff_exp(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(exp(a) - exp(b)) for a >= b, elementwise, stable."""
    return a + torch.log(-torch.expm1((b - a).clamp(max=-1e-12)))


def discretized_gaussian_nll(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor | float) -> torch.Tensor:
    """-log P(x) in nats per image under N(mean, exp(log_scale)^2) discretised to the 256-level grid:
    x (on the grid), mean (B,C,H,W); log_scale broadcastable (e.g. (C,1,1) or a float) -> (B,)."""
    log_scale = torch.as_tensor(log_scale, dtype=mean.dtype, device=mean.device)
    inv = torch.exp(-log_scale)
    upper, lower = inv * (x - mean + BIN_HALF), inv * (x - mean - BIN_HALF)
    # Mass of [lower, upper] under N(0,1), taken on the side of 0 where the CDF is not ~1.
    right = lower > 0
    hi = torch.where(right, torch.special.log_ndtr(-lower), torch.special.log_ndtr(upper))
    lo = torch.where(right, torch.special.log_ndtr(-upper), torch.special.log_ndtr(lower))
    mid = _log_diff_exp(hi, lo)
    logp = torch.where(
        x < -1 + BIN_HALF,
        torch.special.log_ndtr(upper),
        torch.where(x > 1 - BIN_HALF, torch.special.log_ndtr(-lower), mid),
    )
    return -logp.flatten(1).sum(dim=1)


def discretized_logistic_nll(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """-log P(x) in nats per image under a logistic(mean, exp(log_scale)) discretised to the 256-level
    grid (Salimans et al. 2017, PixelCNN++): x (on the grid), mean (B,C,H,W), log_scale broadcastable -> (B,)."""
    inv = torch.exp(-log_scale)
    centered = x - mean
    plus, minus = inv * (centered + BIN_HALF), inv * (centered - BIN_HALF)
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): the lowest bin
    log_one_minus_cdf_min = -F.softplus(minus)  # log(1 - sigmoid(minus)): the highest bin
    delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = inv * centered
    log_pdf_mid = mid - log_scale - 2.0 * F.softplus(mid) + math.log(2 * BIN_HALF)  # tiny bins: density x width
    inner = torch.where(delta > 1e-5, torch.log(delta.clamp(min=1e-12)), log_pdf_mid)
    logp = torch.where(x < -1 + BIN_HALF, log_cdf_plus, torch.where(x > 1 - BIN_HALF, log_one_minus_cdf_min, inner))
    return -logp.flatten(1).sum(dim=1)


def bits_per_dim(nll: torch.Tensor, kl: torch.Tensor, dims: int = 3 * 32 * 32) -> torch.Tensor:
    """Negative ELBO in bits per dimension: (nll + kl) / (dims * ln 2); nll, kl in nats (B,) -> (B,)."""
    return (nll + kl) / (dims * math.log(2.0))


def _kl_elementwise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per element: (B,D) -> (B,D)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) in nats per image: mu, logvar (B,D) -> (B,)."""
    return _kl_elementwise(mu, logvar).sum(dim=1)


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL per latent dimension, mean over the batch: (B,D) -> (D,). Collapsed dims read ~0."""
    return _kl_elementwise(mu, logvar).mean(dim=0)


def kl_free_bits(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float) -> torch.Tensor:
    """Free-bits KL objective (Kingma et al. 2016, IAF paper, one group per latent dim): scalar.

    sum_d max(free_bits, mean_batch KL_d), in nats per image. This is the standard batch-mean
    variant: the floor applies to each dim's KL averaged over the batch, not per image, so a
    dim is free only while its average use is below ``free_bits``. Dims under the floor get no
    KL gradient (the encoder may spend up to ``free_bits`` nats on each without penalty).
    With free_bits = 0 it equals ``gaussian_kl(mu, logvar).mean()`` (KL_d >= 0). It is a
    training objective only: the logged KL and ELBO must use ``gaussian_kl``.
    """
    if free_bits < 0:
        raise ValueError(f"free_bits must be >= 0, got {free_bits}")
    return kl_per_dim(mu, logvar).clamp(min=free_bits).sum()


def vae_loss(
    x_hat: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float,
    *,
    free_bits: float = 0.0,
    recon: torch.Tensor | None = None,
    perceptual: torch.Tensor | None = None,
    perceptual_weight: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L = mean_batch(recon + beta * KL) (the slides: 'MSE + beta*KL').

    Options (off by default; off leaves the slides' computation bit-identical):
    * ``recon`` (B,): a reconstruction term to use instead of ``recon_mse`` (e.g. a decoder
      likelihood's -log p(x|z), ``discretized_logistic_nll``).
    * ``free_bits`` > 0: the KL term is ``kl_free_bits`` (batch-mean floor per dim).
    * ``perceptual`` (B,) with ``perceptual_weight`` (lambda) > 0 adds lambda * mean(perceptual)
      (the slides: L = MSE + lambda*L_VGG + beta*KL; see common.trial.perceptual).

    Args: x_hat, x (B,C,H,W); mu, logvar (B,D); beta >= 0.
    Returns: (loss scalar, recon (B,), kl (B,)); recon and kl keep their graph and kl is
    always the true KL, whatever ``free_bits`` is.
    """
    recon = recon_mse(x_hat, x) if recon is None else recon
    kl = gaussian_kl(mu, logvar)
    if free_bits > 0:
        loss = recon.mean() + beta * kl_free_bits(mu, logvar, free_bits)
    else:
        loss = (recon + beta * kl).mean()
    if perceptual is not None and perceptual_weight > 0:
        loss = loss + perceptual_weight * perceptual.mean()
    return loss, recon, kl


def lr_factor(step: int, total_steps: int, warmup_steps: int = 0, schedule: str = "constant") -> float:
    """The lr multiplier at 0-based optimiser ``step`` of ``total_steps``: a linear warm-up to 1
    over ``warmup_steps``, then 1 (constant) or a half cosine from 1 to 0 at ``total_steps``."""
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"lr schedule must be constant or cosine, got {schedule!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def beta_at(
    epoch: int,
    *,
    schedule: str,
    beta: float,
    max_epochs: int,
    warmup_epochs: int = 10,
    cycles: int = 4,
    ramp_fraction: float = 0.5,
) -> float:
    """KL weight for 0-based ``epoch``.

    * ``constant``: beta.
    * ``linear``: beta * min(1, (epoch + 1) / warmup_epochs). The weight applies to the
      epoch being trained, so epoch 0 already trains with beta / warmup_epochs (never 0)
      and the full beta is reached at epoch ``warmup_epochs - 1``, i.e. after
      ``warmup_epochs`` epochs of ramp.
    * ``cyclical``: the slides' schedule (Fu et al. 2019 style), ``cycle_len = max_epochs //
      cycles``, ``pos = (epoch % cycle_len) / cycle_len``, beta * min(1, pos / ramp_fraction):
      each cycle ramps from 0 over its first ``ramp_fraction`` and holds beta over the rest.
      ``ramp_fraction`` in (0, 1]; the slides' ``min(1, 2 * pos)`` is 0.5 (the default; x/0.5 and
      2*x are the same float, so the slides' values are reproduced exactly). ``cycle_len`` is
      clamped to >= 1 so cycles > max_epochs does not divide by zero (then beta is 0 every
      epoch, as the slides' formula implies for a one-epoch cycle).
    """
    if schedule == "constant":
        return float(beta)
    if schedule == "linear":
        return float(beta) * min(1.0, (epoch + 1) / max(1, warmup_epochs))
    if schedule == "cyclical":
        cycle_len = max(1, max_epochs // max(1, cycles))
        if not 0.0 < ramp_fraction <= 1.0:
            raise ValueError(f"ramp_fraction must be in (0, 1], got {ramp_fraction}")
        pos = (epoch % cycle_len) / cycle_len
        return float(beta) * min(1.0, pos / ramp_fraction)
    raise ValueError(f"unknown beta schedule {schedule!r}; choose one of {', '.join(BETA_SCHEDULES)}")


def beta_settled_epoch(
    *, schedule: str, max_epochs: int, warmup_epochs: int = 10, cycles: int = 4, ramp_fraction: float = 0.5, **_
) -> int:
    """The 1-based epoch from which ``beta_at`` stays at its final value to the end of training.

    Objectives measured before it are inflated by a KL weighted below its final value, so ASHA
    must not compare a trial on them (``common.sweep.tuning.ScheduleAwareASHA``). constant: 1; linear:
    ``warmup_epochs``; cyclical: where the last cycle's ramp ends (so cycles reaching their peak
    earlier do not count: each new cycle restarts at 0).
    """
    kw = dict(
        schedule=schedule,
        beta=1.0,
        max_epochs=max_epochs,
        warmup_epochs=warmup_epochs,
        cycles=cycles,
        ramp_fraction=ramp_fraction,
    )
    final = beta_at(max_epochs - 1, **kw)
    epoch = max_epochs
    while epoch > 1 and beta_at(epoch - 2, **kw) == final:
        epoch -= 1
    return epoch


# ---- GAN ----------------------------------------------------------------------------------
def d_loss_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Discriminator BCE: mean BCE(D(x), 1 - s) + mean BCE(D(G(z)), 0) -> scalar.

    The two halves are summed, not averaged, as in the DCGAN reference training loop, so
    d_loss at chance (all logits 0) is 2 ln 2. Logits: any shape, e.g. (B,).
    ``label_smoothing`` s in [0, 0.5) is one-sided (Salimans et al. 2016): only the real
    target becomes 1 - s, the fake target stays 0 (smoothing it too would reward G's samples
    where the data has no mass). s = 0 is the plain loss, bit for bit.
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    real_target = (
        torch.ones_like(real_logits) if label_smoothing == 0 else torch.full_like(real_logits, 1.0 - label_smoothing)
    )
    loss_real = F.binary_cross_entropy_with_logits(real_logits, real_target)
    loss_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return loss_real + loss_fake


def g_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: mean BCE(D(G(z)), 1) = -mean log sigmoid(logit) -> scalar.

    Maximising log D(G(z)) instead of minimising log(1 - D(G(z))) keeps gradients alive
    when D confidently rejects the fakes early in training (Goodfellow et al. 2014).
    """
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def d_loss_hinge(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss (Lim & Ye 2017; Miyato et al. 2018) -> scalar.

    mean relu(1 - D(x)) + mean relu(1 + D(G(z))): zero once real scores are >= 1 and fake
    scores <= -1, so a D that already separates with margin gets no gradient (and d_loss can
    legitimately be 0). Scores: raw D outputs, any shape.
    """
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def g_loss_hinge(fake_scores: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss: -mean D(G(z)) -> scalar (the same as the WGAN one)."""
    return -fake_scores.mean()


def d_loss_wgan(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss: mean D(G(z)) - mean D(x) -> scalar, the negative of the critic's
    Wasserstein-1 estimate. Add ``gp_weight * gradient_penalty(...)`` for WGAN-GP."""
    return fake_scores.mean() - real_scores.mean()


def g_loss_wgan(fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss: -mean D(G(z)) -> scalar."""
    return -fake_scores.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP two-sided penalty (Gulrajani et al. 2017): mean_i (||grad_x D(x_i^)||_2 - 1)^2 -> scalar.

    x^ = e * real + (1 - e) * fake with one e ~ U(0, 1) per sample (drawn from ``generator``,
    else the global RNG, on ``real``'s device). real, fake (B, ...) are detached here: the
    penalty trains only the critic. The gradient is per sample only if the critic treats samples
    independently: BatchNorm or minibatch discrimination in D couple the batch, which is why
    ``d_norm=auto`` drops D's BatchNorm for wgan-gp. The result keeps its graph
    (``create_graph``) so it can be added to the critic loss and back-propagated.
    """
    real, fake = real.detach(), fake.detach()
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {tuple(real.shape)} and fake {tuple(fake.shape)} differ")
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
    x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): mean_i ||grad_x D(x_i)||^2 at the real images -> scalar; D's
    loss adds ``gamma / 2`` times it. Penalising D's slope on the data keeps it from growing
    sharp around the real images, the instability this regulariser was shown to damp.
    real (B, ...) is detached here; the result keeps its graph (``create_graph``)."""
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).float().sum(), x, create_graph=True)
    return grad.flatten(1).square().sum(1).mean()
