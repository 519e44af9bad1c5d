"""common/report/mitigations.py: matched on/off comparisons over seeds and the verdict their interval
allows (pure, no MLflow)."""

from __future__ import annotations

import pytest
from fake_trials import DCGAN, VAE, cyclical_trials, result, trial

from common.report.mitigation_section import mitigation_blocks
from common.report.mitigations import measure, verdict


def test_matched_pairs_over_seeds():
    results = measure(cyclical_trials())
    kl = result(results, "cyclical β annealing", "test_kl")
    assert sorted(kl.pairs) == [("1", 30.0, 20.0), ("2", 34.0, 22.0)] and kl.seeds == 2
    s = kl.stats()
    assert s["on"] == 32.0 and s["off"] == 21.0 and s["gain"] == 11.0
    assert s["gain_sd"] == pytest.approx(2**0.5) and s["rel"] == pytest.approx(11 / 21 * 100)
    # Two seeds: the 95% t-interval of the gains (t = 12.71 at 1 degree of freedom) includes 0.
    assert s["gain_lo"] == pytest.approx(11 - 12.706205, abs=1e-5) and s["gain_hi"] == pytest.approx(
        11 + 12.706205, abs=1e-5
    )
    assert verdict(kl) == "inconclusive; with-mean > 10"
    probe = result(results, "cyclical β annealing", "test_probe_acc")
    assert probe.stats()["gain"] == pytest.approx(0.045)
    assert kl.settings == {"beta_schedule=cyclical, cycles=2, ramp_fraction=0.5": 2}
    assert not result(results, "free bits", "test_kl").pairs  # nothing differs only in free_bits


def test_a_gain_is_called_a_gain_only_when_its_interval_excludes_zero():
    consistent = [
        trial(VAE, {"test_kl": kl_on}, seed=s, beta_schedule="cyclical") for s, kl_on in ((1, 30), (2, 31), (3, 32))
    ]
    consistent += [trial(VAE, {"test_kl": kl_off}, seed=s) for s, kl_off in ((1, 20), (2, 20.5), (3, 22))]
    kl = result(measure(consistent), "cyclical β annealing", "test_kl")
    s = kl.stats()
    assert kl.seeds == 3 and s["gain_lo"] > 0 and verdict(kl) == "better; with-mean > 10"
    noisy = [trial(VAE, {"test_kl": on}, seed=s, beta_schedule="cyclical") for s, on in ((1, 30), (2, 10), (3, 25))]
    noisy += [trial(VAE, {"test_kl": off}, seed=s) for s, off in ((1, 20), (2, 22), (3, 24))]
    r = result(measure(noisy), "cyclical β annealing", "test_kl")
    assert r.stats()["gain_lo"] < 0 < r.stats()["gain_hi"] and verdict(r).startswith("inconclusive")
    worse = [trial(DCGAN, {"test_classifier_fd": 50.0 + s}, seed=s, gan_loss="hinge") for s in (1, 2, 3)]
    worse += [trial(DCGAN, {"test_classifier_fd": 40.0 + 1.5 * s}, seed=s) for s in (1, 2, 3)]
    assert verdict(result(measure(worse), "hinge loss", "test_classifier_fd")) == "worse"  # lower is better


def test_only_the_mitigations_fields_and_seed_may_differ():
    trials = cyclical_trials() + [
        trial(VAE, {"test_kl": 99.0}, seed=3, beta_schedule="cyclical", lr=0.002),  # no control with lr=0.002
        trial(VAE, {"test_kl": 1.0}, seed=3, latent_dim=32),  # a control, but with another latent_dim
        trial(VAE, {"test_kl": 50.0}, seed=1, beta_schedule="linear"),  # neither on nor off
        trial(VAE, {"test_kl": 99.0}, "stopped", seed=2, beta_schedule="cyclical"),  # stopped: no final value
        trial({**VAE, "data": "synthetic"}, {"test_kl": 0.5}, seed=1),  # other data
    ]
    kl = result(measure(trials), "cyclical β annealing", "test_kl")
    assert sorted(kl.pairs) == [("1", 30.0, 20.0), ("2", 34.0, 22.0)]
    assert (kl.n_on, kl.n_off) == (3, 4)  # completed trials on / off, matched or not


