"""common/report/pareto.py: the non-dominated filter, the section's blocks, and the Pareto fronts of
multi-objective sweeps in a built report (per family, and over the families one parent searched)."""

from __future__ import annotations

from fake_sweep import GAN_BASE, PNG_MAGIC, VAE_BASE, gan_rows, log_parent, log_trial, section, vae_rows
from fake_trials import VAE, trial
from mlflow import MlflowClient

from common.base.objective import Objective
from common.report.build import build_report
from common.report.pareto import pareto_section


def test_pareto_front(mitigations_report):
    out, md, parents = mitigations_report
    sec = section(md, "Pareto front (multi-objective sweeps)")
    assert f"VAE, parent run {parents['new']}: val_probe_acc (max) and val_classifier_fd (min)" in sec
    assert "6 completed trials that logged every objective (1 other trial(s) left out); 3 are non-dominated" in sec
    png = out / "figures" / "vae_pareto.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and "figures/vae_pareto.png" in sec
    table = sec[sec.index("| trial_id") :]
    ids = [line.split(" | ")[0][2:] for line in table.splitlines()[2:]]
    assert ids == ["vae_00011", "vae_00012", "vae_00015"]  # best probe_acc first
    assert "posterior collapse" in table and "40.00%" in table and "35.00" in table
    assert "DCGAN, parent" not in sec  # a single-objective sweep has no front


def test_a_sweep_over_several_families_gets_one_front_with_the_slides_models_on_it(sweep, tmp_path):
    """sweeps/tradeoff3.py: one parent, a multi-objective search per family; the slides preset's runs
    (another, older parent of the experiment) are placed on the families' joint front."""
    from test_seeds import PRESET

    uri, _ = sweep
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("tradeoff3", artifact_location=(tmp_path / "artifacts").as_uri())
    log = lambda parent, fam, i, params, rows, tags=None: log_trial(
        client, exp_id, parent, fam, i, params, rows, "completed", tmp_path, figures=False, tags=tags
    )
    seeds = log_parent(client, exp_id, "seed_spread", 1_000_000, "val_bpd", "seed_spread")
    for i, (seed, probe) in enumerate(((42, 0.37), (43, 0.39))):
        log(seeds, "vae", i, {**PRESET["vae"], "seed": seed}, vae_rows(40.0, probe, 30.0), {"sweep.preset": "slides"})
    new = log_parent(
        client, exp_id, "tradeoff3", 2_000_000, "val_probe_acc,val_classifier_fd", "tradeoff3", mode="max,min"
    )
    log(new, "vae", 10, VAE_BASE, vae_rows(40.0, 0.40, 50.0))
    log(new, "vae", 11, {**VAE_BASE, "beta": 2.0}, vae_rows(40.0, 0.30, 60.0))  # dominated by vae_00010
    log(new, "dcgan", 12, GAN_BASE, [{**gan_rows(20.0, 0.1)[0], "val_probe_acc": 0.25}])
    out = tmp_path / "report"
    md = build_report("tradeoff3", out, tracking_uri=uri).with_name("report.md").read_text()
    sec = section(md, "Pareto front (multi-objective sweeps)")
    joint = sec[sec.index(f"### VAE, DCGAN together, parent run {new}") :]
    assert "3 completed trials that logged every objective (0 other trial(s) left out); 2 are non-dominated" in joint
    assert (
        "Placed on it (black stars, not part of the front): the slides' VAE (slides preset, 2 seed(s)): "
        "val_probe_acc 38.00%, val_classifier_fd 30.00."
    ) in joint
    ids = [line.split(" | ")[0][2:] for line in joint[joint.index("| trial_id") :].splitlines()[2:]]
    assert ids == ["VAE vae_00010", "DCGAN dcgan_00012"]
    assert (out / "figures" / f"{new[:8]}_pareto_families.png").read_bytes()[:8] == PNG_MAGIC


def test_pareto_section():
    keys = ["val_probe_acc", "val_classifier_fd"]
    objectives = [Objective("val_probe_acc", "max"), Objective("val_classifier_fd", "min")]
    trials = [
        trial(VAE, {"val_probe_acc": a, "val_classifier_fd": fd}, latent_dim=lat)
        for a, fd, lat in ((0.40, 50.0, 16), (0.35, 40.0, 32), (0.30, 45.0, 64))
    ]
    trials.append(trial(VAE, {"val_probe_acc": 0.9, "val_classifier_fd": 1.0}, "diverged", latent_dim=128))  # left out
    blocks, fig = pareto_section(trials, objectives, ["latent_dim"], "f.png", "VAE")
    assert fig is not None and "2 are non-dominated" in blocks[1][1] and "1 other trial(s) left out" in blocks[1][1]
    table = blocks[-1]
    assert table[1] == ["trial_id", "latent_dim", *keys, "flags"]
    assert [row[1:4] for row in table[2]] == [["16", "40.00%", "50.00"], ["32", "35.00%", "40.00"]]
    none, no_fig = pareto_section(trials[3:], objectives, [], "f.png", "VAE")
    assert no_fig is None and "None of its 1 trials" in none[-1][1]
