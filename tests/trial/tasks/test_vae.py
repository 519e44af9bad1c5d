"""VAE failure-mode mitigations: free bits, perceptual loss, collapse detector, cyclical ramp fraction."""

from __future__ import annotations

import math

import pytest
import torch

from common.trial.config import ConfigError, DCGANConfig, VAEConfig
from common.trial.data import load_dataset, to_unit_range
from common.trial.losses import beta_at, gaussian_kl, kl_free_bits, kl_per_dim, recon_mse, vae_loss
from common.trial.perceptual import (
    PERCEPTUAL_NETS,
    build_perceptual,
    check_perceptual,
    perceptual_distance,
    vgg16_weights_file,
)
from common.trial.tasks.vae import COLLAPSE_KL, VAETask, collapse_flag

TINY = dict(
    data="synthetic",
    val_size=128,
    latent_dim=8,
    base_channels=8,
    hidden_dim=0,
    batch_size=64,
    eval_samples=32,
    max_epochs=2,
)


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _task(**kw) -> VAETask:
    cfg = VAEConfig(**{**TINY, **kw})
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    return VAETask(cfg, load_dataset("synthetic"), torch.device("cpu"), gen)


@pytest.fixture
def no_hub_weights(tmp_path, monkeypatch):
    """An empty torch hub cache: the VGG16 ImageNet weights are not on disk."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


# ---- config ---------------------------------------------------------------------------------------
def test_new_fields_default_to_off_and_the_slides():
    c = VAEConfig()
    assert (c.free_bits, c.perceptual_weight, c.perceptual_net, c.perceptual_weights, c.ramp_fraction) == (
        0.0,
        0.0,
        "randconv",
        "",
        0.5,
    )


@pytest.mark.parametrize(
    "key, raw",
    [
        ("free_bits", "-0.1"),
        ("perceptual_weight", -1.0),
        ("perceptual_net", "alexnet"),
        ("ramp_fraction", "0"),
        ("ramp_fraction", 1.5),
        ("free_bits", "nan"),
    ],
)
def test_new_fields_out_of_range(key, raw):
    with pytest.raises(ConfigError, match=key):
        VAEConfig.from_dict({key: raw})


def test_new_fields_round_trip_through_strings():
    cfg = VAEConfig(
        free_bits=0.25,
        perceptual_weight=100.0,
        perceptual_net="vgg16",
        perceptual_weights="/w/vgg16.pth",
        ramp_fraction=0.25,
    )
    back = VAEConfig.from_dict({k: str(v) for k, v in cfg.to_dict().items() if k != "family"})
    assert back == cfg


# ---- free bits ------------------------------------------------------------------------------------
def test_free_bits_zero_is_the_plain_kl():
    mu, logvar = _rand(16, 6), _rand(16, 6, seed=1)
    assert torch.allclose(kl_free_bits(mu, logvar, 0.0), gaussian_kl(mu, logvar).mean(), atol=1e-6)


def test_free_bits_hand_computed():
    # logvar = 0 -> KL = mu^2 / 2. Dim 0: per-image KL 0.5 and 0 -> batch mean 0.25; dim 1: 0.
    mu, logvar = torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.zeros(2, 2)
    assert kl_per_dim(mu, logvar).tolist() == pytest.approx([0.25, 0.0])
    assert kl_free_bits(mu, logvar, 0.1).item() == pytest.approx(0.25 + 0.1)  # only dim 1 floored
    assert kl_free_bits(mu, logvar, 0.5).item() == pytest.approx(0.5 + 0.5)  # both floored


def test_free_bits_no_gradient_through_floored_dims():
    mu = torch.tensor([[2.0, 0.01], [-2.0, 0.02]], requires_grad=True)  # dim 0 used, dim 1 collapsed
    logvar = torch.zeros(2, 2, requires_grad=True)
    kl_free_bits(mu, logvar, 0.5).backward()
    assert torch.all(mu.grad[:, 1] == 0) and torch.all(logvar.grad[:, 1] == 0)
    assert torch.all(mu.grad[:, 0] != 0)
    mu.grad = logvar.grad = None
    kl_free_bits(mu, logvar, 100.0).backward()  # a huge floor: no KL gradient at all
    assert torch.all(mu.grad == 0) and torch.all(logvar.grad == 0)


def test_free_bits_negative_raises():
    with pytest.raises(ValueError, match="free_bits"):
        kl_free_bits(torch.zeros(1, 1), torch.zeros(1, 1), -1.0)


def test_vae_loss_free_bits_trains_on_the_floor_but_returns_the_true_kl():
    x, x_hat = _rand(4, 3, 8, 8), _rand(4, 3, 8, 8, seed=1)
    mu, logvar = 0.01 * _rand(4, 6, seed=2), 0.01 * _rand(4, 6, seed=3)
    loss, recon, kl = vae_loss(x_hat, x, mu, logvar, 2.0, free_bits=1.0)
    assert torch.allclose(kl, gaussian_kl(mu, logvar))  # logged KL untouched
    assert torch.allclose(loss, recon_mse(x_hat, x).mean() + 2.0 * 6 * 1.0)  # every dim under the floor


def test_defaults_keep_vae_loss_bit_identical():
    x, x_hat = _rand(4, 3, 8, 8), _rand(4, 3, 8, 8, seed=1)
    mu, logvar = _rand(4, 6, seed=2), _rand(4, 6, seed=3)
    seed_loss = (recon_mse(x_hat, x) + 0.7 * gaussian_kl(mu, logvar)).mean()
    assert torch.equal(vae_loss(x_hat, x, mu, logvar, 0.7)[0], seed_loss)
    perc = torch.rand(4)
    assert torch.equal(vae_loss(x_hat, x, mu, logvar, 0.7, perceptual=perc, perceptual_weight=0.0)[0], seed_loss)
    with_perc = vae_loss(x_hat, x, mu, logvar, 0.7, perceptual=perc, perceptual_weight=3.0)[0]
    assert torch.allclose(with_perc, seed_loss + 3.0 * perc.mean())


# ---- perceptual -----------------------------------------------------------------------------------
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
        _task(perceptual_net="vgg16", perceptual_weight=1.0)
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


# ---- task wiring ----------------------------------------------------------------------------------
def _seed_train_epoch(task: VAETask, epoch: int) -> dict[str, float]:
    """The slides' training loop, before this issue (to prove the defaults leave it unchanged)."""
    beta = task.beta(epoch)
    task.model.train()
    total = torch.zeros(3)
    n = 0
    for x in task.train.batches(task.cfg.batch_size, task.generator):
        with task.autocast():  # bf16 forward when precision=bf16 (the VAE's default), losses in fp32
            x_hat, mu, logvar = task.model(x)
        x_hat, mu, logvar = x_hat.float(), mu.float(), logvar.float()
        recon, kl = recon_mse(x_hat, x), gaussian_kl(mu, logvar)
        loss = (recon + beta * kl).mean()
        task.opt.zero_grad(set_to_none=True)
        loss.backward()
        task.opt.step()
        total += torch.stack([loss.detach() * len(x), recon.detach().sum(), kl.detach().sum()])
        n += len(x)
    loss, recon, kl = (total / n).tolist()
    return {"train_loss": loss, "train_recon": recon, "train_kl": kl, "beta": beta}


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_default_task_trains_exactly_as_the_slides(precision):
    a, b = _task(precision=precision), _task(precision=precision)
    assert a.perceptual is None and a.tags() == {}
    torch.manual_seed(0)
    new = a.train_epoch(0)
    torch.manual_seed(0)
    assert new == _seed_train_epoch(b, 0)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_task_with_mitigations_trains_and_tags_the_metric_bias():
    t = _task(free_bits=0.5, perceptual_weight=10.0)
    tags = t.tags()
    assert tags["perceptual_net"] == "randconv" and "randconv_fd" in tags["metric_bias"]
    out = t.train_epoch(0)
    assert out["train_perceptual"] > 0 and all(math.isfinite(v) for v in out.values())
    assert not any(p.requires_grad for p in t.perceptual.parameters())
    assert set(t.state_dict()["models"]) == {"vae"}  # the frozen backbone is not checkpointed