def test_unpaired_seeds_duplicates_and_settings():
    trials = [
        trial(DCGAN, {"test_class_kl": 0.20, "test_classifier_fd": 40.0}, seed=1, minibatch_disc=32),
        trial(DCGAN, {"test_class_kl": 0.50, "test_classifier_fd": 46.0}, seed=2),
        trial(DCGAN, {"test_class_kl": 0.46, "test_classifier_fd": 44.0}, seed=2),
    ]  # same config and seed: averaged
    div = result(measure(trials), "minibatch discrimination", "test_class_kl")
    assert div.pairs == [(None, 0.20, pytest.approx(0.48))] and div.seeds == 0  # seeds differ: one unpaired
    assert div.stats()["gain"] == pytest.approx(-0.28) and verdict(div) == "inconclusive"  # one comparison
    beta = [
        trial(VAE, {"test_kl": 10.0}, beta=4.0),
        trial(VAE, {"test_kl": 80.0}, beta=0.5),
        trial(VAE, {"test_kl": 50.0}),
    ]
    r = result(measure(beta), "β-VAE", "test_kl")
    assert sorted(p[1] for p in r.pairs) == [10.0, 80.0] and r.settings == {"beta=4.0": 1, "beta=0.5": 1}


def test_combined_and_single_gan_mitigations():
    trials = [
        trial(DCGAN, {"test_classifier_fd": 30.0, "grad_norm_d": 1.0}, spectral_norm=True, lr_ratio=4.0),
        trial(DCGAN, {"test_classifier_fd": 36.0, "grad_norm_d": 5.0}),
        trial(DCGAN, {"test_classifier_fd": 33.0}, spectral_norm=True),
        trial(DCGAN, {"test_classifier_fd": 39.0}, "diverged", {"diverged_epoch": "2"}, lr_ratio=4.0),
    ]
    results = measure(trials)
    both = result(results, "spectral norm + TTUR", "grad_norm_d")
    assert both.pairs == [("42", 1.0, 5.0)] and verdict(both) == "inconclusive"  # one seed proves nothing
    assert result(results, "spectral norm alone", "test_classifier_fd").pairs == [("42", 33.0, 36.0)]
    ttur = result(results, "TTUR alone", "test_classifier_fd")
    # with spectral norm in both: 30 vs 33; without: the lr_ratio=4 trial diverged, so no value there
    assert ttur.pairs == [("42", 30.0, 33.0)] and ttur.sizes == (2, 2) and ttur.ended == {"diverged": (1, 0)}
    lone = result(measure(trials[1:]), "TTUR alone", "test_classifier_fd")
    assert not lone.pairs and lone.matched and lone.sizes == (1, 1) and lone.ended == {"diverged": (1, 0)}
    assert "no completed on and off trials" in mitigation_blocks([lone], "s")[4][2][0][5]
    hinge = [trial(DCGAN, {"test_classifier_fd": 50.0}, gan_loss="hinge"), trial(DCGAN, {"test_classifier_fd": 40.0})]
    h = result(measure(hinge), "hinge loss", "test_classifier_fd")
    assert h.stats()["gain"] == 10.0 and verdict(h) == "inconclusive"
    wgan = [
        trial(DCGAN, {"test_classifier_fd": 30.0}, gan_loss="wgan-gp", n_critic=5),
        trial(DCGAN, {"test_classifier_fd": 40.0}),
    ]
    assert result(measure(wgan), "WGAN-GP loss", "test_classifier_fd").pairs == [("42", 30.0, 40.0)]
