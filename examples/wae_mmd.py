"""A model family written outside the package: the Wasserstein auto-encoder (WAE-MMD).

Tolstikhin et al. 2018: a deterministic encoder z = E(x), a decoder G(z), and the loss

    L = ||G(E(x)) - x||^2 (summed over pixels, mean over the batch) + lambda * MMD(q(z), N(0, I))

where MMD uses the inverse multiquadratics kernel k(a, b) = C / (C + ||a - b||^2), C = 2 D
(the paper's choice for a unit-variance prior). No KL: the codes of the batch, not each image's
posterior, are pushed towards the prior, so decoded prior samples look like the data.

Everything here comes from the public API (``common.api``): a config, a task, the sampler that
``build_sampler`` returns, and one ``register`` call. Sweep it beside the slides' models with
a space file that names this file (docs/own-model.md)::

    plugins = ["wae_mmd.py"]   # relative to the space file
    family = ["vae", "wae", "dcgan"]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torchvision.utils import save_image

from common.api import Family, PriorSampler, Task, TrialConfig, config_field, register


@dataclass(frozen=True)
class WAEConfig(TrialConfig):
    """WAE-MMD: conv widths c-2c-4c (k4, stride 2), a latent of ``latent_dim``, Adam."""

    family: ClassVar[str] = "wae"
    default_metric: ClassVar[str] = "val_classifier_fd"  # a validation metric: what selects
    peak_rss_mb: ClassVar[int] = 1800
    latent_dim: int = config_field(64, lo=1, hi=4096)
    base_channels: int = config_field(32, lo=1, doc="c: the first conv's width")
    lr: float = config_field(1e-3, lo=0.0, lo_open=True, hi=1.0, doc="Adam lr")
    mmd_weight: float = config_field(10.0, lo=0.0, doc="lambda, the MMD penalty's weight")


class WAE(PriorSampler, nn.Module):
    """x (B,3,32,32) -> code (B,D) -> x_hat (B,3,32,32) in [-1, 1]; ``sample`` decodes z ~ N(0, I)."""

    def __init__(self, latent_dim: int, c: int):
        super().__init__()
        self.latent_dim = latent_dim
        act = lambda w: [nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        self.enc = nn.Sequential(
            nn.Conv2d(3, c, 4, 2, 1), *act(c), nn.Conv2d(c, 2 * c, 4, 2, 1), *act(2 * c),
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1), *act(4 * c), nn.Flatten(), nn.Linear(64 * c, latent_dim),
        )  # fmt: skip
        self.dec_fc = nn.Linear(latent_dim, 64 * c)
        self.dec = nn.Sequential(
            *act(4 * c), nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1), *act(2 * c),
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), *act(c), nn.ConvTranspose2d(c, 3, 4, 2, 1), nn.Tanh(),
        )  # fmt: skip

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,32,32) -> the code (B,D): a tensor (a VAE returns (mu, logvar); both keep the protocol)."""
        return self.enc(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B,D) -> (B,3,32,32) in [-1, 1]."""
        return self.dec(self.dec_fc(z).view(z.shape[0], -1, 4, 4))

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode(z)


def mmd_imq(z: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 between codes z (B,D) and prior draws (B,D), inverse multiquadratics kernel."""
    c, n = 2.0 * z.shape[1], len(z)
    k = lambda a, b: c / (c + torch.cdist(a, b).pow(2))
    off = 1 - torch.eye(n, device=z.device)
    within = ((k(z, z) + k(prior, prior)) * off).sum() / (n * (n - 1))
    return within - 2 * k(z, prior).mean()


class WAETask(Task):
    """One epoch of WAE-MMD training; evaluation = the shared sample scores plus the reconstruction error."""

    def __init__(self, cfg: WAEConfig, data, device, generator, classifier: dict | None = None):
        super().__init__(cfg, data, device, generator, classifier)
        self.model = self.place(WAE(cfg.latent_dim, cfg.base_channels))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.models, self.optimizers = {"wae": self.model}, {"wae": self.opt}

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the train subset -> epoch means per image: train_loss, train_recon, train_mmd."""
        self.model.train()
        total, n = torch.zeros(3, device=self.device), 0
        for x in self.train.batches(self.cfg.batch_size, self.generator):
            z = self.model.encode(x)
            recon = (self.model.decode(z) - x).pow(2).sum(dim=(1, 2, 3)).mean()
            mmd = mmd_imq(z, torch.randn(z.shape, generator=self.generator).to(self.device))
            loss = recon + self.cfg.mmd_weight * mmd
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total += torch.stack([loss.detach(), recon.detach(), mmd.detach()]) * len(x)
            n += len(x)
        loss, recon, mmd = (total / max(n, 1)).tolist()
        return {"train_loss": loss, "train_recon": recon, "train_mmd": mmd}

    @torch.no_grad()
    def evaluate(self, split: str = "val", probe: bool = False) -> dict[str, float]:
        """The shared sample scores of the fixed-z samples (``<split>_classifier_fd`` & co.), the
        reconstruction error ``<split>_recon`` of the split's images, and the probe on the codes."""
        self.model.eval()
        images = self.split(split).batches(500, shuffle=False, drop_last=False)
        errors = [(self.model.decode(self.model.encode(x)) - x).pow(2).sum(dim=(1, 2, 3)) for x in images]
        out = {f"{split}_recon": torch.cat(errors).mean().item(), **self.sample_scores(self.samples(), split)}
        if split == "val":
            out.update(self.collapse_flags(out))
        if probe:
            out.update({k: v for k, v in self.probe(split).items() if split == "test" or not k.startswith("test_")})
        return out

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model.decode(z)

    @torch.no_grad()
    def probe_features(self, images: torch.Tensor, net: nn.Module | None = None) -> np.ndarray:
        """uint8 (N,3,32,32) -> the codes (N,D), float32 numpy."""
        model = (net or self.model).eval()
        return torch.cat(
            [model.encode(images[i : i + 500].float() / 127.5 - 1).cpu() for i in range(0, len(images), 500)]
        ).numpy()

    @torch.no_grad()
    def figures(self, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        z = torch.randn(64, self.cfg.latent_dim, generator=torch.Generator().manual_seed(0)).to(self.device)
        save_image(self.generate(z) * 0.5 + 0.5, folder / "samples.png", nrow=8)
        return [folder / "samples.png"]

    def export_state(self) -> dict:
        return {"wae": self.model.state_dict()}

    @staticmethod
    def build_sampler(cfg: WAEConfig, models: dict) -> nn.Module:
        """best.pt's ``model`` dict -> the WAE (``sample``, ``encode``, ``decode``)."""
        model = WAE(cfg.latent_dim, cfg.base_channels)
        model.load_state_dict(models["wae"])
        return model


register(
    Family(
        "wae",
        WAEConfig,
        WAETask,
        "WAE-MMD",
        curve_metrics=("train_recon", "train_mmd", "val_recon", "val_classifier_fd"),
        decodes=True,
        colour="C4",
        probe_on="the code E(x)",
    )
)
