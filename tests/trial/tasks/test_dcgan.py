"""common/trial/tasks/dcgan.py: the slides' training step bit for bit, every loss and D option through an
epoch, G's EMA, R1, the class-coverage detector, the linear probe of D and a PBT clone (CPU, tiny nets,
synthetic data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from common.base.data import load_dataset, to_unit_range
from common.base.device import seed_everything
from common.metrics.maths import linear_probe
from common.trial.config import ConfigError, DCGANConfig
from common.trial.losses import d_loss_bce, g_loss_nonsaturating, r1_penalty
from common.trial.tasks.dcgan import DCGANTask

TINY = dict(
    data="synthetic",
    batch_size=64,
    eval_samples=64,
    g_channels=16,
    d_channels=8,
    g_hidden=0,
    d_hidden=16,
    latent_dim=8,
    val_size=128,
)


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic")


def _task(data, **kw) -> DCGANTask:
    cfg = DCGANConfig(**{**TINY, **kw})
    gen = seed_everything(cfg.seed)
    return DCGANTask(cfg, data, torch.device("cpu"), gen)


# ---- the training step --------------------------------------------------------------------------
def test_seed_training_step_is_bit_for_bit_the_original(data):
    """The default config trains exactly as the pre-mitigation loop did (inlined here)."""
    new = _task(data)
    m_new = new.train_epoch(0)

    old = _task(data)
    total, steps = torch.zeros(4), 0
    for real in old.train.batches(old.cfg.batch_size, old.generator):  # the original train_epoch
        z = torch.randn(len(real), old.cfg.latent_dim)
        fake = old.g(z)
        real_logits, fake_logits = old.d(real), old.d(fake.detach())
        d_loss = d_loss_bce(real_logits, fake_logits)
        old.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        old.opt_d.step()
        g_loss = g_loss_nonsaturating(old.d(fake))
        old.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        old.opt_g.step()
        total += torch.stack(
            [
                d_loss.detach(),
                g_loss.detach(),
                torch.sigmoid(real_logits.detach()).mean(),
                torch.sigmoid(fake_logits.detach()).mean(),
            ]
        )
        steps += 1
    d, g, dr, df = (total / steps).tolist()
    for name in ("g", "d"):
        sa, sb = new.models[name].state_dict(), old.models[name].state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    assert (m_new["d_loss"], m_new["g_loss"], m_new["d_real"], m_new["d_fake"]) == (d, g, dr, df)
    assert m_new["loss_ratio"] == g / d


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(gan_loss="hinge", spectral_norm=True, minibatch_disc=4),
        dict(gan_loss="wgan-gp", n_critic=3, lr_ratio=2.0, spectral_norm=True, beta1=0.0, beta2=0.9),
        dict(label_smoothing=0.1, spectral_norm=True, d_norm="none"),
    ],
    ids=["slides", "hinge-sn-mbd", "wgan-gp-ncritic3-sn", "smooth-sn-nobn"],
)
def test_train_epoch_options_and_detectors(data, kw):
    task = _task(data, **kw)
    m = task.train_epoch(0)
    assert all(math.isfinite(v) for v in m.values()), m
    assert m["grad_norm_d"] > 0 and m["grad_norm_g"] > 0
    assert ("loss_ratio" in m) == (task.cfg.gan_loss == "bce")
    assert ({"grad_penalty", "wasserstein"} <= set(m)) == (task.cfg.gan_loss == "wgan-gp")
    n_batches = task.train.num_batches(task.cfg.batch_size)
    g_steps = task.opt_g.state[next(iter(task.g.parameters()))]["step"].item()
    d_steps = task.opt_d.state[next(iter(task.d.parameters()))]["step"].item()
    assert (d_steps, g_steps) == (n_batches, n_batches // task.cfg.n_critic)


def test_n_critic_larger_than_an_epoch_is_a_config_error(data):
    with pytest.raises(ConfigError, match="n_critic"):
        _task(data, n_critic=100)


# ---- mode collapse: the fixed-z samples' diversity; class coverage as a number ------------------
def test_real_images_cover_the_classes_and_one_image_repeated_does_not(data):
    task = _task(data)
    real = to_unit_range(task.train.x[:200])  # train images scored against the validation images
    scores = task.sample_scores(real)
    assert scores["val_class_coverage"] == 1.0 and task.collapse_flags(scores)["mode_collapse"] == 0.0
    assert 0.8 < scores["val_diversity"] < 1.25  # another draw of the same images reads about 1
    assert scores["val_class_kl"] < 0.2 and scores["val_classifier_fd"] < 5.0
    one = real[:1].repeat(200, 1, 1, 1) + 1e-3 * torch.randn(200, 3, 32, 32)
    collapsed = task.sample_scores(one.clamp(-1, 1))
    assert collapsed["val_class_coverage"] == pytest.approx(0.1) and collapsed["val_class_kl"] > 2.0
    assert task.collapse_flags(collapsed)["mode_collapse"] == 1.0 and collapsed["val_diversity"] < 0.05
    assert collapsed["val_classifier_fd"] > 5 * scores["val_classifier_fd"]
    assert collapsed["val_classifier_is"] < 1.05 and scores["val_classifier_is"] > 3.0


def test_evaluate_reports_the_sample_scores_and_the_detector(data):
    task = _task(data)
    m = task.evaluate(probe=False)
    assert set(m) == {
        "val_classifier_fd",
        "val_randconv_fd",
        "val_class_coverage",
        "val_class_kl",
        "val_classifier_is",
        "val_diversity",
        "mode_collapse",
    }


def test_a_pbt_clone_takes_the_donors_weights_and_moments_but_keeps_its_own_lr_and_betas(data):
    donor, clone = _task(data, lr_g=2e-4, beta1=0.5), _task(data, lr_g=4e-4, lr_ratio=2.0, beta1=0.0, seed=7)
    donor.train_epoch(0)
    clone.load_state_dict(donor.state_dict(), keep_hyperparams=True)
    assert all(torch.equal(a, b) for a, b in zip(donor.g.state_dict().values(), clone.g.state_dict().values()))
    assert clone.opt_g.state_dict()["state"][0]["exp_avg"].equal(donor.opt_g.state_dict()["state"][0]["exp_avg"])
    assert [(g["lr"], g["betas"][0]) for g in clone.opt_g.param_groups] == [(4e-4, 0.0)]
    assert [g["lr"] for g in clone.opt_d.param_groups] == [pytest.approx(8e-4)]
    clone.load_state_dict(donor.state_dict())  # a trial's own restore takes everything, as before
    assert [(g["lr"], g["betas"][0]) for g in clone.opt_g.param_groups] == [(2e-4, 0.5)]


# ---- EMA of G ------------------------------------------------------------------------------------
def test_the_ema_equals_a_manual_exponential_average_of_gs_weights(data):
    decay = 0.9
    task = _task(data, ema_decay=decay)
    manual, snapshots = None, []
    step = task.opt_g.step

    def recording_step(*args, **kwargs):  # G's weights after each of its steps
        out = step(*args, **kwargs)
        snapshots.append({k: v.detach().clone() for k, v in task.g.state_dict().items()})
        return out

    task.opt_g.step = recording_step
    task.train_epoch(0)
    for snap in snapshots:  # AveragedModel's first update copies; then ema = d * ema + (1 - d) * w
        manual = (
            snap
            if manual is None
            else {
                k: (decay * manual[k] + (1 - decay) * snap[k] if snap[k].is_floating_point() else snap[k]) for k in snap
            }
        )
    ema = task.sampler.state_dict()
    assert len(snapshots) == task.train.num_batches(task.cfg.batch_size)
    floats = [k for k, v in manual.items() if v.is_floating_point()]  # weights and BatchNorm statistics
    for k in floats:
        torch.testing.assert_close(ema[k], manual[k], rtol=1e-5, atol=1e-6, msg=k)
    last = task.g.state_dict()
    assert any(not torch.equal(ema[k], last[k]) for k in floats)  # the average is not the last iterate


def test_with_ema_the_samples_scores_and_export_come_from_the_average(data):
    task = _task(data, ema_decay=0.5)
    task.train_epoch(0)
    z = torch.randn(4, task.cfg.latent_dim)
    task.g_ema.module.eval()
    assert torch.equal(task.generate(z), task.g_ema.module(z))
    assert task.sampler is task.g_ema.module
    exported = task.export_state()["g"]
    assert all(torch.equal(exported[k], v) for k, v in task.g_ema.module.state_dict().items())
    sampler = type(task).build_sampler(task.cfg, task.export_state()).eval()  # what best.pt gives the final stage
    assert torch.equal(sampler(z), task.g_ema.module(z))
    restored = _task(data, ema_decay=0.5)  # a checkpoint restore continues the same average
    restored.load_state_dict(task.state_dict())
    assert int(restored.g_ema.n_averaged) == int(task.g_ema.n_averaged) > 0
    off = _task(data)
    assert off.g_ema is None and off.sampler is off.g  # off: no copy at all


# ---- R1 -------------------------------------------------------------------------------------------
def test_r1_adds_gamma_over_two_times_the_penalty_to_ds_loss(data):
    plain, with_r1 = _task(data), _task(data, r1_weight=4.0)
    real = to_unit_range(plain.train.x[:8])
    fake = torch.rand_like(real) * 2 - 1
    rl, fl = plain.d(real), plain.d(fake)
    base, _ = plain.d_objective(real, fake, rl, fl)
    with_r1.d.load_state_dict(plain.d.state_dict())
    total, _ = with_r1.d_objective(real, fake, with_r1.d(real), with_r1.d(fake))
    assert total.item() == pytest.approx(base.item() + 2.0 * r1_penalty(plain.d, real).item(), rel=1e-4)
    with pytest.raises(ConfigError, match="r1_weight"):
        DCGANConfig(gan_loss="wgan-gp", r1_weight=1.0)


# ---- the linear probe of D ----------------------------------------------------------------------
def test_dcgan_task_probe_accuracy(data):
    """The probe is the shared protocol (fit on the train subset, C chosen on the validation images) on
    D's pooled features of the right splits: recomputed here from those features, the numbers agree."""
    task = _task(data)
    feats = {s: task.probe_features(getattr(task, s).x) for s in ("train", "val", "test")}
    labels = {s: getattr(task, s).y.numpy() for s in ("train", "val", "test")}
    ref = linear_probe(
        feats["train"], labels["train"], feats["val"], labels["val"], feats["test"], labels["test"], seed=task.cfg.seed
    )
    with_probe = task.evaluate(probe=True)
    assert with_probe["val_probe_acc"] == ref["val_acc"] and "test_probe_acc" not in with_probe
    assert ref["val_acc"] > 0.2  # D's random features already beat chance (0.1) on the synthetic classes
    without = task.evaluate(probe=False)
    assert "val_probe_acc" not in without and without["val_classifier_fd"] == with_probe["val_classifier_fd"]
    tested = task.evaluate("test", probe=True)  # only the loop's end-of-trial call scores the test split
    assert (tested["val_probe_acc"], tested["test_probe_acc"]) == (ref["val_acc"], ref["test_acc"])
    assert not any(k.startswith("val_") and k != "val_probe_acc" for k in tested)


