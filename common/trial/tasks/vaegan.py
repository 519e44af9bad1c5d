"""VAE-GAN task (Larsen et al. 2016, "Autoencoding beyond pixels using a learned similarity metric").

The Conv-VAE's decoder is the generator; a DCGAN discriminator D judges real images x,
reconstructions x_tilde = Dec(z ~ q(z|x)) and prior samples x_p = Dec(z_p ~ N(0, I)), and its
layer ``feature_layer`` is the space the reconstruction is measured in (the paper's Dis_l
likelihood, here a unit-variance Gaussian: squared error summed over D_l's elements). Per batch,
following the paper's Algorithm 1::

    recon    = recon_weight * ||D_l(x_tilde) - D_l(x)||^2 + pixel_weight * ||x_tilde - x||^2   (B,)
    L_enc    = mean(beta * KL + recon)                                 -> encoder only
    L_dec    = gamma * mean(recon) + BCE(D(x_tilde), 1) + BCE(D(x_p), 1)  -> decoder only
    L_D      = BCE(D(x), 1) + BCE(D(x_tilde), 0) + BCE(D(x_p), 0)         -> D only

Choices the paper leaves open, and what was chosen:

* Order: D steps first, then encoder and decoder step against the updated D (as DCGANTask's
  D-then-G step). The encoder/decoder losses share one forward; ``torch.autograd.grad`` takes
  each loss's gradient with respect to its own parameters only, so the GAN term never reaches
  the encoder and neither loss writes into D's gradients.
* The feature-matching pass runs D once on ``cat([x_tilde, x])`` (as the authors' code does):
  with BatchNorm in D, both halves are normalised by the same batch statistics, so the metric
  compares x_tilde with x and not each with its own batch. The target D_l(x) is detached.
* The GAN term is non-saturating (the DCGAN family's loss) rather than the paper's
  log(1 - D(.)); D sees reals, reconstructions and samples in separate passes, as DCGANTask.
* Evaluation is VAETask's (pixel recon / kl / mse_kl / bpd with beta = 1, active units, the sample
  scores, linear probe on mu), so the numbers compare with the VAE family's directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from common.trial.config import VAEGANConfig
from common.trial.losses import g_loss_nonsaturating, gaussian_kl, recon_mse
from common.trial.models import ConvVAE, Discriminator
from common.trial.tasks.base import Task
from common.trial.tasks.vae import VAETask

# ConvVAE submodules on each side of the latent (see common/trial/models/vae.py).
ENCODER_PARTS = ("encoder", "enc_fc", "fc_mu", "fc_logvar")
DECODER_PARTS = ("dec_fc", "decoder")


# ---- losses (pure functions over tensors) --------------------------------------------------
def feature_recon(d: Discriminator, x_hat: torch.Tensor, x: torch.Tensor, layer: int) -> torch.Tensor:
    """Squared error between D's layer-``layer`` activations of x_hat and x, summed per image -> (B,).

    One D pass over ``cat([x_hat, x])`` so both share BatchNorm's batch statistics; the target
    D_l(x) is detached, so the gradient flows to x_hat (and, through it, to the encoder and
    decoder). Exactly zero when x_hat == x.
    """
    feats = d.features(torch.cat([x_hat, x]))[layer]
    f_hat, f = feats.split(len(x_hat))
    return (f_hat - f.detach()).pow(2).flatten(1).sum(dim=1)


def vaegan_d_loss(real_logits: torch.Tensor, recon_logits: torch.Tensor, sample_logits: torch.Tensor) -> torch.Tensor:
    """D loss: BCE(D(x), 1) + BCE(D(x_tilde), 0) + BCE(D(x_p), 0), each a batch mean -> scalar.

    At chance (all logits 0) it is 3 ln 2 (the DCGAN family's d_loss has two terms: 2 ln 2).
    """
    return (
        F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        + F.binary_cross_entropy_with_logits(recon_logits, torch.zeros_like(recon_logits))
        + F.binary_cross_entropy_with_logits(sample_logits, torch.zeros_like(sample_logits))
    )


def vaegan_g_loss(recon_logits: torch.Tensor, sample_logits: torch.Tensor) -> torch.Tensor:
    """Decoder's GAN term: non-saturating BCE on reconstructions plus on prior samples -> scalar."""
    return g_loss_nonsaturating(recon_logits) + g_loss_nonsaturating(sample_logits)


def split_vae_params(model: ConvVAE) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(encoder params, decoder params) of a ConvVAE; raises if a parameter is on neither side."""

    def side(parts):
        return [p for name in parts for p in getattr(model, name).parameters()]

    enc, dec = side(ENCODER_PARTS), side(DECODER_PARTS)
    if len(enc) + len(dec) != len(list(model.parameters())):
        raise RuntimeError(
            f"ConvVAE has parameters outside {ENCODER_PARTS + DECODER_PARTS}; "
            "update common/trial/tasks/vaegan.py ENCODER_PARTS/DECODER_PARTS"
        )
    return enc, dec


# ---- task -----------------------------------------------------------------------------------
class VAEGANTask(VAETask):
    """Trains like Larsen et al.; evaluates, draws figures and exports like VAETask.

    ``self.model`` is the ConvVAE (so VAETask's evaluate/figures/probe_features apply unchanged),
    ``self.d`` the discriminator; three Adam optimizers: ``enc``, ``dec``, ``d``.
    """

    cfg: VAEGANConfig

    def __init__(self, cfg: VAEGANConfig, data, device, generator, classifier: dict | None = None):
        Task.__init__(self, cfg, data, device, generator, classifier)  # not VAETask's: other nets/optimizers
        self.model = self.place(ConvVAE.for_config(cfg))
        self.d = self.place(Discriminator(cfg.d_channels, cfg.d_hidden))
        self.perceptual = None  # VAETask's optional perceptual term: not part of this family
        self.enc_params, self.dec_params = split_vae_params(self.model)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_enc = torch.optim.Adam(self.enc_params, lr=cfg.lr, betas=betas)
        self.opt_dec = torch.optim.Adam(self.dec_params, lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=cfg.lr_d, betas=betas)
        self.models = {"vae": self.model, "d": self.d}
        self.optimizers = {"enc": self.opt_enc, "dec": self.opt_dec, "d": self.opt_d}

    def tags(self) -> dict[str, str]:
        return {}

    settled = Task.settled  # a constant beta: every epoch is comparable

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the train subset: a D step, then an encoder and a decoder step per batch.

        Returns batch means over the epoch: the DCGAN family's ``d_loss``, ``g_loss`` (the
        decoder's GAN term), ``loss_ratio``, ``d_real`` = mean D(x), ``d_fake`` = mean D(x_p)
        on prior samples (D(G(z)) as in DCGAN), plus ``d_recon`` = mean D(x_tilde),
        ``train_loss`` (the encoder loss, beta * KL + recon), ``train_kl``, ``train_recon``
        (pixel squared error, as the VAE's) and ``train_feature_recon`` (unweighted D_l term),
        the last three in nats per image.
        """
        self.model.train()
        self.d.train()
        total = torch.zeros(9, device=self.device)  # one sync per epoch
        steps = 0
        for x in self.train.batches(self.cfg.batch_size, self.generator):
            total += self._step(x)
            steps += 1
        (d_loss, g_loss, d_real, d_fake, d_recon, loss, kl, pixel, feat) = (total / max(steps, 1)).tolist()
        return {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "loss_ratio": g_loss / d_loss if d_loss else float("inf"),
            "d_real": d_real,
            "d_fake": d_fake,
            "d_recon": d_recon,
            "train_loss": loss,
            "train_kl": kl,
            "train_recon": pixel,
            "train_feature_recon": feat,
        }

    def _step(self, x: torch.Tensor) -> torch.Tensor:
        """One batch ``x`` (B, 3, 32, 32): a D step, then the encoder's and the decoder's. Returns
        the 9 batch stats train_epoch averages (9,): d_loss, g_loss, D(x), D(x_p), D(x_tilde),
        encoder loss, KL, pixel and feature reconstruction."""
        c = self.cfg
        mu, logvar = self.model.encode(x)
        x_tilde = self.model.decode(self.model.reparameterize(mu, logvar))
        x_p = self.model.decode(torch.randn(len(x), c.latent_dim, device=self.device))

        # D: real vs reconstructions vs prior samples.
        real_logits = self.d(x)
        recon_logits = self.d(x_tilde.detach())
        sample_logits = self.d(x_p.detach())
        d_loss = vaegan_d_loss(real_logits, recon_logits, sample_logits)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        # Encoder and decoder against the updated D; each loss reaches only its own params.
        feat = feature_recon(self.d, x_tilde, x, c.feature_layer)
        pixel = recon_mse(x_tilde, x)
        recon = c.recon_weight * feat + c.pixel_weight * pixel
        kl = gaussian_kl(mu, logvar)
        enc_loss = (c.beta * kl + recon).mean()
        g_loss = vaegan_g_loss(self.d(x_tilde), self.d(x_p))
        dec_loss = c.gamma * recon.mean() + g_loss
        enc_grads = torch.autograd.grad(enc_loss, self.enc_params, retain_graph=True, allow_unused=True)
        dec_grads = torch.autograd.grad(dec_loss, self.dec_params, allow_unused=True)
        for params, grads in ((self.enc_params, enc_grads), (self.dec_params, dec_grads)):
            for p, g in zip(params, grads):
                p.grad = g
        self.opt_enc.step()
        self.opt_dec.step()
        stats = [d_loss, g_loss, torch.sigmoid(real_logits).mean(), torch.sigmoid(sample_logits).mean()]
        stats += [torch.sigmoid(recon_logits).mean(), enc_loss, kl.mean(), pixel.mean(), feat.mean()]
        return torch.stack([t.detach() for t in stats])

    # evaluate, generate, probe_features, figures (reconstructions, interpolations, samples) and build_sampler
    # are VAETask's: they use only self.model and the shared config fields.

    def export_state(self) -> dict:
        """``vae`` (loadable exactly as the VAE family's best.pt) plus the discriminator ``d``."""
        return {"vae": self.model.state_dict(), "d": self.d.state_dict()}
