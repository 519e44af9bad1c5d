"""DiffAugment (common/trial/augment.py): differentiable, per-image, shape-preserving, and applied by the
DCGAN task to the real and the fake images before every D call."""

from __future__ import annotations

import pytest
import torch

import common.trial.tasks.dcgan
from common.base.data import load_dataset
from common.base.device import seed_everything
from common.trial.augment import POLICIES, cutout, diff_augment, parse_policy, translation
from common.trial.config import ConfigError, DCGANConfig
from common.trial.tasks.dcgan import DCGANTask


def _images(n=8, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("policy", [("color",), ("translation",), ("cutout",), POLICIES])
def test_each_transform_is_differentiable_and_keeps_the_shape(policy):
    x = _images().requires_grad_(True)
    torch.manual_seed(0)
    out = diff_augment(x, policy)
    assert out.shape == x.shape and not torch.equal(out.detach(), x.detach())
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_shifts_each_image_and_zero_fills():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 3, 1, 1) + 1  # no zeros of its own
    torch.manual_seed(1)
    out = translation(x, ratio=0.25)  # shifts of -1, 0 or +1 pixel per axis
    for img in out[:, 0]:
        kept = img[img != 0]
        assert set(kept.tolist()) <= set(range(1, 17)) and len(kept) in (9, 12, 16)  # a shifted window
    assert len({tuple(img.flatten().tolist()) for img in out[:, 0]}) > 1  # drawn per image


def test_cutout_zeroes_a_half_side_square_per_image():
    torch.manual_seed(2)
    out = cutout(torch.ones(32, 3, 32, 32))
    holes = (out[:, 0] == 0).sum((1, 2))
    assert (holes <= 16 * 16).all() and (holes > 0).all() and (out[:, 0] == out[:, 1]).all()


def test_the_policy_is_parsed_and_checked():
    assert parse_policy("") == () and parse_policy("color, cutout") == ("color", "cutout")
    with pytest.raises(ValueError, match="colour"):
        parse_policy("colour")
    with pytest.raises(ConfigError, match="diffaug"):
        DCGANConfig(diffaug="flip")


def test_the_dcgan_augments_real_and_fake_before_every_d_call(monkeypatch):
    data = load_dataset("synthetic")
    cfg = DCGANConfig(
        data="synthetic",
        val_size=128,
        batch_size=64,
        eval_samples=64,
        g_channels=16,
        d_channels=8,
        g_hidden=0,
        d_hidden=16,
        latent_dim=8,
        diffaug="color,translation,cutout",
    )
    task = DCGANTask(cfg, data, torch.device("cpu"), seed_everything(cfg.seed))
    seen = []

    def recording(x, policy):
        seen.append((x.requires_grad, policy))
        return diff_augment(x, policy)

    monkeypatch.setattr(common.trial.tasks.dcgan, "diff_augment", recording)
    task.train_epoch(0)
    batches = task.train.num_batches(cfg.batch_size)
    # Per batch: D's real and detached fake, then G's fake (with its graph, so G learns through it).
    assert len(seen) == 3 * batches
    assert [rg for rg, _ in seen[:3]] == [False, False, True]
    assert all(p == ("color", "translation", "cutout") for _, p in seen)
