"""Conv-VAE task: L = MSE (summed over pixels, mean over batch) + beta(epoch) * KL."""
from __future__ import annotations

from pathlib import Path

import torch

from common.config import VAEConfig
from common.data import to_unit_range
from common.figures import save_image_grid
from common.losses import beta_at, gaussian_kl, recon_mse, vae_loss
from common.metrics import active_units, linear_probe
from common.models import ConvVAE
from common.tasks.base import Task

EVAL_BATCH = 1000


class VAETask(Task):
    cfg: VAEConfig

    def __init__(self, cfg: VAEConfig, data, device, generator):
        super().__init__(cfg, data, device, generator)
        self.model = ConvVAE(cfg.latent_dim, cfg.base_channels, cfg.hidden_dim).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.models, self.optimizers = {"vae": self.model}, {"vae": self.opt}

    def beta(self, epoch: int) -> float:
        c = self.cfg
        return beta_at(epoch, schedule=c.beta_schedule, beta=c.beta, max_epochs=c.max_epochs,
                       warmup_epochs=c.warmup_epochs, cycles=c.cycles)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the train subset; returns epoch means (per image)."""
        beta = self.beta(epoch)
        self.model.train()
        total = torch.zeros(3, device=self.device)  # loss, recon, kl sums; one sync per epoch
        n = 0
        for x in self.train.batches(self.cfg.batch_size, self.generator):
            x_hat, mu, logvar = self.model(x)
            loss, recon, kl = vae_loss(x_hat, x, mu, logvar, beta)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total += torch.stack([loss.detach() * len(x), recon.detach().sum(), kl.detach().sum()])
            n += len(x)
        loss, recon, kl = (total / max(n, 1)).tolist()
        return {"train_loss": loss, "train_recon": recon, "train_kl": kl, "beta": beta}

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
        out = {
            "test_recon": recon_sum / n,
            "test_kl": kl_sum / n,
            "test_elbo": (recon_sum + kl_sum) / n,
            "active_units": float(active_units(torch.cat(mus))),
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
