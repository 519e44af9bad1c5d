"""common/report/values.py: how a value is printed and what it was measured on."""

from __future__ import annotations

from fake_trials import VAE, trial

from common.report.values import fmt_value, measured_on


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
