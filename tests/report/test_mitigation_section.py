"""common/report/mitigation_section.py: the report's 'Failure modes and mitigations', from matched
trials (pure blocks) and as built from a fake experiment of three sweeps."""

from __future__ import annotations

from fake_sweep import section, table_row
from fake_trials import VAE, result, trial

from common.report.mitigation_section import mitigation_blocks
from common.report.mitigations import catalogue, measure
from common.trial.claims import PROBE


def _claim(name: str, metric: str) -> str:
    """The catalogue's claim for one mitigation's target: the cell the report must carry."""
    m = next(m for m in catalogue() if m.name == name)
    return next(t.claim for t in m.targets if t.metric == metric)


def test_mitigation_gain_measured_over_seeds_and_parents(mitigations_report):
    _, md, parents = mitigations_report
    sec = section(md, "Failure modes and mitigations")
    assert "all 16 trial runs of experiment 'mitigations' (children of 3 sweep parent run(s)" in sec
    assert table_row(sec, "cyclical β annealing", "vae").count("KL > 10") == 1  # the catalogue row
    kl = table_row(sec, "cyclical β annealing", "test_kl")
    # seed 1: 30 vs 20, seed 2: 34 vs 22 -> with 32 ± 2.83, without 21 ± 1.41, gain +11 (+52.4%); two seeds give a
    # 95% t-interval of 11 ± 12.71, which includes 0: inconclusive, whatever the mean says
    assert (
        "| 2 pair(s), 2 seed(s) | 32.00 ± 2.83 | 21.00 ± 1.41 | +11.00 (+52.4%), 95% CI [−1.71, +23.71] | KL > 10 |"
    ) in kl
    assert "inconclusive; with-mean > 10" in kl and "cifar10, test split, 10,000 images, best epoch" in kl
    probe = table_row(sec, "cyclical β annealing", "test_probe_acc")
    assert "41.00% ± 1.41%" in probe and "36.50% ± 0.71%" in probe
    assert "+4.50 pp (+12.3%), 95% CI [−1.85 pp, +10.85 pp]" in probe
    assert f"| {PROBE.claim} |" in probe and "scored on the test split, 10,000 images" in probe
    assert (
        sec.count(
            "cyclical β annealing: on-settings compared: beta_schedule=cyclical, cycles=2, "
            "ramp_fraction=0.5 (2 pair(s))."
        )
        == 1
    )  # one note for both targets


def test_mitigation_not_measured_bias_and_gan(mitigations_report):
    _, md, _ = mitigations_report
    sec = section(md, "Failure modes and mitigations")
    # Mitigations with no matched trials collapse into one line naming the command that measures them.
    line = next(ln for ln in sec.splitlines() if ln.startswith("Not measured in this experiment"))
    assert "free bits" in line and "spectral norm + TTUR" in line and "sweeps/ablate_cyclical.py" in line
    assert not [ln for ln in sec.splitlines() if ln.startswith("| free bits | test_kl |")]
    perc = table_row(sec, "perceptual loss", "test_randconv_fd")
    assert (
        "| 41.00 | 52.00 | −11.00 (−21.2%), no interval (1 pair) | sharper textures, better details | "
        "inconclusive; BIASED"
    ) in perc
    assert "perceptual loss / test_randconv_fd: BIASED" in sec
    assert "BIASED" not in table_row(sec, "perceptual loss", "test_classifier_fd")
    div = table_row(sec, "minibatch discrimination", "test_class_kl")
    assert "| 0.20 | 0.50 | −0.30 (−60.0%), no interval (1 pair) | +20–30% diversity | inconclusive |" in div
    assert "512 fixed-z generated images vs test split" in div
    assert "TTUR alone: of the 1 on and 1 off trials in matched groups, diverged 1 on / 0 off." in sec


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
    names = [row[0] for row in blocks[2][2]]
    assert names == [m.name for m in catalogue()]
    rows = {(row[0], row[1]): row for row in blocks[4][2]}
    row = rows[("perceptual loss", "test_randconv_fd")]
    assert row[3:6] == ["30.00", "40.00", "−10.00 (−25.0%), no interval (1 pair)"] and "BIASED" in row[7]
    assert row[7].startswith("inconclusive")
    assert (
        row[6] == _claim("perceptual loss", "test_randconv_fd")
        and "1,000 fixed-z generated" in row[8]
        and "10,000 images" in row[8]
    )
    assert ("free bits", "test_kl") not in rows and "free bits" in blocks[5][1]  # the one not-measured line
    assert blocks[5][1].startswith("Not measured in this experiment")
    assert any("BIASED" in note and "randconv" in note for note in blocks[6][1])
