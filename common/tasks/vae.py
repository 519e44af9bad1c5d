"""Conv-VAE task: L = MSE (summed over pixels, mean over batch) + beta(epoch) * KL.

Optional mitigations (VAEConfig, off by default): free bits on the training KL, a perceptual
term lambda * L_perc (common.perceptual); evaluation adds a posterior-collapse flag.
"""
from __future__ import annotations

from pathlib import Path

import torch

from common.config import VAEConfig
from common.data import to_unit_range
from common.figures import save_image_grid
from common.losses import beta_at, gaussian_kl, recon_mse, vae_loss
from common.metrics import active_units, linear_probe
from common.models import ConvVAE
from common.perceptual import build_perceptual, perceptual_distance
from common.tasks.base import Task

EVAL_BATCH = 1000
COLLAPSE_KL = 1.0  # nats/image: a test KL below this means the latent carries ~nothing
COLLAPSE_ACTIVE = 0.1  # fraction of latent dims: fewer active units than this = collapsed


class VAETask(Task):
    cfg: VAEConfig

    def __init__(self, cfg: VAEConfig, data, device, generator):
        super().__init__(cfg, data, device, generator)
        self.model = self.place(ConvVAE(cfg.latent_dim, cfg.base_channels, cfg.hidden_dim))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.models, self.optimizers = {"vae": self.model}, {"vae": self.opt}
        # Built (and its weights checked: ConfigError) before any training; frozen, not in models.
        self.perceptual = (build_perceptual(cfg.perceptual_net, cfg.perceptual_weights).to(device)
                           if cfg.perceptual_weight > 0 else None)

    def beta(self, epoch: int) -> float:
        c = self.cfg
        return beta_at(epoch, schedule=c.beta_schedule, beta=c.beta, max_epochs=c.max_epochs,
                       warmup_epochs=c.warmup_epochs, cycles=c.cycles, ramp_fraction=c.ramp_fraction)

    def tags(self) -> dict[str, str]:
        """Run tags describing the loss (for MLflow/the report); empty when no perceptual term."""
        if self.perceptual is None:
            return {}
        out = {"perceptual_net": self.perceptual.name}
        if getattr(self.perceptual, "shares_eval_features", False):
            out["metric_bias"] = ("sample_fd uses the same randconv features as the perceptual loss: "
                                  "its sample_fd is biased in its favour")
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
            loss, recon, kl = vae_loss(x_hat, x, mu, logvar, beta, free_bits=c.free_bits,
                                       perceptual=perc, perceptual_weight=c.perceptual_weight)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
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

    @torch.no_grad()
    def encode_mu(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N,3,32,32) on device -> mu (N,D) on CPU, in eval batches."""
        self.model.eval()
        return torch.cat([self.model.encode(to_unit_range(images[i:i + EVAL_BATCH]))[0].cpu()
                          for i in range(0, len(images), EVAL_BATCH)])

    @torch.no_grad()
    def evaluate(self, probe: bool) -> dict[str, float]:
        """Test split, all images: the true ELBO (beta = 1), its parts, active units, samples."""
        self.model.eval()
        recon_sum = kl_sum = 0.0
        mus = []
        for i in range(0, len(self.test.x), EVAL_BATCH):
            x = to_unit_range(self.test.x[i:i + EVAL_BATCH])
            mu, logvar = self.model.encode(x)
            # Reconstruct from the posterior mean: a deterministic, lower-variance estimate
            # would understate the loss, so sample z as in training (seeded global RNG).
            z = self.model.reparameterize(mu, logvar)
            recon_sum += recon_mse(self.model.decode(z), x).sum().item()
            kl_sum += gaussian_kl(mu, logvar).sum().item()
            mus.append(mu.cpu())
        n = len(self.test.x)
        units = active_units(torch.cat(mus))
        out = {
            "test_recon": recon_sum / n,
            "test_kl": kl_sum / n,
            "test_elbo": (recon_sum + kl_sum) / n,
            "active_units": float(units),
            "posterior_collapse": collapse_flag(kl_sum / n, units, self.cfg.latent_dim),
            "sample_fd": self.sample_quality(self.model.sample(self.cfg.eval_samples, self.device)),
        }
        if probe:
            out["probe_acc"] = linear_probe(
                self.encode_mu(self.train.x).numpy(), self.train.y.cpu().numpy(),
                torch.cat(mus).numpy(), self.test.y.cpu().numpy(), seed=self.cfg.seed)
        return out

    @torch.no_grad()
    def figures(self, folder: Path) -> list[Path]:
        self.model.eval()
        g = torch.Generator(device="cpu").manual_seed(0)  # same images/noise in every figure set
        pick = torch.randperm(len(self.test.x), generator=g)[:16].to(self.device)
        x = to_unit_range(self.test.x[pick])
        mu, _ = self.model.encode(x)
        recon = self.model.decode(mu)
        pairs = torch.stack([x, recon], 1).flatten(0, 1)  # original, reconstruction, ...
        steps = torch.linspace(0, 1, 10, device=self.device)
        a, b = mu[:8], mu[8:16]
        interp = self.model.decode((a[:, None] * (1 - steps[None, :, None]) + b[:, None] * steps[None, :, None]).flatten(0, 1))
        z = torch.randn(64, self.cfg.latent_dim, generator=g).to(self.device)
        return [
            save_image_grid(pairs, folder / "reconstructions.png", nrow=8),
            save_image_grid(interp, folder / "interpolations.png", nrow=10),
            save_image_grid(self.model.decode(z), folder / "samples.png", nrow=8),
        ]

    def export_state(self) -> dict:
        return {"vae": self.model.state_dict()}

    def export_model(self) -> torch.nn.Module:
        return self.model


def collapse_flag(test_kl: float, active: int, latent_dim: int) -> float:
    """Posterior-collapse detector: 1.0 if the true test KL < COLLAPSE_KL nats/image or fewer
    than COLLAPSE_ACTIVE * latent_dim units are active (Var_x E_q[z] > 0.01), else 0.0."""
    return float(test_kl < COLLAPSE_KL or active < COLLAPSE_ACTIVE * latent_dim)
