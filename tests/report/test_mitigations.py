"""common/report/mitigations.py: matched on/off comparisons, detector flags, the Pareto filter (pure, no MLflow)."""

from __future__ import annotations

import pytest

from common.report.flags import flag_summary, trial_flags
from common.report.mitigation_section import mitigation_blocks
from common.report.mitigations import MITIGATIONS, measure, verdict
from common.report.pareto import non_dominated, pareto_section
from common.report.values import fmt_value, measured_on

VAE = {
    "family": "vae",
    "seed": "1",
    "data": "cifar10",
    "lr": "0.001",
    "latent_dim": "64",
    "beta": "1.0",
    "beta_schedule": "constant",
    "cycles": "4",
    "ramp_fraction": "0.5",
    "free_bits": "0.0",
    "perceptual_weight": "0.0",
    "perceptual_net": "randconv",
    "max_epochs": "10",
    "eval_samples": "1000",
}
DCGAN = {
    "family": "dcgan",
    "seed": "42",
    "data": "cifar10",
    "lr_g": "0.0002",
    "lr_ratio": "1.0",
    "spectral_norm": "False",
    "gan_loss": "bce",
    "gp_weight": "10.0",
    "n_critic": "1",
    "label_smoothing": "0.0",
    "minibatch_disc": "0",
    "minibatch_dim": "8",
    "max_epochs": "10",
    "eval_samples": "1000",
}
SIZES = {"n_train_images": 10000.0, "n_val_images": 5000.0, "n_test_images": 10000.0}


def trial(base, metrics, status="completed", tags=None, **params):
    tid = f"t{next(_ids)}"
    return {
        "id": tid,
        "trial_id": tid,
        "params": {**base, **{k: str(v) for k, v in params.items()}},
        "metrics": {**SIZES, **metrics},
        "tags": {"trial_status": status, **(tags or {})},
    }


_ids = iter(range(10**6))


def result(results, name, metric):
    return next(r for r in results if r.mitigation.name == name and r.target.metric == metric)


def cyclical_trials():
    """2 seeds x cyclical / constant, otherwise identical; cycles may differ (the schedule's own field)."""
    return [
        trial(VAE, {"test_kl": 30.0, "test_probe_acc": 0.40}, seed=1, beta_schedule="cyclical", cycles=2),
        trial(VAE, {"test_kl": 20.0, "test_probe_acc": 0.36}, seed=1),
        trial(VAE, {"test_kl": 34.0, "test_probe_acc": 0.42}, seed=2, beta_schedule="cyclical", cycles=2),
        trial(VAE, {"test_kl": 22.0, "test_probe_acc": 0.37}, seed=2),
    ]


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


def test_perceptual_bias_and_blocks():
    trials = [
        trial(
            VAE,
            {"test_randconv_fd": 30.0, "test_classifier_fd": 3.0},
            tags={"metric_bias": "same features"},
            perceptual_weight=0.1,
        ),
        trial(VAE, {"test_randconv_fd": 40.0, "test_classifier_fd": 4.0}),
    ]
    results = measure(trials)
    perc = result(results, "perceptual loss", "test_randconv_fd")
    assert perc.biased == 1 and result(results, "perceptual loss", "test_classifier_fd").biased == 0
    blocks = mitigation_blocks(results, "test scope")
    assert blocks[0] == ("h2", "Failure modes and mitigations") and "test scope" in blocks[1][1]
    catalogue = blocks[2][2]
    assert [row[0] for row in catalogue] == [m.name for m in MITIGATIONS]
    rows = {(row[0], row[1]): row for row in blocks[4][2]}
    row = rows[("perceptual loss", "test_randconv_fd")]
    assert row[3:6] == ["30.00", "40.00", "−10.00 (−25.0%), no interval (1 pair)"] and "BIASED" in row[7]
    assert row[7].startswith("inconclusive")
    assert "sharper textures" in row[6] and "1,000 fixed-z generated" in row[8] and "10,000 images" in row[8]
    assert ("free bits", "test_kl") not in rows and "free bits" in blocks[5][1]  # the one not-measured line
    assert blocks[5][1].startswith("Not measured in this experiment")
    assert any("BIASED" in note and "randconv" in note for note in blocks[6][1])