def test_task_passes_ramp_fraction_to_the_schedule():
    t = _task(beta_schedule="cyclical", max_epochs=20, cycles=4, ramp_fraction=0.25)
    assert [t.beta(e) for e in range(5)] == pytest.approx([0.0, 0.8, 1.0, 1.0, 1.0])


# ---- collapse detector ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kl, active, dim, expected",
    [
        (0.5, 64, 64, 1.0),  # KL under 1 nat
        (30.0, 6, 64, 1.0),  # 6 < 6.4 active units
        (30.0, 7, 64, 0.0),
        (COLLAPSE_KL, 64, 64, 0.0),
    ],
)
def test_collapse_flag(kl, active, dim, expected):
    assert collapse_flag(kl, active, dim) == expected


def test_evaluate_flags_a_collapsed_posterior(monkeypatch):
    t = _task()
    d = t.cfg.latent_dim
    monkeypatch.setattr(t.model, "encode", lambda x: (torch.zeros(len(x), d), torch.zeros(len(x), d)))
    out = t.evaluate(probe=False)
    assert out["val_kl"] == 0.0 and out["val_active_units"] == 0.0 and out["posterior_collapse"] == 1.0


def test_evaluate_does_not_flag_a_used_latent(monkeypatch):
    t = _task()
    d = t.cfg.latent_dim

    def encode(x):  # posterior means spread over the data, unit variance: every dim active, KL = mu^2/2
        return 3.0 * x.flatten(1)[:, :d], torch.zeros(len(x), d)

    monkeypatch.setattr(t.model, "encode", encode)
    out = t.evaluate(probe=False)
    assert out["val_kl"] > COLLAPSE_KL and out["val_active_units"] == d and out["posterior_collapse"] == 0.0


