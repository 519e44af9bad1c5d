"""common/report/seeds.py: seed groups, and the 'Best within the slides' budget' table as pure functions."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_sweep import VAE_BASE, log_parent, log_trial, section, table_row
from mlflow import MlflowClient

from common.base.names import PRESET_TAG
from common.report.build import build_report
from common.report.seeds import WHERE, budget_blocks, preset_means, preset_params, seed_groups
from common.sweep.space import check_configs, load_space

ROOT = Path(__file__).resolve().parents[2]
# sweeps/slides.py's config per family, as MLflow params (strings), less where it ran
PRESET = {
    c["family"]: {k: str(v) for k, v in c.items() if k not in WHERE}
    for c in check_configs(load_space(ROOT / "sweeps" / "slides.py"), {}, 0)
}

SIZES = {
    "n_train_images": 10_000,
    "n_val_images": 5_000,
    "n_test_images": 10_000,
    "n_params_vae": 1.43e6,
    "n_params_g": 1.22e6,
    "n_params_d": 2.76e6,
}  # ours vs the slides' 1.38M / 1.24M / 2.76M


def _trial(family, seed, changes=None, status="completed", data="cifar10", **metrics):
    params = {**PRESET[family], **(changes or {}), "seed": str(seed), "data": data}
    tags = {
        **({} if changes else {PRESET_TAG: "slides"}),  # as sweeps/slides.py's sweep tags its runs
        "trial_status": status,
        "eval.n": str(metrics.pop("eval_n", 10_000)),
        "eval.reference_n": "10000",
        "eval.extractor": "inception-v3-compat",
    }
    return {
        "id": f"{family}-{seed}-{sorted((changes or {}).items())}",
        "trial_id": f"t{seed}",
        "params": params,
        "metrics": {**SIZES, **metrics},
        "tags": tags,
    }


def test_a_seed_group_differs_only_in_the_seed_and_where_it_ran():
    a = [_trial("vae", s, data=f"/data/{s}") for s in (1, 2)]  # another data path: the same computation
    b = [_trial("vae", s, {"lr": "0.002"}) for s in (1, 2)]
    lone = [_trial("vae", 3, {"lr": "0.003"}), _trial("vae", 4, {"lr": "0.002"}, status="failed")]
    groups = seed_groups(a + b + lone)
    assert sorted(len(g) for g in groups) == [2, 2] and all(len({t["params"]["lr"] for t in g}) == 1 for g in groups)


def test_an_auto_val_size_groups_with_the_same_images_spelled_out():
    # val_size=0 ("auto") resolved to 5,000 computes what an explicit 5,000 computes; 4,000 does not
    spelled = _trial("vae", 1, {"lr": "0.002", "val_size": "5000"})
    auto = [_trial("vae", s, {"lr": "0.002", "val_size": "0"}, n_val_images=n) for s, n in ((2, 5_000), (3, 4_000))]
    (group,) = seed_groups([spelled, *auto])
    assert [t["params"]["seed"] for t in group] == ["1", "2"]
    # and a run of the preset's config with an auto val_size counts as the preset
    assert PRESET["vae"]["val_size"] == "5000"
    runs = [_trial("vae", 4, test_mse_kl=1.0), _trial("vae", 5, {"val_size": "0"}, test_mse_kl=3.0, n_val_images=5_000)]
    assert preset_means(runs, ["test_mse_kl"])[0][1] == [2.0]


def _table(trials, objective):
    blocks = budget_blocks(trials, lambda t, metric: [objective(t)])
    header, rows = next((b[1], b[2]) for b in blocks if b[0] == "table")
    return blocks, {r[0].split(" (`")[-1].rstrip("`)"): dict(zip(header, r)) for r in rows}


def test_the_winners_are_chosen_on_validation_and_judged_on_their_whole_interval():
    vae = {"test_kl": 40.0, "test_probe_acc_pixels": 0.39}
    preset = [_trial("vae", s, test_mse_kl=225.0 + s, test_probe_acc=0.38, **vae) for s in (42, 43, 44)]
    # lower validation objective (chosen) but worse test numbers than the other candidate: selection reads val only
    good = [
        _trial(
            "vae",
            s,
            {"lr_schedule": "cosine"},
            test_mse_kl=190.0 + s / 100,
            test_probe_acc=0.46 + (s - 42) / 1000,
            **vae,
        )
        for s in (42, 43, 44)
    ]
    test_better = [_trial("vae", s, {"lr": "0.002"}, test_mse_kl=150.0, test_probe_acc=0.5, **vae) for s in (1, 2)]
    gan = [_trial("dcgan", s, {"ema_decay": "0.999"}, fid=70.0 + s, recall=0.19 + s / 100) for s in (1, 2, 3)]
    longer = [_trial("vae", s, {"max_epochs": "40"}, test_mse_kl=100.0) for s in (1, 2)]  # outside the budget
    val = lambda t: (
        0.5 if t["params"]["max_epochs"] == "40" else 1.0 if t["params"].get("lr_schedule") == "cosine" else 2.0
    )
    blocks, rows = _table(preset + good + test_better + gan + longer, val)
    elbo = rows["test_mse_kl"]
    assert elbo["the slides"] == "200.82" and elbo["goal"] == "<= 195.00" and elbo["verdict"] == "met"
    assert (
        elbo["the sweep's winners"].startswith("190.43 ± 0.01, 95% CI [") and "3 seeds" in elbo["the sweep's winners"]
    )
    assert "test split, 10,000 images" in elbo["the sweep's winners"]
    assert elbo["the slides preset (sweeps/slides.py)"].startswith("268.00 ± 1.00, 95% CI [265.52, 270.48]")
    assert rows["test_kl"]["verdict"] == "met"  # 40 > 10, with no spread at all
    assert rows["probe_minus_pixels"]["the sweep's winners"].startswith("+7.10 pp")
    assert rows["probe_minus_pixels"]["verdict"] == rows["test_probe_acc"]["verdict"] == "met"  # 46.0-46.2% >= 45%
    assert rows["fid"]["verdict"] == "not met: the mean misses by 12.00"  # 71-73 vs <= 60
    assert rows["fid"]["the slides preset (sweeps/slides.py)"] == "not run"
    # paired by seed: (190 + s/100) - (225 + s) = -76.58, -77.57, -78.56 nats
    paired = "winners − preset, paired by seed"
    assert elbo[paired] == "-77.57, 95% CI [-80.03, -75.11], 3 seeds: a gain"
    assert rows["test_probe_acc"][paired].startswith("+8.10 pp, 95% CI [") and rows["test_probe_acc"][paired].endswith(
        ": a gain"
    )
    assert rows["test_kl"][paired].endswith("3 seeds: inconclusive (the interval holds 0)")  # 40.0 both
    assert rows["fid"][paired] == "not run"
    assert rows["recall"]["verdict"].startswith("inconclusive")  # 0.20-0.22: its interval straddles > 0.2
    notes = next(b[1] for b in blocks if b[0] == "ul")
    assert "VAE winners: the slides preset's config but lr_schedule=cosine." in notes
    # no DCGAN preset run here: its winners are said against the family's defaults, not listed in full
    gan_note = next(n for n in notes if n.startswith("DCGAN winners: "))
    assert gan_note.startswith("DCGAN winners: the DCGAN defaults (no slides preset run of it here) but ")
    assert "ema_decay=0.999" in gan_note and "family=" not in gan_note and "gan_loss=" not in gan_note
    assert "VAE: a group of 2 seeds left out, outside the budget: max_epochs 40 > 20." in notes


@pytest.mark.parametrize("n_val, said", [(5_000, ""), (4_000, ", val_size=4000")])
def test_the_winners_note_reads_an_auto_val_size_as_the_images_it_resolved_to(n_val, said):
    # val_size=0 is "auto": the same computation as the preset's explicit 5,000 when it resolved to 5,000
    preset = [_trial("vae", s, test_mse_kl=225.0) for s in (42, 43)]
    changes = {"lr_schedule": "cosine", "val_size": "0"}
    ours = [_trial("vae", s, changes, test_mse_kl=190.0, n_val_images=n_val) for s in (42, 43)]
    blocks, _ = _table(preset + ours, lambda t: 1.0 if t in ours else 2.0)
    notes = next(b[1] for b in blocks if b[0] == "ul")
    assert f"VAE winners: the slides preset's config but lr_schedule=cosine{said}." in notes


def test_without_a_preset_an_auto_val_size_matches_the_defaults_auto():
    ours = [_trial("vae", s, {"lr_schedule": "cosine", "val_size": "0"}, test_mse_kl=190.0) for s in (42, 43)]
    blocks, _ = _table(ours, lambda t: 1.0)
    note = next(n for n in next(b[1] for b in blocks if b[0] == "ul") if n.startswith("VAE winners: "))
    assert "the VAE defaults" in note and "val_size" not in note


def test_fid_at_fewer_samples_than_the_goals_is_not_judged_and_missing_columns_say_so():
    gan = [_trial("dcgan", s, {"ema_decay": "0.999"}, fid=50.0 + s, recall=0.3, eval_n=1000) for s in (1, 2)]
    _, rows = _table(gan, lambda t: 1.0)
    assert rows["fid"]["verdict"].startswith("not judged") and "1,000 generated" in rows["fid"]["the sweep's winners"]
    assert rows["test_mse_kl"]["verdict"] == "not measured: no winners over >= 2 seeds"


def test_the_paired_difference_needs_two_seeds_in_common_and_the_same_n():
    preset = [_trial("dcgan", s, fid=150.0 + s, recall=0.01, eval_n=1000) for s in (42, 43)]
    winners = [_trial("dcgan", s, {"ema_decay": "0.999"}, fid=100.0 + s, recall=0.02) for s in (43, 44)]
    _, rows = _table(preset + winners, lambda t: 1.0)
    assert rows["fid"]["winners − preset, paired by seed"] == "not paired: the two groups' N of generated images differ"
    for t in preset:
        t["tags"]["eval.n"] = "10000"
    _, rows = _table(preset + winners, lambda t: 1.0)
    assert rows["fid"]["winners − preset, paired by seed"] == "1 seed(s) in common: no interval"  # seed 43 only
    winners.append(_trial("dcgan", 42, {"ema_decay": "0.999"}, fid=160.0, recall=0.02))
    _, rows = _table(preset + winners, lambda t: 1.0)
    assert rows["fid"]["winners − preset, paired by seed"].endswith("2 seeds: inconclusive (the interval holds 0)")


def test_a_trial_is_ranked_by_the_best_finite_epoch_of_its_familys_own_validation_metric():
    a = [_trial("vae", s, {"lr": "0.002"}, test_mse_kl=190.0) for s in (1, 2)]
    b = [_trial("vae", s, {"lr": "0.003"}, test_mse_kl=180.0) for s in (1, 2)]
    curves = {  # a: a bad start, a NaN and then the best epoch; b: flat, and better on another metric
        "a": {"val_bpd": [9.0, float("nan"), 1.0], "val_mse": [9.0]},
        "b": {"val_bpd": [2.0, 2.0], "val_mse": [0.1]},
    }
    history = lambda t, metric: curves["a" if t in a else "b"].get(metric, [])
    blocks = budget_blocks(a + b, history)
    notes = next(x[1] for x in blocks if x[0] == "ul")
    assert any(n.startswith("VAE winners: ") and "lr=0.002" in n for n in notes)


def test_no_seed_groups_no_table():
    assert budget_blocks([_trial("vae", 1), _trial("vae", 2, {"lr": "0.002"})], lambda t, m: [1.0]) == []


def test_a_net_more_than_10_percent_off_the_slides_size_is_outside_the_budget():
    from common.report.seeds import outside_budget

    assert outside_budget(_trial("dcgan", 1)) is None
    big = _trial("dcgan", 1)
    big["metrics"]["n_params_d"] = 3.1e6
    assert outside_budget(big) == "n_params_d 3.10M (3,100,000) is not within ±10% of 2.76M (2,760,000)"


@pytest.mark.parametrize("family", ["vae", "dcgan"])
def test_the_preset_is_the_config_of_the_runs_tagged_as_it(family):
    from common.trial.families import config_class

    other = _trial(family, 1, {"lr": "0.002"})
    assert preset_params([other]) == {}  # untagged: not the preset, whatever its config
    params = preset_params([other, _trial(family, 2)])[family]
    default = config_class(family)().to_dict()
    assert params["max_epochs"] == str({"vae": 20, "dcgan": 40}[family]) and "seed" not in params
    assert set(params) == set(default) - {"seed", "data", "device", "deterministic"}


def test_the_slides_models_are_placed_at_the_preset_runs_mean_of_each_objective():
    from common.report.seeds import preset_means

    keys = ["val_probe_acc", "val_classifier_fd"]
    runs = [
        _trial("vae", 42, val_probe_acc=0.36, val_classifier_fd=30.0),  # one seed is enough to place it
        _trial("vae", 43, val_probe_acc=0.38, val_classifier_fd=34.0),
        _trial("vae", 44, {"lr": "0.002"}, val_probe_acc=0.9, val_classifier_fd=1.0),  # not the preset
        _trial("dcgan", 42, val_classifier_fd=20.0),
    ]  # no probe logged: cannot be placed
    assert preset_means(runs, keys) == [("the slides' VAE (slides preset, 2 seed(s))", [pytest.approx(0.37), 32.0])]


def test_seed_spread_table_for_trials_that_differ_only_in_seed(sweep, tmp_path):
    """The slides preset at three seeds: mean ± std and the 95% t-interval of each reported number."""
    uri, _ = sweep
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("seeds", artifact_location=(tmp_path / "artifacts").as_uri())
    pid = log_parent(client, exp_id, "slides", 1_000_000, "val_mse_kl", "slides")
    for i, (seed, kl) in enumerate(((1, 40.0), (2, 42.0), (3, 44.0))):
        rows = [
            {
                "val_mse_kl": 220.0,
                "val_bpd": 5.0,
                "test_mse_kl": 218.0 + i,
                "test_kl": kl,
                "epoch_time_s": 1.0,
                "train_time_s": 1.0,
            }
        ]
        log_trial(client, exp_id, pid, "vae", i, {**VAE_BASE, "seed": seed}, rows, "completed", tmp_path, figures=False)
    log_trial(
        client,
        exp_id,
        pid,
        "vae",
        9,
        {**VAE_BASE, "seed": 4, "latent_dim": 16},  # another config: not a seed
        [{"val_mse_kl": 1.0, "test_kl": 99.0, "epoch_time_s": 1.0, "train_time_s": 1.0}],
        "completed",
        tmp_path,
        figures=False,
    )
    md = build_report("seeds", tmp_path / "r", tracking_uri=uri).with_name("report.md").read_text()
    sec = md.split("### Seed-to-seed spread")[1].split("\n## ")[0].split("\n### ")[0]
    kl = table_row(sec, "VAE", "test_kl")
    # mean 42, std 2, half-width t(0.975, 2) * 2 / sqrt(3) = 4.303 * 1.155 = 4.97
    assert "| 3 (1, 2, 3) | 42.00 ± 2.00 | 95% CI [37.03, 46.97] |" in kl and "99.00" not in sec
    assert "| 3 (1, 2, 3) | 219.00 ± 1.00 |" in table_row(sec, "VAE", "test_mse_kl")
    # ...but on 5,000 train images for 3 epochs: outside the slides' budget, so not the budget table's winners
    budget = section(md, "Best within the slides' budget")
    assert "| VAE: KL (nats/image) (`test_kl`) | 61.25 | not run | not run | not run | > 10.00 | not measured" in budget
    assert "VAE: a group of 3 seeds left out, outside the budget: train_subset 5000 is not 10,000." in budget
