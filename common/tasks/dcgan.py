"""DCGAN task: non-saturating BCE, Adam(beta1), TTUR via ``lr_ratio = lr_D / lr_G``."""
from __future__ import annotations

from pathlib import Path

import torch

from common.config import DCGANConfig
from common.figures import save_image_grid
from common.losses import d_loss_bce, g_loss_nonsaturating
from common.models import Discriminator, Generator
from common.tasks.base import Task


class DCGANTask(Task):
    cfg: DCGANConfig

    def __init__(self, cfg: DCGANConfig, data, device, generator):
        super().__init__(cfg, data, device, generator)
        self.g = Generator(cfg.latent_dim, cfg.g_channels, cfg.g_hidden).to(device)
        self.d = Discriminator(cfg.d_channels, cfg.d_hidden).to(device)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=cfg.lr_d, betas=betas)
        self.models = {"g": self.g, "d": self.d}
        self.optimizers = {"g": self.opt_g, "d": self.opt_d}

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the train subset: a D step then a G step per batch; epoch means."""
        self.g.train()
        self.d.train()
        total = torch.zeros(4, device=self.device)  # d_loss, g_loss, D(x), D(G(z)); one sync per epoch
        steps = 0
        for real in self.train.batches(self.cfg.batch_size, self.generator):
            z = torch.randn(len(real), self.cfg.latent_dim, device=self.device)
            fake = self.g(z)
            real_logits = self.d(real)
            fake_logits = self.d(fake.detach())
            d_loss = d_loss_bce(real_logits, fake_logits)
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()

            g_loss = g_loss_nonsaturating(self.d(fake))
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_g.step()

            total += torch.stack([d_loss.detach(), g_loss.detach(),
                                  torch.sigmoid(real_logits.detach()).mean(),
                                  torch.sigmoid(fake_logits.detach()).mean()])
            steps += 1
        d_loss, g_loss, d_real, d_fake = (total / max(steps, 1)).tolist()
        return {"d_loss": d_loss, "g_loss": g_loss, "loss_ratio": g_loss / d_loss if d_loss else float("inf"),
                "d_real": d_real, "d_fake": d_fake}

    @torch.no_grad()
    def evaluate(self, probe: bool) -> dict[str, float]:
        """Sample quality of ``eval_samples`` generated images vs the test split.

        The GAN linear probe (on D features) arrives with the evaluation suite; ``probe``
        is accepted so both tasks share the loop.
        """
        self.g.eval()
        return {"sample_fd": self.sample_quality(self.g.sample(self.cfg.eval_samples, self.device))}

    @torch.no_grad()
    def figures(self, folder: Path) -> list[Path]:
        self.g.eval()
        g = torch.Generator(device="cpu").manual_seed(0)  # fixed z: figures comparable across epochs
        z = torch.randn(64, self.cfg.latent_dim, generator=g).to(self.device)
        return [save_image_grid(self.g(z), folder / "samples.png", nrow=8)]

    def export_state(self) -> dict:
        return {"g": self.g.state_dict(), "d": self.d.state_dict()}

    def export_model(self) -> torch.nn.Module:
        return self.g
