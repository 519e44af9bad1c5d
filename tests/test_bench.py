"""bench/'s scripts run on the product's code paths and report what BENCHMARKS.md quotes.

Speed itself is measured by ``bench/throughput.py`` (BENCHMARKS.md), not here: a speed floor in a
test fails whenever the machine is busy, and passes on a fast one whatever the code does.
"""

from __future__ import annotations

import json
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import throughput  # noqa: E402

from common.base.data import load_dataset  # noqa: E402
from common.base.objective import Objective  # noqa: E402


@pytest.mark.parametrize("family", ["vae", "dcgan"])
def test_the_throughput_bench_times_the_trainable_and_a_bare_loop_on_the_same_images(family, tmp_path, monkeypatch):
    monkeypatch.setenv("VAEGAN_CACHE", str(tmp_path))
    threads = torch.get_num_threads()
    args = Namespace(
        data="synthetic", train_subset=128, val_size=128, batch_size=64, device="cpu", threads=1, repeats=2
    )
    # A scripted clock: warm-ups (9 s each), two interleaved repeats (trainable 2 s / bare 1 s, then
    # 4 s / 1 s), then the two evaluations and the checkpoint save; each timed function still runs.
    seconds = iter([9.0, 9.0, 2.0, 1.0, 4.0, 1.0, 0.5, 0.25, 0.25])

    def timed(fn, device):
        fn()
        throughput.OTHER.append(0.0)
        return next(seconds)

    monkeypatch.setattr(throughput, "timed", timed)
    try:
        result = throughput.bench_model(family, load_dataset("synthetic"), args, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    assert next(seconds, None) is None  # every timing the bench takes, in that order
    assert result["images_per_epoch"] == 128 and result["trainable_ips"] == [64.0, 32.0]
    assert result["bare_ips"] == [128.0, 128.0] and result["ratio_median"] == pytest.approx((0.5 + 0.25) / 2)
    assert result["epoch_train_s"] == 3.0 and result["eval_first_s"] == 0.5 and result["eval_s"] == 0.25
    assert result["overhead_frac"] == pytest.approx((0.25 + 0.25) / 3.0)
    assert result["overhead_frac_default_subset"] == pytest.approx(0.5 / (3.0 * result["default_train_subset"] / 128))


# ---- the rank study (bench/proxy.py), fast: synthetic checkpoints, 32 samples each ---------------
import proxy  # noqa: E402


def test_rank_agreement_matches_scipy_and_brackets_its_estimate():
    import numpy as np
    from scipy.stats import kendalltau, spearmanr

    rng = np.random.default_rng(0)
    x = rng.standard_normal(30)
    y = x + 0.5 * rng.standard_normal(30)
    out = proxy.rank_agreement(x, y, boot=300)
    assert out["rho"] == pytest.approx(spearmanr(x, y).statistic) and out["tau"] == pytest.approx(
        kendalltau(x, y).statistic
    )
    assert out["rho_ci"][0] < out["rho"] < out["rho_ci"][1] and out["n"] == 30
    assert proxy.rank_agreement(x, x, boot=50)["rho"] == pytest.approx(1.0)
    assert proxy.rank_agreement(x, -x, boot=50)["rho_ci"] == [pytest.approx(-1.0), pytest.approx(-1.0)]


@pytest.mark.slow  # a minute: trains and scores synthetic checkpoints through every proxy
def test_the_rank_study_runs_end_to_end_on_synthetic_checkpoints(workdir):
    """Real training, real Inception FID/KID (64 test images here), every candidate, the table.
    ``workdir`` (conftest.py) points VAEGAN_CACHE at the session's shared classifier and feature caches."""
    from common.metrics.evaluation import Evaluator

    tmp_path = workdir
    data = load_dataset("synthetic")
    base = {"data": "synthetic", "val_size": 128, "eval_samples": 32}
    proxy.train_runs(data, proxy.QUICK_RUNS, tmp_path, base)
    paths = sorted(tmp_path.glob("*.pt"))
    assert len(paths) == 6
    inception = Evaluator(data, reference="test", indices=torch.arange(64), cache_dir=None)  # 64 keeps it fast
    rows = [proxy.score_checkpoint(p, data, inception, 32) for p in paths]
    assert all(r["n"] == 32 and r["fid"] > 0 and "val_classifier_fd" in r and "randconv_fd_fresh" in r for r in rows)
    table = proxy.analyse(rows)
    assert set(table) == set(proxy.CANDIDATES)
    for label, (key, sign) in proxy.CANDIDATES.items():
        import numpy as np
        from scipy.stats import spearmanr

        want = spearmanr(sign * np.array([r[key] for r in rows]), [r["fid"] for r in rows]).statistic
        got = table[label]["all checkpoints"]["fid"]["rho"]
        assert got == pytest.approx(want, nan_ok=True) and table[label]["cost"]["seconds"] >= 0
    md = proxy.markdown(table, rows, {"picked": proxy.pick(table)})
    per_checkpoint = [
        line.split(" | ") for line in md.splitlines() if line.startswith("| dcgan") or line.startswith("| vae")
    ]
    assert "ρ: all checkpoints (n=6)" in md and sum(cells[1] == "dcgan" for cells in per_checkpoint) == 4
    check = proxy.collapse_check(rows)
    assert check["class_coverage_vs_inception_coverage"]["n"] == 6
    assert check["low_recall"] + check["other"] == 6


def test_pick_takes_the_best_worst_gan_family_rho_among_affordable_candidates():
    """The VAE selects on val_bpd, so its rho does not decide; a candidate over 10% of an epoch is out."""
    row = lambda dcgan, vaegan, vae, share: {
        "dcgan": {"fid": {"rho": dcgan}},
        "vaegan": {"fid": {"rho": vaegan}},
        "vae": {"fid": {"rho": vae}},
        "all checkpoints": {"fid": {"rho": 0.0}},
        "cost": {"seconds": 1.0, "share_of_dcgan_epoch": share},
    }
    table = {"a": row(0.9, 0.5, 0.9, 0.01), "b": row(0.7, 0.6, -0.5, 0.01), "c": row(1.0, 1.0, 1.0, 0.2)}
    assert proxy.pick(table) == "b"
    table["d"] = row(0.8, 0.6, 0.0, 0.01)  # the same worst family, a higher mean
    assert proxy.pick(table) == "d"


# ---- the search comparison (bench/search.py): what each search runs, and how it is scored -----------
import search  # noqa: E402


@pytest.mark.parametrize("family", sorted(search.FAMILIES))
@pytest.mark.parametrize("strategy", search.STRATEGIES)
def test_every_search_runs_a_valid_space_file_of_its_family_on_a_validation_objective(family, strategy, tmp_path):
    from common.sweep.space import load_space

    path = tmp_path / search.FAMILIES[family]["space"]
    path.write_text(search.space_text(family, strategy))
    space = load_space(path)  # SpaceError if the strategy's additions are malformed
    assert space.family == family and space.metric.startswith("val_") and space.max_epochs == 10
    kind = space.scheduler.get("kind") if space.scheduler else None
    assert kind == {"tpe+asha": None, "pbt": "pbt", "random": None}[strategy]
    assert (space.search is None) == (strategy == "pbt")  # PBT draws its own configs
    if strategy == "random":
        assert space.sampler == "random" and space.scheduler is None
    if family == "dcgan" and strategy == "pbt":  # sweeps/gan_pbt.py's mutations, synchronous as there
        shipped = load_space(search.ROOT / "sweeps" / "gan_pbt.py").scheduler
        assert space.scheduler["mutations"] == shipped["mutations"] and space.scheduler["synch"] is True


def test_best_so_far_orders_by_time_and_keeps_the_running_best():
    points = [(30, 5.0), (10, 7.0), (20, 6.0), (40, 6.5)]
    assert search.best_so_far(points, Objective("m", "min")) == [7.0, 6.0, 5.0, 5.0]
    assert search.best_so_far(points, Objective("m", "max")) == [7.0, 7.0, 7.0, 7.0]


def test_the_table_reads_each_budget_mark_and_counts_a_short_search_with_its_final_best():
    args = Namespace(budget=8, asha_trials=5, strategies=["tpe+asha", "pbt"])
    curves = {
        ("tpe+asha", 0): [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],  # ran past the budget: epochs after b = 8 not counted
        ("tpe+asha", 1): [9, 9, 9, 9, 9, 9, 9, 9],
        ("pbt", 0): [4, 4, 4, 3],  # spent 4 of 8: its final best stands for b = 6 and 8
        ("pbt", 1): [6, 5, 4, 3, 2, 1, 1, 1],
    }
    rows = search.table(curves, args, max_epochs=4)
    assert rows[0] == "| strategy | trials | epochs spent | b = 2 | b = 4 | b = 6 | b = 8 |"
    assert (
        rows[2]
        == "| tpe+asha | 5 | 9 (8-10) | 8.50 (8.00-9.00) | 7.50 (6.00-9.00) | 6.50 (4.00-9.00) | 5.50 (2.00-9.00) |"
    )
    assert (
        rows[3] == "| pbt | 2 | 6 (4-8) | 4.50 (4.00-5.00) | 3.00 (3.00-3.00) | 2.00 (1.00-3.00) | 2.00 (1.00-3.00) |"
    )


def test_the_registration_bench_logs_one_model_per_policy_with_its_own_requirements(tmp_path):
    import registration

    from common.base.tracking import prepare_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prepare_store(uri)
    _, inferred = registration.register_once(uri, "dcgan", True)
    seconds, pinned = registration.register_once(uri, "dcgan", False)
    names = {policy: {r.split("==")[0] for r in reqs} for policy, reqs in (("inferred", inferred), ("pinned", pinned))}
    assert names["pinned"] == {"mlflow", "torch", "cloudpickle"} and seconds > 0
    assert names["inferred"] > {"mlflow", "torch"} and names["inferred"] != names["pinned"]  # MLflow's own guess


def _store_with_trials(uri: str, metric: str = "val_mse_kl", machine: str = "test box") -> list[dict]:
    """An MLflow store holding one sweep: a parent and four VAE trial runs (three seeds of one
    config, one other config) plus a running one; the values each completed trial logged."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.create_experiment("study")
    parent = client.create_run(exp, tags={"sweep.role": "parent"})
    client.log_param(parent.info.run_id, "metric", metric)
    client.log_param(parent.info.run_id, "mode", "min")
    logged = []
    for i, (hidden, seed, status) in enumerate(
        [
            (0, 42, "completed"),
            (256, 42, "completed"),
            (256, 43, "completed"),
            (256, 44, "stopped"),
            (512, 42, "running"),
        ]
    ):
        tags = {"sweep.role": "trial", "mlflow.parentRunId": parent.info.run_id, "family": "vae"}
        tags |= {
            "trial_status": status,
            "test.epoch": "2",
            "data": "/a/machine/folder/fake.tar.gz",
            "data_hash": "ab" * 16,
            "git_commit": "c0ffee1",
            "machine": machine,
            "test.weights": "snapshot",  # the selected epoch's own weights, as today's loop logs them
        }
        run = client.create_run(exp, tags=tags)
        rid = run.info.run_id
        for k, v in {
            "family": "vae",
            "hidden_dim": hidden,
            "seed": seed,
            "lr": 0.001,
            "data": "/a/machine/folder/fake.tar.gz",
        }.items():
            client.log_param(rid, k, v)
        curve = [300.0 - 10 * i, 250.0 - i - seed / 100, 260.0]  # the best epoch is 2
        for epoch, v in enumerate(curve, 1):
            client.log_metric(rid, "val_mse_kl", v, step=epoch)
            client.log_metric(rid, "val_kl", v / 5, step=epoch)
        metrics = {"test_mse_kl": 240.0 + i + seed / 10, "n_params_vae": 1_431_811, "n_test_images": 10_000}
        for k, v in metrics.items():
            client.log_metric(rid, k, v, step=2)
        client.set_terminated(rid)
        logged.append({"hidden_dim": hidden, "seed": seed, "status": status, "val": curve[1], **metrics})
    return logged


def test_exported_run_files_alone_rebuild_the_table_of_what_the_trials_logged(tmp_path):
    import statistics

    import export_runs
    import tables

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    logged = _store_with_trials(uri)
    written = export_runs.export(uri, "study", tmp_path / "results")
    assert len(written) == 4  # the running trial is not finished: not exported
    records = tables.load(tmp_path / "results" / "study")
    assert {r["objective"]["metric"] for r in records} == {"val_mse_kl"}
    # one row per run: the epoch chosen on validation, its validation values, the test score
    table = tables.markdown(
        records, ["hidden_dim", "seed", "epoch", "val_mse_kl", "val_kl", "test_mse_kl"], sort="test_mse_kl"
    )
    body = [line.split(" | ") for line in table.splitlines()[2:6]]
    done = sorted((t for t in logged if t["status"] != "running"), key=lambda t: t["test_mse_kl"])
    for row, t in zip(body, done):
        assert row[0].strip("| ") == str(t["hidden_dim"]) and row[1] == str(t["seed"]) and row[2] == "2"
        assert (
            row[3] == f"{t['val']:.2f}"
            and row[4] == f"{t['val'] / 5:.2f}"
            and row[5].strip(" |") == f"{t['test_mse_kl']:.2f}"
        )
    assert "/a/machine" not in "".join(p.read_text() for p in written)  # no folder of the machine committed
    assert "data fake.tar.gz (hash abababababab)" in table and "test 10000" in table and "machine test box" in table
    # by seed: the three seeds of hidden_dim=256 fold into mean ± std over exactly their values
    folded = tables.markdown(records, ["hidden_dim", "test_mse_kl"], by_seed=True)
    seeds = [t["test_mse_kl"] for t in logged if t["hidden_dim"] == 256]
    row = next(line for line in folded.splitlines() if line.startswith("| 256 "))
    assert f"{statistics.fmean(seeds):.2f} ± {statistics.stdev(seeds):.2f} [" in row and row.endswith("| 42, 43, 44 |")


def test_the_table_reads_a_validation_metric_at_a_given_epoch_across_several_folders(tmp_path, capsys):
    """``val_*@E`` compares runs of different lengths at the same epoch; runs of several experiments
    (folders) go in one table."""
    import export_runs
    import tables

    for name in ("screen", "long"):
        uri = f"sqlite:///{tmp_path}/{name}.db"
        _store_with_trials(uri, machine=f"{name} box")
        export_runs.export(uri, "study", tmp_path / name)
    tables.main([str(tmp_path / "screen"), str(tmp_path / "long"), "--columns", "val_mse_kl@1"])
    out = capsys.readouterr().out
    # each store logs epoch 1 as 300 - 10 i for its four finished trials i = 0..3, not the chosen epoch 2's value
    values = sorted(line.strip("| ") for line in out.splitlines()[2:10])
    assert values == sorted([f"{300.0 - 10 * i:.2f}" for i in range(4)] * 2)
    assert "8 runs" in out and "machine long box / screen box" in out


def test_fixed_runs_of_several_families_export_each_ones_own_objective(tmp_path):
    """A space of fixed runs names no metric (the parent says "per family"): each run's record
    carries its family's default objective, with its per-epoch values."""
    import export_runs

    from common.base.names import PER_FAMILY
    from common.trial.config import VAEConfig

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _store_with_trials(uri, metric=PER_FAMILY)
    written = export_runs.export(uri, "study", tmp_path / "results")
    records = [json.loads(p.read_text()) for p in written]
    assert {(r["objective"]["metric"], r["objective"]["mode"]) for r in records} == {(VAEConfig.default_metric, "min")}


def _budget_store(uri: str) -> None:
    """An MLflow store as the budget runs leave it: per family, the slides preset (tagged) and one other
    config, each at seeds 42 and 43, within the slides' budget, with the test and Inception numbers."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from common.base.names import PER_FAMILY, PRESET_TAG
    from common.report.runs import fallback_objective

    client = MlflowClient(uri)
    exp = client.create_experiment("budget")
    parent = client.create_run(exp, tags={"sweep.role": "parent"}).info.run_id
    client.log_batch(parent, params=[Param("metric", PER_FAMILY), Param("mode", "min")])
    sizes = {"n_train_images": 10_000, "n_val_images": 5_000, "n_test_images": 10_000}
    nets = {"vae": {"n_params_vae": 1.40e6}, "dcgan": {"n_params_g": 1.22e6, "n_params_d": 2.76e6}}
    for family, epochs in (("vae", 20), ("dcgan", 40)):
        for preset, seed in [(p, s) for p in (True, False) for s in (42, 43)]:
            tags = {"sweep.role": "trial", "mlflow.parentRunId": parent, "family": family, "trial_status": "completed"}
            tags |= ({PRESET_TAG: "slides"} if preset else {}) | {"machine": "test box"}
            tags |= {"eval.n": "10000", "eval.reference_n": "10000", "eval.extractor": "inception"}
            rid = client.create_run(exp, tags=tags).info.run_id
            params = {"family": family, "seed": seed, "train_subset": 10_000, "max_epochs": epochs, "val_size": 0}
            params["lr"] = 0.002 if preset else 0.001
            shift = seed / 100 + (0 if preset else -5)  # the other config: better on validation and test
            curve = [50.0 + shift, 40.0 + shift, 45.0]
            test = {"test_mse_kl": 200 + 2 * shift, "test_kl": 30 + shift, "test_probe_acc": 0.4 - shift / 100}
            test |= {"test_probe_acc_pixels": 0.39, "fid": 100 + 9 * shift, "recall": 0.1 - shift / 50}
            client.log_batch(
                rid,
                params=[Param(k, str(v)) for k, v in params.items()],
                metrics=[Metric(k, v, 0, 0) for k, v in {**sizes, **nets[family]}.items()]
                + [Metric(fallback_objective(family).metric, v, 0, e) for e, v in enumerate(curve, 1)]
                + [Metric(k, v, 0, 2) for k, v in test.items()],
            )
            client.set_terminated(rid)


def test_the_report_budget_table_rebuilds_from_the_exported_files_alone(tmp_path):
    """A machine that was not kept leaves only bench/results: ``tables.py --budget`` over the exported
    files prints the report's own 'Best within the slides' budget' section, as built from MLflow."""
    import export_runs
    import tables

    from common.report.build import build_report

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _budget_store(uri)
    export_runs.export(uri, "budget", tmp_path / "results")
    ours = tables.budget(tables.load(tmp_path / "results"))
    md = build_report("budget", tmp_path / "report", tracking_uri=uri).with_name("report.md").read_text()
    theirs = md.split("## Best within the slides' budget")[1].split("\n## ")[0].strip()
    assert theirs and theirs in ours and "machine test box" in ours
    # the table is a real one: both columns filled, the paired column judged, the preset found by its tag
    fid = next(line for line in ours.splitlines() if "(`fid`)" in line)
    assert "not run" not in fid and "2 seeds: a gain" in fid and "but lr=0.001." in ours


def test_a_final_metric_column_never_falls_back_to_the_config_field_of_the_same_name():
    import tables

    record = {"test": {}, "objective": {"per_epoch": {}, "mode": "min"}, "final": {}, "params": {"precision": "fp32"}}
    assert tables.cell(record, "precision") is None  # not evaluated yet: no precision/recall, not "fp32"
    assert tables.cell({**record, "final": {"precision": 0.57}}, "precision") == 0.57


@pytest.mark.slow  # a whole failing sweep through the CLI, as the bench runs it
def test_the_fail_fast_bench_counts_one_attempt_per_trial_and_one_error_line(tmp_path):
    from bench import fail_fast

    r = fail_fast.run_once(fail_fast.REPO, tmp_path / "run")
    assert (r["rc"], r["attempts"], r["error_lines"], r["tune_noise"]) == (1, 2, 1, False)