def test_probe_features_use_real_data_batchnorm_statistics(data):
    """D's running statistics were updated by fake batches too; the probe recomputes them on real
    train images, so corrupting them changes nothing (and a random-init D gets the same treatment)."""
    task = _task(data)
    before = task.probe_features(task.val.x[:32])
    for m in task.d.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.add_(5.0)
            m.running_var.mul_(9.0)
    after = task.probe_features(task.val.x[:32])
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
    task.d.eval()
    with torch.no_grad():
        plain = task.d.probe_features(to_unit_range(task.val.x[:32])).numpy()
    assert np.abs(plain - before).max() > 1e-2  # eval mode alone would have used the corrupted statistics


def test_a_collapse_to_a_few_images_of_every_class_is_flagged_where_class_coverage_sees_nothing(data):
    task = _task(data)
    real = to_unit_range(task.train.x[:200])
    few = torch.cat([real[task.train.y[:200] == c][:1] for c in range(10)])  # one image per class
    near = few.repeat_interleave(20, 0) + 1e-2 * torch.randn(200, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    scores = task.sample_scores(near.clamp(-1, 1))
    assert scores["val_class_coverage"] >= 0.8  # every class there: the old flag (coverage < 0.8) stayed quiet
    assert scores["val_diversity"] < 0.3 and task.collapse_flags(scores)["mode_collapse"] == 1.0


def test_the_detector_separates_a_trained_dcgan_from_itself_forced_to_collapse(data):
    """A DCGAN trained for 8 epochs on the synthetic images (seconds) draws diverse samples: not
    flagged. The same generator fed one constant z, or 10 distinct z each repeated with a little noise
    (near-duplicates, as a collapsing GAN draws them): flagged. BENCHMARKS.md measures the same on CIFAR-10."""
    task = _task(data, g_channels=32, d_channels=16, latent_dim=16, batch_size=32, eval_samples=256)
    for epoch in range(8):
        task.train_epoch(epoch)
    z = torch.randn(256, 16, generator=torch.Generator().manual_seed(5))
    near = z[:10].repeat_interleave(26, 0)[:256] + 0.02 * torch.randn(
        256, 16, generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        healthy, forced, constant = (task.sample_scores(task.generate(x)) for x in (z, near, z[:1].expand(256, -1)))
    assert healthy["val_diversity"] > 0.5 and task.collapse_flags(healthy)["mode_collapse"] == 0.0
    assert forced["val_diversity"] < 0.2 and task.collapse_flags(forced)["mode_collapse"] == 1.0
    assert constant["val_diversity"] == 0.0 and task.collapse_flags(constant)["mode_collapse"] == 1.0
