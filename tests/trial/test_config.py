"""common/trial/config/: each family's defaults (the slides), ``--set`` string coercion, range and
cross-field checks, round trips; the mitigation and lever fields of each family."""

from __future__ import annotations

import dataclasses
import math

import pytest

from common.trial.config import ConfigError, DCGANConfig, VAEConfig, VAEGANConfig
from common.trial.families import FAMILIES, config_class, for_family
from common.trial.tasks.vaegan import VAEGANTask


# ---- defaults ---------------------------------------------------------------------------------
def test_vae_defaults_match_the_slides():
    c = VAEConfig()
    assert c.family == "vae"
    assert c.seed == 42
    assert c.latent_dim == 64
    assert c.max_epochs == 20
    assert c.lr == pytest.approx(1e-3)
    assert c.beta == 1.0 and c.beta_schedule == "constant"


def test_dcgan_defaults_match_the_slides():
    c = DCGANConfig()
    assert c.family == "dcgan"
    assert c.seed == 42
    assert c.latent_dim == 100
    assert c.max_epochs == 40
    assert c.lr_g == pytest.approx(2e-4)
    assert c.lr_ratio == 1.0
    assert c.beta1 == 0.5
    assert c.lr_d == c.lr_g


@pytest.mark.parametrize("lr_g, lr_ratio", [(2e-4, 1.0), (1e-4, 4.0), (5e-5, 8.0)])
def test_dcgan_lr_d_is_lr_g_times_ratio(lr_g, lr_ratio):
    c = DCGANConfig(lr_g=lr_g, lr_ratio=lr_ratio)
    assert c.lr_d == pytest.approx(lr_g * lr_ratio)


def test_config_class_and_families():
    assert config_class("vae") is VAEConfig
    assert config_class("dcgan") is DCGANConfig
    assert {"vae", "dcgan", "vaegan"} <= set(FAMILIES)  # and any family a plugin or a test registered


def test_config_class_unknown_family():
    with pytest.raises(ConfigError, match="bogus") as e:
        config_class("bogus")
    assert "vae" in str(e.value) and "dcgan" in str(e.value)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# ---- from_dict: coercion of --set strings -------------------------------------------------------
