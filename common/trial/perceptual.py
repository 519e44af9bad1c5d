"""Perceptual-loss backbones (the slides, 'Blurry Reconstructions': L = MSE + lambda*L_VGG + beta*KL).

A backbone is a frozen ``nn.Module`` mapping (B,3,32,32) images in [-1, 1] to a list of feature
maps; ``perceptual_distance`` compares two such lists. Gradients flow through the backbone to its
input (the reconstruction), never into its weights. Registry (``PERCEPTUAL_NETS``):

* ``randconv``: the stages of ``common.metrics.maths.RandomConvFeatures`` (seed 0), i.e. the SAME fixed
  random weights that ``val_randconv_fd`` scores samples with. Works offline and costs little, but a
  model trained on it is partly trained on the evaluation metric's features: ``shares_eval_features``
  is True so the task can tag the run (``VAETask.tags``) and the report can flag the bias.
* ``vgg16``: torchvision VGG16 ImageNet weights, features relu1_2, relu2_2, relu3_3 at 32x32 (no
  resize), ImageNet-normalised. Weights from ``perceptual_weights`` (a local
  ``vgg16-397923af.pth``) or the torch hub cache if the file is already there; never downloads.
  About 0.3 GFLOP per image forward, i.e. far more than the VAE itself on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from common.base.errors import first_line
from common.metrics.maths import RandomConvFeatures
from common.trial.config import ConfigError


class RandConvMaps(nn.Module):
    """Per-stage post-ReLU maps of ``RandomConvFeatures`` (same weights), with gradients to x."""

    name = "randconv"
    shares_eval_features = True  # val_randconv_fd's extractor is RandomConvFeatures(seed=0) too

    def __init__(self):
        super().__init__()
        self.net = RandomConvFeatures(seed=0)  # weights are buffers; nothing trainable

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, maps = x, []
        for i in range(len(self.net.widths)):
            if i > 0:
                h = F.avg_pool2d(h, 2)
            h = F.relu(F.conv2d(h, getattr(self.net, f"w{i}"), padding=1))
            maps.append(h)
        return maps


class VGG16Maps(nn.Module):
    """VGG16 ``features`` up to relu3_3; returns [relu1_2, relu2_2, relu3_3]."""

    name = "vgg16"
    shares_eval_features = False
    taps = (3, 8, 15)  # indices of relu1_2, relu2_2, relu3_3 in torchvision's vgg16().features

    def __init__(self, state_dict: dict):
        super().__init__()
        import torchvision

        with torch.random.fork_rng(devices=[]):  # the throwaway init must not move the trial's RNG
            vgg = torchvision.models.vgg16(weights=None)
        try:
            vgg.load_state_dict(state_dict)
        except (RuntimeError, KeyError) as e:
            raise ConfigError(f"perceptual_weights: not a torchvision VGG16 state dict ({first_line(e)})") from None
        self.features = vgg.features[: self.taps[-1] + 1]
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG16Maps":
        return super().train(False)  # frozen: always eval

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, maps = ((x + 1.0) * 0.5 - self.mean) / self.std, []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                maps.append(h)
        return maps


def vgg16_weights_file(weights_path: str = "") -> Path:
    """The local VGG16 ImageNet weights file to load; ConfigError (one line, with the fix) if none."""
    if weights_path:
        p = Path(weights_path).expanduser()
        if not p.is_file():
            raise ConfigError(
                f"perceptual_weights={weights_path!r}: no such file; pass a local copy of "
                "torchvision's vgg16-397923af.pth"
            )
        return p
    import torchvision

    url = torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if cached.is_file():
        return cached
    raise ConfigError(
        f"perceptual_net=vgg16 needs ImageNet VGG16 weights and {cached} is missing (no download here): "
        f"--set perceptual_weights=/path/{Path(url).name}, or download {url} once where the network allows"
    )


def _vgg16(weights_path: str) -> nn.Module:
    return VGG16Maps(torch.load(vgg16_weights_file(weights_path), map_location="cpu", weights_only=True))


PERCEPTUAL_NETS: dict[str, Callable[[str], nn.Module]] = {
    "randconv": lambda weights_path: RandConvMaps(),
    "vgg16": _vgg16,
}


def build_perceptual(name: str, weights_path: str = "") -> nn.Module:
    """Frozen feature net ``name`` (attributes ``name``, ``shares_eval_features``)."""
    try:
        factory = PERCEPTUAL_NETS[name]
    except KeyError:
        raise ConfigError(f"unknown perceptual_net {name!r}; choose one of {', '.join(PERCEPTUAL_NETS)}") from None
    net = factory(weights_path)
    net.requires_grad_(False)
    return net.eval()


def check_perceptual(cfg) -> None:
    """Driver-side validation, before any trial starts: ConfigError if the backbone can't be built.

    ``cfg``: a config or its ``to_dict()``; a family without a ``perceptual_net`` field passes. Checks whenever
    ``perceptual_net`` needs external weights, whatever ``perceptual_weight`` is (a sweep may
    sample lambda > 0 later). Cheap: looks for the file, does not load it.
    """
    get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
    if (net := get("perceptual_net")) is None:
        return
    if net not in PERCEPTUAL_NETS:
        raise ConfigError(f"unknown perceptual_net {net!r}; choose one of {', '.join(PERCEPTUAL_NETS)}")
    if net == "vgg16":
        vgg16_weights_file(get("perceptual_weights", ""))


def perceptual_distance(feats_a: list[torch.Tensor], feats_b: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the per-image mean squared feature difference: lists of (B,C,H,W) -> (B,)."""
    if len(feats_a) != len(feats_b) or not feats_a:
        raise ValueError(f"perceptual_distance needs two equal, non-empty lists, got {len(feats_a)} and {len(feats_b)}")
    return sum((a - b).pow(2).flatten(1).mean(dim=1) for a, b in zip(feats_a, feats_b))