def test_flags_and_summary():
    assert trial_flags({"posterior_collapse": 1.0}, {"trial_status": "diverged", "diverged_epoch": "3"}) == [
        "diverged@3",
        "posterior collapse",
    ]
    assert trial_flags({"mode_collapse": 1.0, "posterior_collapse": 0.0}, {"trial_status": "stopped"}) == [
        "stopped",
        "mode collapse",
    ]
    assert trial_flags({"mode_collapse": 0.0}, {"trial_status": "completed"}) == []
    assert trial_flags({}, {"trial_status": "completed", "metric_bias": "x"}) == ["randconv_fd biased"]
    collapsed = {"trial_status": "collapsed", "collapsed_epoch": "4", "detector.mode_collapse": "epoch 2"}
    assert trial_flags({"mode_collapse": 1.0}, collapsed) == ["collapsed@4", "mode collapse"]
    assert trial_flags(
        {"posterior_collapse": 0.0}, {"trial_status": "completed", "detector.posterior_collapse": "epoch 2"}
    ) == ["transient posterior collapse@2"]
    assert (
        flag_summary([["diverged@3"], [], ["diverged@1", "mode collapse"]]) == "2 of 3; diverged: 2; mode collapse: 1."
    )


def test_non_dominated_mixed_directions():
    # (val_probe_acc max, val_classifier_fd min)
    points = [(0.40, 50.0), (0.35, 40.0), (0.30, 45.0), (0.38, 60.0), (0.20, 35.0), (0.40, 50.0)]
    assert non_dominated(points, ["max", "min"]) == [0, 1, 4, 5]  # equal points both stay
    assert non_dominated(points, ["min", "max"]) == [2, 3, 4]
    assert non_dominated(points, ["max", "max"]) == [0, 3, 5]
    assert non_dominated([(1.0, 2.0, 3.0), (1.0, 2.0, 4.0)], ["min"] * 3) == [0]
    assert non_dominated([], ["max", "min"]) == []
    with pytest.raises(ValueError, match="'max' or 'min'"):
        non_dominated(points, ["max", "up"])
    with pytest.raises(ValueError, match="2 objective values"):
        non_dominated([(1.0,)], ["max", "min"])


def test_pareto_section():
    keys = ["val_probe_acc", "val_classifier_fd"]
    trials = [
        trial(VAE, {"val_probe_acc": a, "val_classifier_fd": fd}, latent_dim=lat)
        for a, fd, lat in ((0.40, 50.0, 16), (0.35, 40.0, 32), (0.30, 45.0, 64))
    ]
    trials.append(trial(VAE, {"val_probe_acc": 0.9, "val_classifier_fd": 1.0}, "diverged", latent_dim=128))  # left out
    blocks, fig = pareto_section(trials, keys, ["max", "min"], ["latent_dim"], "f.png", "VAE")
    assert fig is not None and "2 are non-dominated" in blocks[1][1] and "1 other trial(s) left out" in blocks[1][1]
    table = blocks[-1]
    assert table[1] == ["trial_id", "latent_dim", *keys, "flags"]
    assert [row[1:4] for row in table[2]] == [["16", "40.00%", "50.00"], ["32", "35.00%", "40.00"]]
    none, no_fig = pareto_section(trials[3:], keys, ["max", "min"], [], "f.png", "VAE")
    assert no_fig is None and "None of its 1 trials" in none[-1][1]


def test_formatting_and_measured_on():
    t = trial(VAE, {})
    assert measured_on("test_kl", t) == "cifar10, test split, 10,000 images, best epoch (on validation)"
    assert (
        measured_on("val_active_units", t)
        == "cifar10, validation: 5,000 images of the train split outside the train subset, final epoch"
    )
    assert "1,000 fixed-z generated images vs validation: 5,000 images" in measured_on("val_classifier_fd", t)
    assert "domain-classifier features (not Inception FID)" in measured_on("val_classifier_fd", t)
    probe = measured_on("test_probe_acc_pixels", t)
    assert "raw pixels" in probe and "C chosen on the validation" in probe and "scored on the test split" in probe
    assert (
        measured_on("train_time_s", {**t, "tags": {"device": "cpu"}}, 7) == "cumulative training time, 7 epochs on cpu"
    )
    assert fmt_value("test_probe_acc", 0.3512) == "35.12%" and fmt_value("g_loss", 3.8661) == "3.866"
    assert fmt_value("test_bpd", 4.56789) == "4.568"
