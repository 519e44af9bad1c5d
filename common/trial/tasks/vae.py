"""Conv-VAE task: L = MSE (summed over pixels, mean over batch) + beta(epoch) * KL.

Optional mitigations (VAEConfig, off by default): free bits on the training KL, a perceptual
term lambda * L_perc (common.trial.perceptual), and ``likelihood = "logistic"`` (the reconstruction
term becomes a discretised logistic's -log p(x|z), so beta = 1 trains a true ELBO). Evaluation
(``evaluate``) reports both the slides' MSE + KL and the negative ELBO in bits/dim, and adds a
posterior-collapse flag.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.base.data import to_unit_range
from common.base.figures import save_image_grid
from common.metrics.maths import active_units
from common.trial.config import VAEConfig
from common.trial.losses import (
    MSE_LOG_SCALE,
    beta_at,
    beta_settled_epoch,
    bits_per_dim,
    discretized_gaussian_nll,
    discretized_logistic_nll,
    gaussian_kl,
    lr_factor,
    recon_mse,
    vae_loss,
)
from common.trial.models import ConvVAE
from common.trial.perceptual import build_perceptual, perceptual_distance
from common.trial.tasks.base import Task

EVAL_BATCH = 1000
COLLAPSE_KL = 1.0  # nats/image: a test KL below this means the latent carries ~nothing
COLLAPSE_ACTIVE = 0.1  # fraction of latent dims: fewer active units than this = collapsed
LOG_SCALE_MIN = -7.0  # floor of the learned logistic log-scale: a bin is 2/255 wide, exp(-7) ~ 1/8 of it


class VAETask(Task):
    cfg: VAEConfig
    COLLAPSE_FLAGS = ("mode_collapse", "posterior_collapse")

    def __init__(self, cfg: VAEConfig, data, device, generator, classifier: dict | None = None):
        super().__init__(cfg, data, device, generator, classifier)
        self.model = self.place(ConvVAE.for_config(cfg))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.models, self.optimizers = {"vae": self.model}, {"vae": self.opt}
        self.lr_steps = None  # a per-step lr schedule (lr_schedule, lr_warmup_epochs); none = the slides' constant
        if cfg.lr_schedule != "constant" or cfg.lr_warmup_epochs:
            per_epoch = self.train.num_batches(cfg.batch_size)
            self.lr_steps = torch.optim.lr_scheduler.LambdaLR(
                self.opt,
                lambda step: lr_factor(
                    step, cfg.max_epochs * per_epoch, round(cfg.lr_warmup_epochs * per_epoch), cfg.lr_schedule
                ),
            )
            self.optimizers["lr_schedule"] = self.lr_steps  # checkpointed with the optimizer: a restore continues it
        # Built (and its weights checked: ConfigError) before any training; frozen, not in models.
        self.perceptual = (
            build_perceptual(cfg.perceptual_net, cfg.perceptual_weights).to(device)
            if cfg.perceptual_weight > 0
            else None
        )

    def beta(self, epoch: int) -> float:
        c = self.cfg
        return beta_at(
            epoch,
            schedule=c.beta_schedule,
            beta=c.beta,
            max_epochs=c.max_epochs,
            warmup_epochs=c.warmup_epochs,
            cycles=c.cycles,
            ramp_fraction=c.ramp_fraction,
        )

    def settled(self, epoch: int) -> bool:
        c = self.cfg
        return epoch + 1 >= beta_settled_epoch(
            schedule=c.beta_schedule,
            max_epochs=c.max_epochs,
            warmup_epochs=c.warmup_epochs,
            cycles=c.cycles,
            ramp_fraction=c.ramp_fraction,
        )

    def tags(self) -> dict[str, str]:
        """Run tags describing the loss (for MLflow/the report); empty when no perceptual term."""
        if self.perceptual is None:
            return {}
        out = {"perceptual_net": self.perceptual.name}
        if getattr(self.perceptual, "shares_eval_features", False):
            out["metric_bias"] = (
                "val_randconv_fd uses the same randconv features as the perceptual loss: "
                "its randconv_fd is biased in its favour (val_classifier_fd is not)"
            )
        return out

    def perceptual_term(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        """(B,) perceptual distance of x_hat to x (gradient to x_hat only); None when off."""
        if self.perceptual is None:
            return None
        with torch.no_grad():
            target = self.perceptual(x)
        return perceptual_distance(self.perceptual(x_hat), target)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the train subset; returns epoch means (per image)."""
        beta = self.beta(epoch)
        self.model.train()
        c = self.cfg
        # loss, recon, kl (, perceptual) sums; one sync per epoch
        total = torch.zeros(3 + (self.perceptual is not None), device=self.device)
        n = 0
        for x in self.train.batches(self.cfg.batch_size, self.generator):
            with self.autocast():
                x_hat, mu, logvar = self.model(x)
            x_hat, mu, logvar = x_hat.float(), mu.float(), logvar.float()
            perc = self.perceptual_term(x_hat, x)
            nll = self.recon_nll(x_hat, x) if c.likelihood != "mse" else None  # mse: the slides' loss exactly
            loss, recon, kl = vae_loss(
                x_hat,
                x,
                mu,
                logvar,
                beta,
                free_bits=c.free_bits,
                recon=nll,
                perceptual=perc,
                perceptual_weight=c.perceptual_weight,
            )
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if self.lr_steps is not None:
                self.lr_steps.step()
            parts = [loss.detach() * len(x), recon.detach().sum(), kl.detach().sum()]
            if perc is not None:
                parts.append(perc.detach().sum())
            total += torch.stack(parts)
            n += len(x)
        means = (total / max(n, 1)).tolist()
        out = {"train_loss": means[0], "train_recon": means[1], "train_kl": means[2], "beta": beta}
        if self.perceptual is not None:
            out["train_perceptual"] = means[3]  # unweighted L_perc per image
        return out

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, latent_dim) -> decoded prior samples (N,3,32,32) in [-1, 1]."""
        self.model.eval()
        return self.model.decode(z)

    @torch.no_grad()
    def probe_features(self, images: torch.Tensor, net: nn.Module | None = None) -> np.ndarray:
        """uint8 (N,3,32,32) on device -> mu (N,D), float32 numpy: the encoder (``net``, default the
        trial's) with BatchNorm statistics of the real train subset (``Task.real_bn``)."""
        enc = self.real_bn(net or self.model, lambda m, x: m.encode(x))
        return torch.cat(
            [enc.encode(to_unit_range(images[i : i + EVAL_BATCH]))[0].cpu() for i in range(0, len(images), EVAL_BATCH)]
        ).numpy()

    def recon_nll(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x | z) in nats per image (B,) under the decoder likelihood (``likelihood``): the
        discretised Gaussian that MSE-sum implies (sigma^2 = 1/2), or the learned discretised logistic."""
        if getattr(self.cfg, "likelihood", "mse") == "logistic":
            return discretized_logistic_nll(x, x_hat, self.model.log_scale.clamp(min=LOG_SCALE_MIN))
        return discretized_gaussian_nll(x, x_hat, MSE_LOG_SCALE)

    @torch.no_grad()
    def evaluate(self, split: str = "val", probe: bool = False) -> dict[str, float]:
        """All images of ``split`` ("val" per epoch; "test" only for the best checkpoint at the end),
        with beta = 1 whatever the training beta, in nats per image (prefix ``<split>_``):

        ``recon`` (squared error summed over the 3,072 pixel values, the slides' reconstruction),
        ``kl``, ``mse_kl`` = recon + kl (what the slides call the ELBO: a negative ELBO only up to
        the constants of a Gaussian decoder with sigma^2 = 1/2), ``nll`` (-log p(x|z) under the
        decoder likelihood, discretised to the 8-bit data, constants included) and ``bpd`` =
        (nll + kl) / (3072 ln 2), a true negative ELBO in bits per dimension; ``active_units``; the
        sample scores of the fixed-z prior samples (``Task.sample_scores``); ``probe_acc`` when
        ``probe``. On val also the detectors ``posterior_collapse`` and ``mode_collapse``.
        """
        self.model.eval()
        data = self.split(split)
        g = torch.Generator().manual_seed(self.cfg.seed)  # the same posterior noise every evaluation
        sums = torch.zeros(3, dtype=torch.float64)
        mus = []
        for i in range(0, len(data), EVAL_BATCH):
            x = to_unit_range(data.x[i : i + EVAL_BATCH])
            mu, logvar = self.model.encode(x)
            # A posterior sample, as in training, not the mean: the mean would understate the loss.
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g).to(mu.device)
            x_hat = self.model.decode(z)
            sums += (
                torch.stack([recon_mse(x_hat, x).sum(), gaussian_kl(mu, logvar).sum(), self.recon_nll(x_hat, x).sum()])
                .cpu()
                .double()
            )
            mus.append(mu.cpu())
        recon, kl, nll = (sums / len(data)).tolist()
        units = active_units(torch.cat(mus))
        p = f"{split}_"
        out = {
            p + "recon": recon,
            p + "kl": kl,
            p + "mse_kl": recon + kl,
            p + "nll": nll,
            p + "bpd": bits_per_dim(torch.tensor(nll), torch.tensor(kl)).item(),
            p + "active_units": float(units),
            **self.sample_scores(self.samples(), split),
        }
        if split == "val":
            out["posterior_collapse"] = collapse_flag(kl, units, self.cfg.latent_dim)
            out.update(self.collapse_flags(out))
        if probe:
            out.update({k: v for k, v in self.probe(split).items() if split == "test" or not k.startswith("test_")})
        return out

    @torch.no_grad()
    def figures(self, folder: Path) -> list[Path]:
        self.model.eval()
        g = torch.Generator(device="cpu").manual_seed(0)  # same images/noise in every figure set
        pick = torch.randperm(len(self.val.x), generator=g)[:16].to(self.device)
        x = to_unit_range(self.val.x[pick])
        mu, _ = self.model.encode(x)
        recon = self.model.decode(mu)
        pairs = torch.stack([x, recon], 1).flatten(0, 1)  # original, reconstruction, ...
        steps = torch.linspace(0, 1, 10, device=self.device)
        a, b = mu[:8], mu[8:16]
        interp = self.model.decode(
            (a[:, None] * (1 - steps[None, :, None]) + b[:, None] * steps[None, :, None]).flatten(0, 1)
        )
        z = torch.randn(64, self.cfg.latent_dim, generator=g).to(self.device)
        return [
            save_image_grid(pairs, folder / "reconstructions.png", nrow=8),
            save_image_grid(interp, folder / "interpolations.png", nrow=10),
            save_image_grid(self.model.decode(z), folder / "samples.png", nrow=8),
        ]

    def export_state(self) -> dict:
        return {"vae": self.model.state_dict()}

    @staticmethod
    def build_sampler(cfg: VAEConfig, models: dict) -> nn.Module:
        """best.pt's ``model`` dict -> the ConvVAE (decodes z ~ N(0, I) into (n,3,32,32) samples)."""
        model = ConvVAE.for_config(cfg)
        model.load_state_dict(models["vae"])
        return model


def collapse_flag(test_kl: float, active: int, latent_dim: int) -> float:
    """Posterior-collapse detector: 1.0 if the true test KL < COLLAPSE_KL nats/image or fewer
    than COLLAPSE_ACTIVE * latent_dim units are active (Var_x E_q[z] > 0.01), else 0.0."""
    return float(test_kl < COLLAPSE_KL or active < COLLAPSE_ACTIVE * latent_dim)
