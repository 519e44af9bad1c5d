"""DCGAN task: non-saturating BCE, Adam(beta1), TTUR via ``lr_ratio = lr_D / lr_G``.

Failure-mode options (DCGANConfig, all off by default; off is the slides' computation, bit for
bit): ``gan_loss`` bce | hinge | wgan-gp (+ ``gp_weight``), ``n_critic`` D steps per G step,
one-sided ``label_smoothing``, ``spectral_norm`` / ``d_norm`` / ``minibatch_disc`` in D
(common.trial.models.dcgan). Levers beyond the slides, also off by default: ``ema_decay`` (G's EMA
samples, is scored and is exported), ``diffaug`` (DiffAugment before every D call, real and
fake, common.trial.augment), ``r1_weight`` (R1 on the real images). Detectors logged every epoch (common.trial.diagnostics): ``grad_norm_d``,
``grad_norm_g``, ``loss_ratio`` (bce only), ``val_class_coverage``, ``mode_collapse``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from common.base.data import to_unit_range
from common.base.figures import save_image_grid
from common.trial.augment import diff_augment, parse_policy
from common.trial.config import ConfigError, DCGANConfig
from common.trial.diagnostics import grad_total_norm
from common.trial.losses import (
    d_loss_bce,
    d_loss_hinge,
    d_loss_wgan,
    g_loss_hinge,
    g_loss_nonsaturating,
    g_loss_wgan,
    gradient_penalty,
    r1_penalty,
)
from common.trial.models import Discriminator, Generator
from common.trial.tasks.base import Task

EVAL_BATCH = 500  # images per no-grad forward pass in evaluation


RATIO_WINDOW = 5  # epochs in loss_ratio_window


class DCGANTask(Task):
    cfg: DCGANConfig

    def __init__(self, cfg: DCGANConfig, data, device, generator, classifier: dict | None = None):
        super().__init__(cfg, data, device, generator, classifier)
        self.g = self.place(Generator.for_config(cfg))
        self.d = self.place(Discriminator.for_config(cfg))
        if self.train.num_batches(cfg.batch_size) < cfg.n_critic:
            raise ConfigError(
                f"n_critic={cfg.n_critic} is more than the {self.train.num_batches(cfg.batch_size)} "
                "batches of an epoch, so G would never train; lower n_critic or batch_size"
            )
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=cfg.lr_d, betas=betas)
        self.models = {"g": self.g, "d": self.d}
        self.optimizers = {"g": self.opt_g, "d": self.opt_d}
        # EMA of G: torch's AveragedModel (BatchNorm buffers averaged too); its first update copies G.
        self.g_ema = (
            AveragedModel(self.g, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
            if cfg.ema_decay
            else None
        )
        self.policy = parse_policy(cfg.diffaug)

    @property
    def sampler(self) -> torch.nn.Module:
        """The G that samples, is scored and is exported: the EMA copy when ``ema_decay`` > 0."""
        return self.g_ema.module if self.g_ema is not None else self.g

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """DiffAugment before D (``diffaug``); off, the images themselves (no RNG drawn)."""
        return diff_augment(x, self.policy) if self.policy else x

    def d_objective(
        self, real: torch.Tensor, fake: torch.Tensor, real_logits: torch.Tensor, fake_logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's loss for ``gan_loss`` (+ the R1 term when ``r1_weight``) -> (loss, unweighted gradient
        penalty or None)."""
        cfg = self.cfg
        if cfg.gan_loss == "wgan-gp":
            gp = gradient_penalty(self.d, real, fake)
            return d_loss_wgan(real_logits, fake_logits) + cfg.gp_weight * gp, gp
        if cfg.gan_loss == "bce":
            loss = d_loss_bce(real_logits, fake_logits, label_smoothing=cfg.label_smoothing)
        else:
            loss = d_loss_hinge(real_logits, fake_logits)
        return (loss + cfg.r1_weight / 2 * r1_penalty(self.d, real) if cfg.r1_weight else loss), None

    def g_objective(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """G's loss for ``gan_loss``: non-saturating BCE, or -mean D(G(z)) for hinge and WGAN."""
        if self.cfg.gan_loss == "bce":
            return g_loss_nonsaturating(fake_logits)
        return g_loss_hinge(fake_logits) if self.cfg.gan_loss == "hinge" else g_loss_wgan(fake_logits)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the train subset: a D step per batch, a G step after every ``n_critic``-th
        (n_critic = 1: D then G on each batch, the seed). Epoch means, one host sync per epoch.

        Metrics: ``d_loss`` (incl. the weighted penalty for wgan-gp), ``d_real`` / ``d_fake`` =
        mean sigmoid(D(.)) (for hinge/WGAN critics only a monotone read of the score), ``g_loss``,
        ``grad_norm_d`` / ``grad_norm_g`` (total L2 gradient norm after backward, before the
        step, mean over the net's steps), ``loss_ratio`` = g_loss / d_loss for bce only (a hinge
        d_loss is legitimately 0 and a WGAN one signed, so the ratio means nothing there), and
        for wgan-gp ``grad_penalty`` (unweighted) and ``wasserstein`` = mean D(x) - mean D(G(z)).
        """
        cfg = self.cfg
        self.g.train()
        self.d.train()
        d_total = torch.zeros(6, device=self.device)  # d_loss, D(x), D(G(z)), |grad D|, gp, raw gap
        g_total = torch.zeros(2, device=self.device)  # g_loss, |grad G|
        d_steps = g_steps = 0
        for step, real in enumerate(self.train.batches(cfg.batch_size, self.generator)):
            g_turn = (step + 1) % cfg.n_critic == 0
            z = torch.randn(len(real), cfg.latent_dim, device=self.device)
            with torch.set_grad_enabled(g_turn), self.autocast():  # D-only steps need no graph through G
                fake = self.g(z)
            d_total += self._d_step(real, fake.detach())
            d_steps += 1
            if g_turn:
                g_total += self._g_step(fake)
                g_steps += 1
        d_loss, d_real, d_fake, grad_norm_d, gp, gap = (d_total / max(d_steps, 1)).tolist()
        g_loss, grad_norm_g = (g_total / max(g_steps, 1)).tolist()
        out = {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": d_real,
            "d_fake": d_fake,
            "grad_norm_d": grad_norm_d,
            "grad_norm_g": grad_norm_g,
        }
        if cfg.gan_loss == "bce":
            out["loss_ratio"] = g_loss / d_loss if d_loss else float("inf")
        if cfg.gan_loss == "wgan-gp":
            out.update(grad_penalty=gp, wasserstein=gap)
        return out

    def _d_step(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """One D step on ``real`` and detached ``fake`` (B, 3, 32, 32), both augmented. Returns (6,):
        d_loss, mean sigmoid D(x), mean sigmoid D(G(z)), |grad D|, the gp term (0 without one),
        mean D(x) - mean D(G(z))."""
        real_in, fake_in = self.augment(real), self.augment(fake)
        with self.autocast():
            real_logits, fake_logits = self.d(real_in).float(), self.d(fake_in).float()
        d_loss, gp = self.d_objective(real_in, fake_in, real_logits, fake_logits)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        grad_d = grad_total_norm(self.d.parameters())
        self.opt_d.step()
        real_logits, fake_logits = real_logits.detach(), fake_logits.detach()
        stats = [d_loss.detach(), torch.sigmoid(real_logits).mean(), torch.sigmoid(fake_logits).mean()]
        penalty = torch.zeros((), device=self.device) if gp is None else gp.detach()
        stats += [grad_d.to(self.device), penalty, real_logits.mean() - fake_logits.mean()]
        return torch.stack(stats)

    def _g_step(self, fake: torch.Tensor) -> torch.Tensor:
        """One G step through the just-updated D on ``fake`` (B, 3, 32, 32), with its graph; the
        EMA copy follows. Returns (2,): g_loss, |grad G|."""
        with self.autocast():
            g_logits = self.d(self.augment(fake)).float()
        g_loss = self.g_objective(g_logits)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        grad_g = grad_total_norm(self.g.parameters())
        self.opt_g.step()
        if self.g_ema is not None:
            self.g_ema.update_parameters(self.g)
        return torch.stack([g_loss.detach(), grad_g.to(self.device)])

    def windowed(self, metrics: dict[str, float], history: dict[str, list]) -> dict[str, float]:
        """``loss_ratio_window``: the mean D/G loss ratio of the last RATIO_WINDOW epochs (bce only):
        instability shows as a drifting balance, not as one epoch's ratio."""
        if "loss_ratio" not in metrics:
            return {}
        recent = [v for _, v in history.get("loss_ratio", [])[-(RATIO_WINDOW - 1) :]] + [metrics["loss_ratio"]]
        return {"loss_ratio_window": sum(recent) / len(recent)}

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, latent_dim) -> G(z) (N,3,32,32) in [-1, 1], the sampling G (``sampler``) in eval mode."""
        self.sampler.eval()
        return self.sampler(z)

    @torch.no_grad()
    def evaluate(self, split: str = "val", probe: bool = False) -> dict[str, float]:
        """Sample scores of the fixed-z ``eval_samples`` images against the ``split``'s real images
        (``Task.sample_scores``: ``<split>_classifier_fd``, ``_randconv_fd``, ``_class_coverage``,
        ``_class_kl``, ``_classifier_is``); on val also the detector ``mode_collapse``.

        With ``probe`` also ``<split>_probe_acc``: the VAE's linear-probe protocol (``Task.probe``:
        fit on the train subset, C chosen on the validation images) on D's features, pooled from its
        three conv layers as Radford et al. 2016 did (``probe_features``).
        """
        out = self.sample_scores(self.samples(), split)
        if split == "val":
            out.update(self.collapse_flags(out))
        if probe:
            out.update({k: v for k, v in self.probe(split).items() if split == "test" or not k.startswith("test_")})
        return out

    @torch.no_grad()
    def probe_features(self, images: torch.Tensor, net: torch.nn.Module | None = None) -> np.ndarray:
        """uint8 (N,3,32,32) on device -> (N, 7c*16) pooled D features on the CPU, float32. D (``net``,
        default the trial's) runs with BatchNorm statistics of the real train subset (``Task.real_bn``):
        its own running statistics were updated by fake batches too."""
        d = self.real_bn(net or self.d, lambda m, x: m(x))
        return torch.cat(
            [
                d.probe_features(to_unit_range(images[i : i + EVAL_BATCH])).cpu()
                for i in range(0, len(images), EVAL_BATCH)
            ]
        ).numpy()

    @torch.no_grad()
    def figures(self, folder: Path) -> list[Path]:
        g = torch.Generator(device="cpu").manual_seed(0)  # fixed z: figures comparable across epochs
        z = torch.randn(64, self.cfg.latent_dim, generator=g).to(self.device)
        return [save_image_grid(self.generate(z), folder / "samples.png", nrow=8)]

    def exported_modules(self) -> dict[str, torch.nn.Module]:
        return {"g": self.sampler, "d": self.d}

    def export_state(self) -> dict:
        return {k: m.state_dict() for k, m in self.exported_modules().items()}

    @staticmethod
    def build_sampler(cfg: DCGANConfig, models: dict) -> torch.nn.Module:
        """best.pt's ``model`` dict -> the Generator (its EMA weights when ``ema_decay`` is set:
        ``export_state`` saves the averaged G as ``g``)."""
        model = Generator.for_config(cfg)
        model.load_state_dict(models["g"])
        return model

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.g_ema is not None:  # a restored trial continues the same average
            state["g_ema"] = self.g_ema.state_dict()
        return state

    def load_state_dict(self, state: dict, keep_hyperparams: bool = False) -> None:
        super().load_state_dict(state, keep_hyperparams)
        if self.g_ema is not None:
            self.g_ema.load_state_dict(state["g_ema"])
