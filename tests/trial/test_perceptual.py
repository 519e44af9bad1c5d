"""common/trial/perceptual.py: the perceptual distance, the random-conv and VGG16 backbones, and the
checks that refuse missing or wrong VGG16 weights before any training."""

from __future__ import annotations

import pytest
import torch

from common.base.data import load_dataset
from common.trial.config import ConfigError, DCGANConfig, VAEConfig
from common.trial.perceptual import (
    PERCEPTUAL_NETS,
    build_perceptual,
    check_perceptual,
    perceptual_distance,
    vgg16_weights_file,
)
from common.trial.tasks.vae import VAETask


@pytest.fixture
def no_hub_weights(tmp_path, monkeypatch):
    """An empty torch hub cache: the VGG16 ImageNet weights are not on disk."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def test_perceptual_distance_hand_computed():
    a = [torch.zeros(2, 1, 2, 2), torch.zeros(2, 3, 1, 1)]
    b = [torch.ones(2, 1, 2, 2), torch.zeros(2, 3, 1, 1)]
    b[1][1] = 2.0  # image 1, layer 2: every feature off by 2 -> mean 4
    assert perceptual_distance(a, b).tolist() == pytest.approx([1.0, 5.0])
    with pytest.raises(ValueError):
        perceptual_distance(a, b[:1])


def test_randconv_perceptual_zero_for_identical_positive_otherwise_and_differentiable():
    net = build_perceptual("randconv")
    assert net.name == "randconv" and net.shares_eval_features
    assert not any(p.requires_grad for p in net.parameters())
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    feats = net(x)
    assert [f.shape[1:] for f in feats] == [(32, 32, 32), (64, 16, 16), (160, 8, 8)]
    assert torch.equal(perceptual_distance(net(x), net(x.clone())), torch.zeros(4))
    x_hat = (x + 0.1 * torch.randn_like(x)).clamp(-1, 1).requires_grad_(True)
    d = perceptual_distance(net(x_hat), [f.detach() for f in feats])
    assert d.shape == (4,) and torch.all(d > 0)
    d.sum().backward()
    assert x_hat.grad is not None and x_hat.grad.abs().sum() > 0


def test_randconv_uses_the_randconv_fd_extractor_weights():
    from common.metrics.maths import RandomConvFeatures

    x = torch.rand(2, 3, 32, 32) * 2 - 1
    pooled = torch.cat([f.mean(dim=(2, 3)) for f in build_perceptual("randconv")(x)], dim=1)
    assert torch.allclose(pooled, RandomConvFeatures()(x), atol=1e-5)


def test_missing_vgg_weights_raise_a_config_error_with_the_fix(no_hub_weights):
    with pytest.raises(ConfigError, match=r"--set perceptual_weights=/path/vgg16-397923af\.pth"):
        build_perceptual("vgg16")
    with pytest.raises(ConfigError, match="perceptual_weights"):
        check_perceptual(VAEConfig(perceptual_net="vgg16"))  # checked whatever lambda is
    with pytest.raises(ConfigError, match="perceptual_weights"):
        check_perceptual(VAEConfig(perceptual_net="vgg16").to_dict())  # what common.sweep.space.check_configs returns
    with pytest.raises(ConfigError, match="no such file"):
        vgg16_weights_file("/nonexistent/vgg16.pth")
    with pytest.raises(ConfigError, match="perceptual_weights"):  # and before any training
        cfg = VAEConfig(data="synthetic", val_size=128, perceptual_net="vgg16", perceptual_weight=1.0)
        VAETask(cfg, load_dataset("synthetic"), torch.device("cpu"), torch.Generator().manual_seed(cfg.seed))
    assert "\n" not in str(pytest.raises(ConfigError, build_perceptual, "vgg16").value)


def test_vgg_weights_found_in_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "vgg16-397923af.pth").write_bytes(b"")
    assert vgg16_weights_file("") == tmp_path / "checkpoints" / "vgg16-397923af.pth"
    check_perceptual(VAEConfig(perceptual_net="vgg16", perceptual_weight=1.0))


def test_a_wrong_vgg_state_dict_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"not": torch.zeros(1)}, bad)
    with pytest.raises(ConfigError, match="VGG16"):
        build_perceptual("vgg16", str(bad))


def test_check_perceptual_passes_offline_nets_and_other_families():
    check_perceptual(VAEConfig(perceptual_weight=1.0))
    check_perceptual(DCGANConfig())
    assert set(PERCEPTUAL_NETS) == set(VAEConfig.fields()["perceptual_net"].metadata["choices"])


def test_unknown_perceptual_net():
    with pytest.raises(ConfigError, match="alexnet"):
        build_perceptual("alexnet")


@pytest.mark.slow
def test_vgg16_from_a_weights_file(tmp_path):
    import torchvision

    path = tmp_path / "vgg16-397923af.pth"
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), path)
    state = torch.get_rng_state()
    net = build_perceptual("vgg16", str(path))
    assert torch.equal(torch.get_rng_state(), state)  # the throwaway init left the RNG alone
    assert net.name == "vgg16" and not net.shares_eval_features
    x_hat = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    feats = net(x_hat)
    assert [f.shape[1:] for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8)]
    perceptual_distance(feats, [f.detach() + 1 for f in feats]).sum().backward()
    assert x_hat.grad.abs().sum() > 0
