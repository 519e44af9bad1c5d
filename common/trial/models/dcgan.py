"""DCGAN generator and discriminator for 32x32 RGB images in [-1, 1].

Layer tables (the slides, 'Technical Details')::

    Generator                                   Discriminator
    z (B,latent)                                x (B,3,32,32)
      [Linear(h) + BN1d + ReLU]                   Conv(3->c)   + LReLU(0.2)      (B,c,16,16)
      Linear -> (B,c,4,4) + BN + ReLU             Conv(c->2c)  + BN + LReLU(0.2) (B,2c,8,8)
      ConvT(c->c)    + BN + ReLU  (B,c,8,8)       Conv(2c->4c) + BN + LReLU(0.2) (B,4c,4,4)
      ConvT(c->c/2)  + BN + ReLU  (B,c/2,16,16)   flatten [-> Linear(h) + LReLU(0.2)]
      ConvT(c/2->3)  + Tanh       (B,3,32,32)     Linear -> 1 logit              (B,)

What the slides left open, and what was chosen:

* Kernel/stride/padding: not given. Kernel 4, stride 2, padding 1 (Radford et al. 2016);
  ``kernel_size`` 3 or 5 keeps the sides (common.trial.models.vae.down / up).
* Widths: G c, c, c/2 and D c, 2c, 4c (``stage_mults`` (1, 1, 0.5) and (1, 2, 4)).
* Hidden FC layers: not given. The plain tables count 0.60M (G) and 0.66M (D), far from the
  reported 1.24M / 2.76M. A hidden FC of 384 units before G's 4x4 map gives 1.22M (-1.4%;
  ``g_hidden=392`` would give 1.240M) and one of 512 units before D's logit gives 2.76M
  (-0.1%). ``g_hidden=0`` / ``d_hidden=0`` remove them.
* G's hidden FC uses Linear + BatchNorm1d + ReLU: DCGAN puts BN after every generator layer
  except the output, so the extra layer follows the same rule. D's hidden FC is
  Linear + LeakyReLU without BN, like D's first layer (BN in D's head would couple the
  logits of a batch, which the loss then sees through).
* Biases: layers followed by BN carry no bias (BN's shift makes it redundant), and, as in
  the DCGAN reference code, neither does D's first conv; the Linear layers keep theirs.
* Initialisation: ``dcgan_init`` (N(0, 0.02) weights, BN scale N(1, 0.02), zero biases) is
  applied by both constructors.

Failure-mode options of D (all off by default; off builds exactly the slides' D, same modules,
same initial weights from the same RNG draws):

* ``spectral_norm``: every Conv2d and Linear of D (the logit layer included) is wrapped with
  ``torch.nn.utils.parametrizations.spectral_norm`` (Miyato et al. 2018): W / sigma(W), with
  sigma estimated by one power iteration per training forward (u, v are buffers). For a conv,
  sigma is that of the weight reshaped to (out, in*k*k), as in the paper, which bounds but is
  not the conv operator's norm. BatchNorm is kept unless ``batchnorm=False``: SN alone
  changes one thing against the slides' D. SN-GAN as in the paper is ``batchnorm=False``
  (``d_norm=none``), since BN's division by the batch std is not Lipschitz-bounded.
* ``batchnorm=False``: the 2nd/3rd convs get no BatchNorm and carry a bias instead. Used for
  WGAN-GP (``d_norm=auto``), whose gradient penalty assumes D scores each sample on its own.
* ``minibatch_disc`` = B > 0 kernels of dimension ``minibatch_dim`` = C: a
  ``MinibatchDiscrimination`` layer between the last feature vector (hidden FC, else the flat
  4x4 map) and the logit. It is not spectrally normalised (its exp(-L1) is not a linear map).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from common.metrics.prior import PriorSampler
from common.trial.models.vae import down, stage_widths, up


def dcgan_init(module: nn.Module) -> None:
    """DCGAN weight init for one module; use as ``net.apply(dcgan_init)``."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(PriorSampler, nn.Module):
    """z (B,latent_dim) -> images (B,3,32,32) in [-1, 1].

    Args:
        latent_dim: size of z.
        g_channels: widths c, c, c/2 of the 4x4, 8x8 and 16x16 maps.
        g_hidden: width of the hidden FC before the 4x4 map; 0 = none.
        kernel_size: k of every transposed conv (stride 2 always).
        stage_mults: the widths of the 4x4, 8x8 and 16x16 maps as multiples of ``g_channels``.
    """

    def __init__(
        self,
        latent_dim: int = 100,
        g_channels: int = 128,
        g_hidden: int = 384,
        kernel_size: int = 4,
        stage_mults: tuple[float, float, float] = (1, 1, 0.5),
    ):
        super().__init__()
        w1, w2, w3 = stage_widths(g_channels, stage_mults)
        k = kernel_size
        self.latent_dim = latent_dim
        self.g_channels = g_channels
        self.top = w1
        if g_hidden > 0:
            self.hidden = nn.Sequential(
                nn.Linear(latent_dim, g_hidden, bias=False), nn.BatchNorm1d(g_hidden), nn.ReLU(inplace=True)
            )
            fc_in = g_hidden
        else:
            self.hidden = nn.Identity()
            fc_in = latent_dim
        self.fc = nn.Linear(fc_in, 4 * 4 * w1, bias=False)
        self.net = nn.Sequential(
            nn.BatchNorm2d(w1),
            nn.ReLU(inplace=True),
            up(w1, w2, k),
            nn.BatchNorm2d(w2),
            nn.ReLU(inplace=True),
            up(w2, w3, k),
            nn.BatchNorm2d(w3),
            nn.ReLU(inplace=True),
            up(w3, 3, k),
            nn.Tanh(),
        )
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B,latent_dim) -> (B,3,32,32)."""
        h = self.fc(self.hidden(z)).view(z.shape[0], self.top, 4, 4)
        return self.net(h)

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        return self(z)

    @classmethod
    def for_config(cls, cfg) -> "Generator":
        """The generator a DCGAN config describes (its ``g_*`` layout fields and ``latent_dim``)."""
        return cls(cfg.latent_dim, cfg.g_channels, cfg.g_hidden, cfg.g_kernel_size, cfg.mults("g_stage_mults"))


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016): x (N,A) -> (N, A + B).

    M_i = x_i T reshaped to (B, C); for each kernel b,
    o(x_i)_b = 1/(N-1) * sum_{j != i} exp(-||M_i,b - M_j,b||_L1), concatenated to x_i. A batch
    of near-identical samples reads o ~ 1, a diverse one o ~ 0, so D can reject a collapsed
    generator's batch and G is pushed to spread its samples. Two choices against the paper's
    plain sum over j: the self term exp(0) = 1 is left out, and the sum is divided by N - 1
    so the feature lies in [0, 1] whatever the batch size (the next linear layer absorbs any
    scale); N = 1 gives o = 0. The layer couples the samples of a batch in train and eval
    mode alike: call D on real and fake batches separately (the task does).

    Args:
        in_features: A, size of each input vector.
        num_kernels: B, number of kernels (output features added).
        kernel_dim: C, dimension of each kernel's projection.
    """

    def __init__(self, in_features: int, num_kernels: int, kernel_dim: int = 8):
        super().__init__()
        if min(in_features, num_kernels, kernel_dim) < 1:
            raise ValueError(
                f"MinibatchDiscrimination needs positive sizes, got in_features={in_features}, "
                f"num_kernels={num_kernels}, kernel_dim={kernel_dim}"
            )
        self.in_features, self.num_kernels, self.kernel_dim = in_features, num_kernels, kernel_dim
        self.out_features = in_features + num_kernels
        # 1/sqrt(A) keeps the projections on the scale of the inputs, so initial L1 distances
        # over C dims are O(C * |x|) and exp(-dist) neither saturates at 1 nor underflows.
        self.T = nn.Parameter(torch.randn(in_features, num_kernels * kernel_dim) / math.sqrt(in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, in_features) -> (N, in_features + num_kernels)."""
        n = x.shape[0]
        m = (x @ self.T).view(n, self.num_kernels, self.kernel_dim).transpose(0, 1)  # (B, N, C)
        closeness = torch.exp(-torch.cdist(m, m, p=1))  # (B, N, N)
        others = ~torch.eye(n, dtype=torch.bool, device=x.device)
        o = (closeness * others).sum(dim=2).transpose(0, 1) / max(n - 1, 1)  # (N, B)
        return torch.cat([x, o], dim=1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_kernels={self.num_kernels}, kernel_dim={self.kernel_dim}"


class Discriminator(nn.Module):
    """images (B,3,32,32) -> real/fake logits (B,) (pre-sigmoid).

    Args:
        d_channels: conv widths c, 2c, 4c.
        d_hidden: width of the hidden FC before the logit; 0 = none.
        spectral_norm: wrap every Conv2d/Linear with spectral normalisation.
        batchnorm: BatchNorm after the 2nd and 3rd conv (seed); False = none (convs get a bias).
        minibatch_disc: number of minibatch-discrimination kernels before the logit; 0 = none.
        minibatch_dim: their dimension.
        kernel_size: k of every conv (stride 2 always).
        stage_mults: the three conv widths as multiples of ``d_channels``.
    """

    def __init__(
        self,
        d_channels: int = 64,
        d_hidden: int = 512,
        spectral_norm: bool = False,
        batchnorm: bool = True,
        minibatch_disc: int = 0,
        minibatch_dim: int = 8,
        kernel_size: int = 4,
        stage_mults: tuple[float, float, float] = (1, 2, 4),
    ):
        super().__init__()
        w1, w2, w3 = stage_widths(d_channels, stage_mults)
        k = kernel_size
        self.d_channels = d_channels

        def conv_block(c_in: int, c_out: int) -> nn.Sequential:
            if batchnorm:
                return nn.Sequential(down(c_in, c_out, k), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True))
            return nn.Sequential(down(c_in, c_out, k, bias=True), nn.LeakyReLU(0.2, inplace=True))

        self.blocks = nn.ModuleList(
            [nn.Sequential(down(3, w1, k), nn.LeakyReLU(0.2, inplace=True)), conv_block(w1, w2), conv_block(w2, w3)]
        )
        flat = 4 * 4 * w3
        if d_hidden > 0:
            self.hidden = nn.Sequential(nn.Linear(flat, d_hidden), nn.LeakyReLU(0.2, inplace=True))
            out_in = d_hidden
        else:
            self.hidden = None
            out_in = flat
        if minibatch_disc > 0:
            self.minibatch = MinibatchDiscrimination(out_in, minibatch_disc, minibatch_dim)
            out_in = self.minibatch.out_features
        else:
            self.minibatch = None
        self.out = nn.Linear(out_in, 1)
        self.apply(dcgan_init)
        if spectral_norm:
            for module in list(self.modules()):
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    _spectral_norm(module)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer activations, input to logit.

        Returns [(B,w1,16,16), (B,w2,8,8), (B,w3,4,4)] plus (B,d_hidden) when the hidden FC
        exists. The tensors keep the autograd graph; wrap in ``torch.no_grad`` for probes.
        """
        feats = []
        h = x
        for block in self.blocks:
            h = block(h)
            feats.append(h)
        if self.hidden is not None:
            feats.append(self.hidden(h.flatten(1)))
        return feats

    def probe_features(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,32,32) -> (B, (w1+w2+w3)*16) representation for a linear probe, as Radford et al.
        2016 did: each conv layer's output max-pooled to a 4x4 grid, flattened, concatenated
        ((64 + 128 + 256) * 16 = 7,168 features at the default widths)."""
        return torch.cat([F.adaptive_max_pool2d(h, 4).flatten(1) for h in self.features(x)[:3]], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,32,32) -> logits (B,)."""
        h = self.features(x)[-1].flatten(1)
        if self.minibatch is not None:
            h = self.minibatch(h)
        return self.out(h).squeeze(1)

    @classmethod
    def for_config(cls, cfg) -> "Discriminator":
        """The discriminator a DCGAN config describes (its ``d_*`` layout fields and mitigations)."""
        return cls(
            cfg.d_channels,
            cfg.d_hidden,
            spectral_norm=cfg.spectral_norm,
            batchnorm=cfg.d_batchnorm,
            minibatch_disc=cfg.minibatch_disc,
            minibatch_dim=cfg.minibatch_dim,
            kernel_size=cfg.d_kernel_size,
            stage_mults=cfg.mults("d_stage_mults"),
        )
