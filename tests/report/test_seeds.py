"""common/report/seeds.py: seed groups, and the 'Best within the slides' budget' table as pure functions."""

from __future__ import annotations

import pytest

from common.report.seeds import budget_blocks, preset_params, seed_groups

SIZES = {
    "n_train_images": 10_000,
    "n_val_images": 5_000,
    "n_test_images": 10_000,
    "n_params_vae": 1.43e6,
    "n_params_g": 1.22e6,
    "n_params_d": 2.76e6,
}  # ours vs the slides' 1.38M / 1.24M / 2.76M


def _trial(family, seed, changes=None, status="completed", data="cifar10", **metrics):
    params = {**preset_params()[family], **(changes or {}), "seed": str(seed), "data": data}
    tags = {
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


def _table(trials, objective):
    blocks = budget_blocks(trials, objective)
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
    assert rows["recall"]["verdict"].startswith("inconclusive")  # 0.20-0.22: its interval straddles > 0.2
    notes = next(b[1] for b in blocks if b[0] == "ul")
    assert "VAE winners: the slides preset's config but lr_schedule=cosine." in notes
    assert "VAE: a group of 2 seeds left out, outside the budget: max_epochs 40 > 20." in notes


def test_fid_at_fewer_samples_than_the_goals_is_not_judged_and_missing_columns_say_so():
    gan = [_trial("dcgan", s, {"ema_decay": "0.999"}, fid=50.0 + s, recall=0.3, eval_n=1000) for s in (1, 2)]
    _, rows = _table(gan, lambda t: 1.0)
    assert rows["fid"]["verdict"].startswith("not judged") and "1,000 generated" in rows["fid"]["the sweep's winners"]
    assert rows["test_mse_kl"]["verdict"] == "not measured: no winners over >= 2 seeds"


def test_no_seed_groups_no_table():
    assert budget_blocks([_trial("vae", 1), _trial("vae", 2, {"lr": "0.002"})], lambda t: 1.0) == []


def test_a_net_more_than_10_percent_off_the_slides_size_is_outside_the_budget():
    from common.report.seeds import outside_budget

    assert outside_budget(_trial("dcgan", 1)) is None
    big = _trial("dcgan", 1)
    big["metrics"]["n_params_d"] = 3.1e6
    assert outside_budget(big) == "n_params_d 3.10M (3,100,000) is not within ±10% of 2.76M (2,760,000)"


@pytest.mark.parametrize("family", ["vae", "dcgan"])
def test_the_preset_is_sweeps_seed_py(family):
    from common.trial.config import config_class

    params = preset_params()[family]
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