@pytest.mark.parametrize(
    "cls, key, raw, expected, typ",
    [
        (VAEConfig, "beta", "4", 4.0, float),
        (VAEConfig, "lr", "1e-3", 1e-3, float),
        (VAEConfig, "latent_dim", "16", 16, int),
        (VAEConfig, "beta_schedule", "cyclical", "cyclical", str),
        (VAEConfig, "beta", 2, 2.0, float),  # an int from a space file is a valid float
        (VAEConfig, "latent_dim", 32.0, 32, int),  # optuna may hand back an integral float
        (DCGANConfig, "lr_ratio", "4", 4.0, float),
        (DCGANConfig, "seed", "7", 7, int),
        (DCGANConfig, "device", "cpu", "cpu", str),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_from_dict_coerces(cls, key, raw, expected, typ):
    c = cls.from_dict({key: raw})
    value = getattr(c, key)
    assert value == expected
    assert type(value) is typ


def test_from_dict_empty_is_defaults():
    assert VAEConfig.from_dict({}) == VAEConfig()
    assert DCGANConfig.from_dict({}) == DCGANConfig()


# ---- from_dict: rejected input --------------------------------------------------------------------
def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as e:
        VAEConfig.from_dict({"latnet_dim": "16"})
    msg = str(e.value)
    assert "latnet_dim" in msg
    assert "valid keys" in msg
    for key in ("latent_dim", "beta", "lr", "seed"):
        assert key in msg


def test_unknown_key_for_the_other_family():
    # lr_ratio is a DCGAN field: a VAE must reject it (and vice versa for beta).
    with pytest.raises(ConfigError, match="lr_ratio"):
        VAEConfig.from_dict({"lr_ratio": 2})
    with pytest.raises(ConfigError, match="beta"):
        DCGANConfig.from_dict({"beta": 2})


@pytest.mark.parametrize(
    "cls, key, raw",
    [
        (VAEConfig, "lr", "abc"),
        (VAEConfig, "latent_dim", "abc"),
        (VAEConfig, "latent_dim", "16.5"),
        (VAEConfig, "latent_dim", 16.5),
        (VAEConfig, "latent_dim", True),  # a bool is not an int here
        (VAEConfig, "beta", True),
        (VAEConfig, "beta", None),
        (VAEConfig, "beta_schedule", 3),
        (DCGANConfig, "lr_g", ""),
        (DCGANConfig, "lr_ratio", [4]),
    ],
)
def test_wrong_type_raises(cls, key, raw):
    with pytest.raises(ConfigError, match=key):
        cls.from_dict({key: raw})


@pytest.mark.parametrize(
    "cls, key, raw",
    [
        (VAEConfig, "lr", "-1e-3"),
        (VAEConfig, "lr", "0"),
        (VAEConfig, "lr", 2e4),
        (VAEConfig, "latent_dim", "0"),
        (VAEConfig, "latent_dim", 4097),
        (VAEConfig, "beta", "-1"),
        (VAEConfig, "beta_schedule", "bogus"),
        (VAEConfig, "seed", -1),
        (VAEConfig, "batch_size", 0),
        (VAEConfig, "max_epochs", "0"),
        (VAEConfig, "eval_samples", 8),
        (VAEConfig, "device", "tpu"),
        (DCGANConfig, "lr_g", "-1"),
        (DCGANConfig, "lr_g", 0.0),
        (DCGANConfig, "lr_ratio", "0"),
        (DCGANConfig, "lr_ratio", -2.0),
        (DCGANConfig, "beta1", 1.0),
        (DCGANConfig, "latent_dim", 0),
    ],
)
def test_out_of_range_raises(cls, key, raw):
    with pytest.raises(ConfigError, match=key):
        cls.from_dict({key: raw})


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", math.nan, math.inf])
@pytest.mark.parametrize("cls, key", [(VAEConfig, "lr"), (VAEConfig, "beta"), (DCGANConfig, "lr_ratio")])
def test_non_finite_raises(cls, key, raw):
    with pytest.raises(ConfigError, match=key):
        cls.from_dict({key: raw})


@pytest.mark.parametrize("raw", ["nan", "inf"])
def test_non_finite_for_an_int_field_raises(raw):
    with pytest.raises(ConfigError, match="latent_dim"):
        VAEConfig.from_dict({"latent_dim": raw})


def test_constructor_validates_too():
    # __post_init__ runs the same range checks: no invalid config object can exist.
    with pytest.raises(ConfigError, match="lr"):
        VAEConfig(lr=-1.0)
    with pytest.raises(ConfigError, match="lr_ratio"):
        DCGANConfig(lr_ratio=0.0)


def test_config_is_frozen():
    c = VAEConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lr = 0.5  # type: ignore[misc]


# ---- to_dict ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cfg",
    [
        VAEConfig(),
        VAEConfig(latent_dim=16, beta=0.25, beta_schedule="cyclical", cycles=2, seed=3),
        DCGANConfig(),
        DCGANConfig(lr_g=1e-4, lr_ratio=4.0, beta1=0.0, data="synthetic"),
    ],
    ids=["vae", "vae-custom", "dcgan", "dcgan-custom"],
)
def test_to_dict_round_trips(cfg):
    d = cfg.to_dict()
    assert d["family"] == cfg.family
    assert set(d) == {"family", *type(cfg).fields()}
    back = type(cfg).from_dict({k: v for k, v in d.items() if k != "family"})
    assert back == cfg


def test_to_dict_round_trips_through_strings():
    # What MLflow gives back: every param as a string.
    cfg = DCGANConfig(lr_g=1e-4, lr_ratio=4.0, latent_dim=64)
    d = {k: str(v) for k, v in cfg.to_dict().items() if k != "family"}
    assert DCGANConfig.from_dict(d) == cfg


# ---- the DCGAN's failure-mode options -------------------------------------------------------------
def test_dcgan_mitigation_defaults_are_the_slides():
    c = DCGANConfig()
    assert (c.gan_loss, c.n_critic, c.label_smoothing, c.spectral_norm, c.minibatch_disc) == ("bce", 1, 0.0, False, 0)
    assert c.d_norm == "auto" and c.d_batchnorm and c.gp_weight == 10.0 and c.minibatch_dim == 8


def test_dcgan_mitigation_coercion_and_ranges():
    c = DCGANConfig.from_dict({"spectral_norm": "true", "gan_loss": "hinge", "n_critic": "5", "minibatch_disc": "16"})
    assert c.spectral_norm is True and c.n_critic == 5 and c.minibatch_disc == 16 and c.d_batchnorm
    assert not DCGANConfig(gan_loss="wgan-gp").d_batchnorm
    assert DCGANConfig(gan_loss="wgan-gp", d_norm="batch").d_batchnorm
    assert not DCGANConfig(d_norm="none").d_batchnorm
    assert DCGANConfig(label_smoothing=0.2).label_smoothing == 0.2
    for bad in (
        {"gan_loss": "lsgan"},
        {"n_critic": 0},
        {"gp_weight": -1.0},
        {"label_smoothing": 0.5},
        {"label_smoothing": -0.1},
        {"minibatch_disc": -1},
        {"minibatch_dim": 0},
        {"d_norm": "layer"},
        {"label_smoothing": 0.1, "gan_loss": "hinge"},
        {"spectral_norm": "maybe"},
        {"gan_loss": "wgan-gp", "minibatch_disc": 8},
    ):  # a batch-coupled D breaks the per-sample penalty
        with pytest.raises(ConfigError):
            DCGANConfig.from_dict(bad)
    assert DCGANConfig.from_dict(DCGANConfig(gan_loss="wgan-gp", n_critic=5).to_dict()).n_critic == 5


# ---- the VAE's mitigations ------------------------------------------------------------------------
def test_vae_mitigation_fields_default_to_off_and_the_slides():
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
def test_vae_mitigation_fields_out_of_range(key, raw):
    with pytest.raises(ConfigError, match=key):
        VAEConfig.from_dict({key: raw})


def test_vae_mitigation_fields_round_trip_through_strings():
    cfg = VAEConfig(
        free_bits=0.25,
        perceptual_weight=100.0,
        perceptual_net="vgg16",
        perceptual_weights="/w/vgg16.pth",
        ramp_fraction=0.25,
    )
    back = VAEConfig.from_dict({k: str(v) for k, v in cfg.to_dict().items() if k != "family"})
    assert back == cfg


# ---- the VAE-GAN ----------------------------------------------------------------------------------
def test_vaegan_defaults_and_registration():
    c = VAEGANConfig()
    assert c.family == "vaegan" and config_class("vaegan") is VAEGANConfig and FAMILIES["vaegan"].config is VAEGANConfig
    assert (c.max_epochs, c.latent_dim, c.base_channels, c.hidden_dim, c.d_channels, c.d_hidden) == (
        20,
        64,
        32,
        256,
        64,
        512,
    )
    assert c.lr == pytest.approx(3e-4) and c.lr_ratio == 1.0 and c.beta1 == 0.5 and c.beta2 == 0.999
    assert c.beta == 1.0 and c.feature_layer == 2 and c.recon_weight == 1.0 and c.pixel_weight == 0.0
    assert c.gamma == pytest.approx(1e-2) and c.default_metric == "val_classifier_fd"
    assert VAEGANConfig(lr=1e-4, lr_ratio=4).lr_d == pytest.approx(4e-4)
    assert FAMILIES["vaegan"].task is VAEGANTask


def test_vaegan_round_trip_and_set_strings():
    c = VAEGANConfig(gamma=0.5, feature_layer=1, pixel_weight=0.1)
    assert VAEGANConfig.from_dict(c.to_dict()) == c
    assert c.to_dict()["family"] == "vaegan"
    s = VAEGANConfig.from_dict(for_family({"vaegan.gamma": "1e-3", "vae.beta": "4", "feature_layer": "1"}, "vaegan"))
    assert s.gamma == pytest.approx(1e-3) and s.feature_layer == 1 and s.beta == 1.0


def test_vaegan_unknown_key_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown vaegan config key") as e:
        VAEGANConfig.from_dict({"lr_g": 1e-4})  # a DCGAN name: the VAE-GAN calls it lr
    assert "gamma" in str(e.value) and "feature_layer" in str(e.value)
    with pytest.raises(ConfigError, match="family"):
        VAEGANConfig.from_dict({"family": "vae"})


@pytest.mark.parametrize(
    "key, value",
    [
        ("lr", 0.0),
        ("lr", 2.0),
        ("lr_ratio", 0.0),
        ("beta1", 1.0),
        ("beta2", 1.0),
        ("beta", -1.0),
        ("feature_layer", -1),
        ("feature_layer", 4),
        ("recon_weight", -0.5),
        ("pixel_weight", -1.0),
        ("gamma", -1e-3),
        ("gamma", float("nan")),
        ("d_channels", 0),
        ("base_channels", 0),
        ("latent_dim", 0),
        ("hidden_dim", -1),
        ("d_hidden", -1),
    ],
)
def test_vaegan_out_of_range_values_are_rejected(key, value):
    with pytest.raises(ConfigError, match=key):
        VAEGANConfig.from_dict({key: value})


def test_vaegan_cross_field_checks():
    with pytest.raises(ConfigError, match="d_hidden=0"):
        VAEGANConfig(feature_layer=3, d_hidden=0)
    with pytest.raises(ConfigError, match="no reconstruction term"):
        VAEGANConfig(recon_weight=0.0, pixel_weight=0.0)
    VAEGANConfig(feature_layer=3, d_hidden=16)
    VAEGANConfig(recon_weight=0.0, pixel_weight=1.0)  # pixel-only VAE + GAN is allowed


# ---- precision ------------------------------------------------------------------------------------
def test_vae_defaults_to_bf16_and_the_others_to_fp32():
    assert (VAEConfig().precision, DCGANConfig().precision, VAEGANConfig().precision) == ("bf16", "fp32", "fp32")
    with pytest.raises(ConfigError, match="precision"):
        VAEGANConfig(precision="bf16")