# ---- cyclical ramp fraction -----------------------------------------------------------------------
def test_ramp_fraction_half_is_the_slides_formula_exactly():
    def slides(epoch, epochs, cycles):  # the slides' cyclical_beta
        cycle_len = epochs // cycles
        pos = (epoch % cycle_len) / cycle_len
        return min(1.0, pos * 2)

    for epochs, cycles in [(20, 4), (40, 4), (30, 7), (10, 3)]:
        got = [
            beta_at(e, schedule="cyclical", beta=1.0, max_epochs=epochs, cycles=cycles, ramp_fraction=0.5)
            for e in range(epochs)
        ]
        assert got == [slides(e, epochs, cycles) for e in range(epochs)]  # bit for bit
        assert got == [
            beta_at(e, schedule="cyclical", beta=1.0, max_epochs=epochs, cycles=cycles) for e in range(epochs)
        ]


def test_ramp_fraction_quarter_ramps_faster():
    kw = dict(schedule="cyclical", beta=2.0, max_epochs=20, cycles=4)
    half = [beta_at(e, **kw) for e in range(5)]
    quarter = [beta_at(e, ramp_fraction=0.25, **kw) for e in range(5)]
    whole = [beta_at(e, ramp_fraction=1.0, **kw) for e in range(5)]
    assert half == pytest.approx([0.0, 0.8, 1.6, 2.0, 2.0])
    assert quarter == pytest.approx([0.0, 1.6, 2.0, 2.0, 2.0])
    assert whole == pytest.approx([0.0, 0.4, 0.8, 1.2, 1.6])
    assert all(q >= h for q, h in zip(quarter, half))


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5])
def test_ramp_fraction_out_of_range(bad):
    with pytest.raises(ValueError, match="ramp_fraction"):
        beta_at(1, schedule="cyclical", beta=1.0, max_epochs=20, ramp_fraction=bad)


# ---- decoder likelihood ---------------------------------------------------------------------
def test_logistic_likelihood_learns_its_scale_and_reports_bits_per_dim():
    from common.trial.losses import discretized_logistic_nll

    t = _task(likelihood="logistic", lr=3e-3)
    assert "log_scale" in dict(t.model.named_parameters())
    start = t.model.log_scale.detach().clone()
    first = t.train_epoch(0)
    for e in range(1, 4):
        last = t.train_epoch(e)
    assert last["train_recon"] < first["train_recon"]  # the trained term is -log p(x|z) of the logistic
    assert (t.model.log_scale.detach() < start).all()  # the scale is learned: it sharpens from MSE's sigma^2 = 1/2
    out = t.evaluate(probe=False)
    assert out["val_bpd"] == pytest.approx((out["val_nll"] + out["val_kl"]) / (3072 * math.log(2)), rel=1e-6)
    assert math.isfinite(out["val_bpd"]) and out["val_bpd"] > 0
    x = to_unit_range(t.val.x[:8])
    with torch.no_grad():
        x_hat = t.model.decode(t.model.encode(x)[0])
    assert torch.allclose(t.recon_nll(x_hat, x), discretized_logistic_nll(x, x_hat, t.model.log_scale.clamp(min=-7.0)))


def test_the_default_likelihood_is_the_slides_mse_with_no_extra_parameter():
    t = _task()
    assert t.cfg.likelihood == "mse" and "log_scale" not in dict(t.model.named_parameters())
    out = t.evaluate(probe=False)
    assert out["val_mse_kl"] == pytest.approx(out["val_recon"] + out["val_kl"])
    assert out["val_bpd"] > 7.0  # sigma^2 = 1/2 on [-1, 1] is a very loose density: honest, not flattering
