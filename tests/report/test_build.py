"""Report from a fake sweep in a temporary sqlite MLflow store; figure helpers write valid PNGs."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from common.figures import save_curves, save_image_grid
from common.report.build import ReportError, build_report
from common.report.importances import describe_values, param_importances

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXPERIMENT = "gan_ttur"


def _tiny_png(path, shade: float) -> None:
    save_image_grid(torch.full((1, 3, 4, 4), shade), path, nrow=1)


SIZES = {
    "n_train_images": 5000,
    "n_val_images": 5000,
    "n_test_images": 10000,
}  # logged at step 0, as common.trial.loop does
NETS = {"vae": ["vae"], "dcgan": ["g", "d"]}


def _log_trial(
    client, exp_id, parent_id, family, i, params, metrics_by_epoch, status, tmp_path, sizes=SIZES, figures=True
):
    run = client.create_run(
        exp_id,
        run_name=f"{family}_{i}",
        tags={
            "mlflow.parentRunId": parent_id,
            "sweep.role": "trial",
            "family": family,
            "trial_id": f"{family}_{i:05d}",
            "device": "cpu",
            "git_commit": "abc1234",
            "data_hash": "d41d8cd9",
            "data": "cifar10",
            "trial_status": status,
        },
    )
    rid = run.info.run_id
    common = {
        "family": family,
        "seed": 42,
        "data": "cifar10",
        "train_subset": 5000,
        "batch_size": 128,
        "max_epochs": 3,
        "probe_every": 5,
        "eval_samples": 512,
        "device": "auto",
    }
    client.log_batch(
        rid,
        params=[Param(k, str(v)) for k, v in {**common, **params}.items()],
        metrics=[Metric(k, v, 0, 0) for k, v in {**sizes, **_param_counts(family, i)}.items()]
        + [Metric(k, v, 0, step) for step, row in enumerate(metrics_by_epoch, 1) for k, v in row.items()],
    )
    if not figures:
        return rid
    figs = tmp_path / f"figs_{rid}"
    names = ["samples", "curves"] + (["reconstructions", "interpolations"] if family == "vae" else [])
    for j, name in enumerate(names):
        _tiny_png(figs / f"{name}.png", j / 4)
    client.log_artifacts(rid, str(figs), "figures")
    return rid


def _param_counts(family, i):
    """n_params_vae = 1,000,000 + 100,000 i; n_params_g = 1,240,000 + i; n_params_d = 2,760,000 + i."""
    counts = {"vae": 1_000_000 + 100_000 * i} if family == "vae" else {"g": 1_240_000 + i, "d": 2_760_000 + i}
    return {"n_params": sum(counts.values()), **{f"n_params_{k}": v for k, v in counts.items()}}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A parent + 3 VAE + 3 DCGAN children, metrics at steps 1..3. Returns (uri, parent_id, best ids)."""
    tmp_path = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(EXPERIMENT, artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(
        exp_id,
        run_name="sweep",
        tags={
            "sweep.role": "parent",
            "sweep.space": "sweeps/gan_ttur.py",
            "git_commit": "abc1234",
            "data": "cifar10",
            "data_hash": "d41d8cd9",
        },
    )
    pid = parent.info.run_id
    for k, v in dict(
        space="gan_ttur",
        num_samples=6,
        max_epochs=3,
        metric="val_mse_kl",
        mode="min",
        seed=42,
        data="cifar10",
        train_subset=5000,
    ).items():
        client.log_param(pid, k, v)
    vae_elbo = [210.0, 205.4321, 230.0]  # trial 1 (index) is best: final 205.4321 -> "205.43"
    for i, (lat, final) in enumerate(zip([32, 64, 128], vae_elbo)):
        rows = [
            {
                "train_loss": final + 30 - 10 * e,
                "beta": 1.0,
                "val_mse_kl": final + 22 - 10 * e,
                "val_recon": final - 61 + 5 - 2.5 * e,
                "val_kl": 61.0 - 0.5 * e + i,
                "val_active_units": 40.0,
                "epoch_time_s": 60.0,
                "train_time_s": 60.0 * (e + 1),
                "val_classifier_fd": 50.0 - e,
            }
            for e in range(3)
        ]
        rows[-1]["val_probe_acc"] = 0.3612 + 0.01 * i
        # the best epoch (the last) scored on the test split, as common.trial.loop does after training
        rows[-1].update(
            test_mse_kl=final,
            test_recon=final - 61,
            test_kl=61.0 + i,
            test_probe_acc=0.3512 + 0.01 * i,
            test_bpd=4.4321 + i,
            test_probe_acc_pixels=0.3999,
            test_probe_acc_random_init=0.2888,
        )
        _log_trial(
            client,
            exp_id,
            pid,
            "vae",
            i,
            {"lr": 1e-3 * (i + 1), "latent_dim": lat, "beta": 1.0, "beta_schedule": "constant"},
            rows,
            "completed",
            tmp_path,
        )
    dcgan_fd = [41.0, 44.0, 38.7654]  # trial 2 is best by val_classifier_fd (the sweep metric is VAE-only)
    for i, (ratio, final) in enumerate(zip([0.5, 1.0, 4.0], dcgan_fd)):
        rows = [
            {
                "g_loss": 2.0 + e + 0.1 * i,
                "d_loss": 0.5 - 0.1 * e,
                "loss_ratio": (2.0 + e) / (0.5 - 0.1 * e),
                "d_real": 0.8,
                "d_fake": 0.2,
                "epoch_time_s": 90.0,
                "train_time_s": 90.0 * (e + 1),
                "val_classifier_fd": final + 2 * (2 - e),
            }
            for e in range(3)
        ]
        rows[-1]["test_classifier_fd"] = final + 0.5
        _log_trial(
            client,
            exp_id,
            pid,
            "dcgan",
            i,
            {"lr_g": 2e-4, "lr_ratio": ratio, "latent_dim": 100},
            rows,
            "completed" if i < 2 else "stopped",
            tmp_path,
        )
    return uri, pid


@pytest.fixture(scope="module")
def report(sweep, tmp_path_factory):
    uri, pid = sweep
    out = tmp_path_factory.mktemp("report")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the upload to the parent must not fail here
        index = build_report(EXPERIMENT, out, tracking_uri=uri)
    return out, index, (out / "report.md").read_text(), index.read_text()


def test_files_written(report):
    out, index, md, page = report
    assert index == out / "index.html" and (out / "report.md").is_file()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page


def test_header(report, sweep):
    _, _, md, _ = report
    assert sweep[1] in md and "abc1234" in md and "d41d8cd9" in md and "gan_ttur" in md


def test_seed_table_values(report):
    _, _, md, page = report
    seed_rows = md.split("## Comparison with the slides")[1].split("## Figures")[0]
    for published in ("200.82", "139.56", "61.25", "37.69%", "3.866", "0.159", "24.4", "22 min", "45 min"):
        assert published in seed_rows
    elbo_row = next(line for line in seed_rows.splitlines() if line.startswith("| Negative ELBO, the slides"))
    assert "205.43" in elbo_row  # best VAE trial's test_mse_kl (its best epoch on the test split)
    probe_row = next(line for line in seed_rows.splitlines() if line.startswith("| Linear probe"))
    assert "36.12%" in probe_row  # test_probe_acc of that same trial (index 1), as a percentage
    assert "39.99%" in _row(seed_rows, "Probe baseline: raw pixels, same protocol")
    assert "28.88%" in _row(seed_rows, "Probe baseline: the same net randomly initialised, same protocol")
    assert "5.432" in next(line for line in seed_rows.splitlines() if "bits/dim" in line)
    fd_row = next(line for line in seed_rows.splitlines() if line.startswith("| Sample score"))
    assert "39.27" in fd_row  # best DCGAN trial's test_classifier_fd
    g_row = next(line for line in seed_rows.splitlines() if line.startswith("| G loss"))
    assert "4.200" in g_row and "—" in g_row  # DCGAN trial 2 final g_loss; VAE has none
    time_row = next(line for line in seed_rows.splitlines() if line.startswith("| Train time"))
    assert "3.0 min" in time_row and "4.5 min" in time_row and "3 epochs on cpu" in time_row
    assert "vae_00001" in seed_rows and "dcgan_00002" in seed_rows
    assert "205.43" in page


def test_measured_on_comes_from_size_metrics(report):
    _, _, md, _ = report
    rows = md.split("## Comparison with the slides")[1].split("## Figures")[0]
    assert "cifar10, test split, 10,000 images, best epoch (on validation)" in rows
    assert (
        "fit on the train subset (5,000 images), C chosen on the validation: 5,000 images of the train split "
        "outside the train subset, scored on the test split, 10,000 images"
    ) in rows
    assert "train subset 5,000 images, final-epoch mean over batches" in rows
    assert "512 fixed-z generated images vs test split, 10,000 images, domain-classifier features" in rows
    assert "size not logged" not in rows


def test_the_report_says_which_split_selects(report):
    _, _, md, _ = report
    header = md.split("## Comparison with the slides")[0]
    assert "every selection (ASHA, the searcher, each trial's best epoch, the best trial" in header
    assert "chosen by its best val_mse_kl (min, validation)" in md


def test_model_sizes(report):
    _, _, md, _ = report
    models = md.split("### Model sizes")[1].split("## Figures")[0]
    vae = next(line for line in models.splitlines() if "n_params_vae" in line)
    assert "1.38M" in vae and "1.10M (1,100,000)" in vae and "vae_00001" in vae  # best VAE trial is index 1
    g = next(line for line in models.splitlines() if "n_params_g" in line)
    d = next(line for line in models.splitlines() if "n_params_d" in line)
    assert "1.24M" in g and "(1,240,002)" in g and "dcgan_00002" in g
    assert "2.76M" in d and "(2,760,002)" in d


def test_figures_copied_and_referenced(report):
    out, _, md, page = report
    for name in (
        "vae_samples",
        "vae_reconstructions",
        "vae_interpolations",
        "vae_curves",
        "dcgan_samples",
        "dcgan_curves",
        "training_curves",
    ):
        png = out / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC, name
        assert f"figures/{name}.png" in page and f"figures/{name}.png" in md


def test_top_trials_and_importances(report):
    _, _, md, _ = report
    top = md.split("## Top trials")[1].split("## Parameter importances")[0]
    for i in range(3):
        assert f"vae_{i:05d}" in top and f"dcgan_{i:05d}" in top
    assert "latent_dim" in top and "lr_ratio" in top  # varying params detected
    assert "stopped" in top
    # ranked best first by the best validation value: vae_00001 before vae_00000 before vae_00002
    assert top.index("vae_00001") < top.index("vae_00000") < top.index("vae_00002")
    imp = md.split("## Parameter importances")[1]
    assert re.search(r"VAE: .*replayed .* of 3 completed trials", imp) and "noisy" in imp
    assert "latent_dim" in imp
    assert "DCGAN: only 2 completed" in imp  # one DCGAN trial was stopped


def test_report_logged_to_parent(report, sweep):
    uri, pid = sweep
    logged = {f.path for f in MlflowClient(tracking_uri=uri).list_artifacts(pid, "report")}
    assert {"report/index.html", "report/report.md", "report/figures"} <= logged


def test_missing_experiment_and_parent(sweep, tmp_path):
    uri, _ = sweep
    with pytest.raises(ReportError, match=r"'nope' not found.*existing experiments: .*gan_ttur"):
        build_report("nope", tmp_path, tracking_uri=uri)
    MlflowClient(tracking_uri=uri).create_experiment("empty", artifact_location=(tmp_path / "a").as_uri())
    with pytest.raises(ReportError, match="no sweep parent run"):
        build_report("empty", tmp_path, tracking_uri=uri)


def test_save_image_grid_and_curves(tmp_path):
    grid = save_image_grid(torch.rand(10, 3, 8, 8) * 2 - 1, tmp_path / "sub" / "grid.png", nrow=5)
    assert grid.read_bytes()[:8] == PNG_MAGIC
    curves = save_curves(
        {"loss": [(1, 3.0), (2, 2.0), (3, 1.5)], "acc": [(5, 0.3)], "empty": []}, tmp_path / "curves.png", title="t"
    )
    assert curves.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="N, 3, H, W"):
        save_image_grid(torch.zeros(3, 8, 8), tmp_path / "bad.png")


def test_explicit_parent_and_upload_failure_only_warns(sweep, tmp_path, monkeypatch):
    uri, pid = sweep
    with pytest.raises(ReportError, match="parent run 'deadbeef' not found"):
        build_report(EXPERIMENT, tmp_path, tracking_uri=uri, parent_run_id="deadbeef")

    def refuse(*args, **kwargs):
        raise OSError("artifact store is read-only")

    monkeypatch.setattr(MlflowClient, "log_artifacts", refuse)
    with pytest.warns(UserWarning, match="read-only"):
        index = build_report(EXPERIMENT, tmp_path / "r", tracking_uri=uri, parent_run_id=pid)
    assert index.is_file() and pid in index.read_text()


def _parent(client, exp_id, name, start_time, metric, space, mode="min"):
    run = client.create_run(
        exp_id,
        run_name=name,
        start_time=start_time,
        tags={
            "sweep.role": "parent",
            "sweep.space": f"sweeps/{space}.py",
            "git_commit": "abc1234",
            "data": "cifar10",
            "data_hash": "d41d8cd9",
        },
    )
    for k, v in dict(space=space, metric=metric, mode=mode, data="cifar10").items():
        client.log_param(run.info.run_id, k, v)
    return run.info.run_id


def _dcgan_rows(fd):
    return [
        {
            "g_loss": 2.0,
            "d_loss": 0.5,
            "val_classifier_fd": fd,
            "test_classifier_fd": fd,
            "epoch_time_s": 1.0,
            "train_time_s": 1.0,
        }
    ]


def test_each_family_from_its_latest_sweep(sweep, tmp_path):
    """`make sweep`: a VAE sweep, then a DCGAN sweep, into one experiment (plus an older DCGAN sweep
    and a newer parent without trials, neither of which may be used)."""
    uri, _ = sweep
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("vae_vs_dcgan", artifact_location=(tmp_path / "artifacts").as_uri())
    old = _parent(client, exp_id, "old_gan", 1_000_000, "val_classifier_fd", "gan_ttur")
    _log_trial(
        client, exp_id, old, "dcgan", 7, {"lr_ratio": 1.0}, _dcgan_rows(11.11), "completed", tmp_path, figures=False
    )
    vae = _parent(client, exp_id, "vae_sweep", 2_000_000, "val_mse_kl", "vae_beta")
    for i, elbo in enumerate([250.0, 222.22]):
        _log_trial(
            client,
            exp_id,
            vae,
            "vae",
            i,
            {"latent_dim": 32 * (i + 1)},
            [{"val_mse_kl": elbo, "test_mse_kl": elbo, "epoch_time_s": 1.0, "train_time_s": 1.0}],
            "completed",
            tmp_path,
            sizes={},
            figures=False,
        )  # sizes not logged (a run from before they were)
    new = _parent(client, exp_id, "new_gan", 3_000_000, "val_classifier_fd", "gan_ttur")
    for i, fd in enumerate([35.0, 33.33]):
        _log_trial(
            client,
            exp_id,
            new,
            "dcgan",
            i,
            {"lr_ratio": 2.0 * (i + 1)},
            _dcgan_rows(fd),
            "completed",
            tmp_path,
            sizes={"n_train_images": 1000, "n_test_images": 2000},
            figures=False,
        )
    empty = _parent(client, exp_id, "no_trials_yet", 4_000_000, "val_classifier_fd", "gan_ttur")

    md = build_report("vae_vs_dcgan", tmp_path / "r", tracking_uri=uri).with_name("report.md").read_text()
    rest, header = md.split("## Comparison with the slides")[1].split("## Appendix: run metadata")  # the metadata: last
    assert vae in header and new in header and old not in header and empty not in header
    assert "| sweep param space | gan_ttur | vae_beta |" in header  # newest parent first
    assert "| sweep param metric | val_classifier_fd | val_mse_kl |" in header
    seed_rows = rest.split("## Figures")[0]
    assert "222.22" in next(line for line in seed_rows.splitlines() if line.startswith("| Negative ELBO, the slides"))
    fd_row = next(line for line in seed_rows.splitlines() if line.startswith("| Sample score"))
    assert "33.33" in fd_row and "11.11" not in fd_row and "vs test split, 2,000 images" in fd_row
    assert "cifar10, test split, size not logged" in seed_rows  # the VAE sweep logged no sizes
    assert "train subset 1,000 images" in seed_rows
    top = md.split("## Top trials")[1]
    assert "vae_00001" in top and "dcgan_00001" in top and "dcgan_00007" not in top
    for pid, logged in ((vae, True), (new, True), (old, False), (empty, False)):
        assert bool(client.list_artifacts(pid, "report")) == logged, pid

    md_old = (
        build_report("vae_vs_dcgan", tmp_path / "o", tracking_uri=uri, parent_run_id=old)
        .with_name("report.md")
        .read_text()
    )
    assert "11.11" in md_old and "dcgan_00007" in md_old and vae not in md_old and new not in md_old
    assert "best VAE trial (none)" in md_old


def test_param_importances_ranks_the_deciding_param():
    rng = __import__("random").Random(0)
    rows = [
        {"lr": str(10 ** -(1 + i % 4)), "noise": str(rng.random()), "opt": "adam", "batch": "128"} for i in range(16)
    ]
    values = [float(r["lr"]) * 100 for r in rows]  # decided by lr alone
    imp = param_importances(rows, values, "min")
    assert set(imp) == {"lr", "noise"}  # constant params (opt, batch) excluded
    assert next(iter(imp)) == "lr" and imp["lr"] > imp["noise"] and sum(imp.values()) == pytest.approx(1)
    assert param_importances(rows, values, "max") == imp  # direction does not change importances
    cat = param_importances([{"act": a, "k": "3"} for a in "abcab"], [1.0, 2.0, 3.0, 1.0, 2.0], "max")
    assert list(cat) == ["act"]
    assert param_importances([{"k": "3"}, {"k": "3"}], [1.0, 2.0], "min") == {}
    assert describe_values(["1e-3", "0.01"]) == "0.001 .. 0.01" and describe_values(["b", "a", "b"]) == "a, b"


# ---- failure modes and mitigations, detector flags, Pareto front ----------------------------------
VAE_BASE = {
    "lr": 1e-3,
    "latent_dim": 64,
    "beta": 1.0,
    "beta_schedule": "constant",
    "cycles": 4,
    "ramp_fraction": 0.5,
    "free_bits": 0.0,
    "perceptual_weight": 0.0,
    "perceptual_net": "randconv",
}
GAN_BASE = {"lr_g": 2e-4, "lr_ratio": 1.0, "spectral_norm": False, "gan_loss": "bce", "minibatch_disc": 0}


def _vae_rows(kl, probe, fd, collapse=0.0):
    return [
        {
            "val_mse_kl": 200.0,
            "val_kl": kl,
            "val_active_units": 40.0,
            "posterior_collapse": collapse,
            "val_probe_acc": probe,
            "val_classifier_fd": fd,
            "epoch_time_s": 1.0,
            "train_time_s": 1.0,
            "test_kl": kl,
            "test_probe_acc": probe,
            "test_classifier_fd": fd,
            "test_randconv_fd": fd,
        }
    ]


def _gan_rows(fd, class_kl, collapse=0.0):
    return [
        {
            "g_loss": 2.0,
            "d_loss": 0.5,
            "val_classifier_fd": fd,
            "val_class_kl": class_kl,
            "mode_collapse": collapse,
            "grad_norm_d": 1.0,
            "epoch_time_s": 1.0,
            "train_time_s": 1.0,
            "test_classifier_fd": fd,
            "test_class_kl": class_kl,
        }
    ]


@pytest.fixture(scope="module")
def mitigations_report(sweep, tmp_path_factory):
    """Three sweeps in one experiment: an old VAE sweep, a DCGAN sweep and the newest, multi-objective VAE
    sweep (val_probe_acc max, val_classifier_fd min). Cyclical vs constant β over seeds 1 and 2, otherwise identical,
    is split across the two VAE sweeps (the mitigation section reads every parent's children)."""
    uri, _ = sweep
    tmp_path = tmp_path_factory.mktemp("mitig")
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("mitigations", artifact_location=(tmp_path / "artifacts").as_uri())
    log = lambda parent, fam, i, params, rows, status="completed": _log_trial(
        client, exp_id, parent, fam, i, params, rows, status, tmp_path, figures=False
    )
    old = _parent(client, exp_id, "vae_beta", 1_000_000, "val_mse_kl", "vae_beta")
    log(old, "vae", 0, {**VAE_BASE, "seed": 1, "beta_schedule": "cyclical", "cycles": 2}, _vae_rows(30.0, 0.40, 48.0))
    log(old, "vae", 1, {**VAE_BASE, "seed": 1}, _vae_rows(20.0, 0.36, 52.0))
    log(old, "vae", 2, {**VAE_BASE, "seed": 2, "beta_schedule": "cyclical", "cycles": 2}, _vae_rows(34.0, 0.42, 47.0))
    log(
        old,
        "vae",
        3,
        {**VAE_BASE, "seed": 1, "beta_schedule": "cyclical", "lr": 3e-3},  # no control: lr differs
        _vae_rows(90.0, 0.10, 99.0),
    )
    rid = log(old, "vae", 4, {**VAE_BASE, "seed": 1, "perceptual_weight": 0.1}, _vae_rows(20.0, 0.36, 41.0))
    client.set_tag(rid, "metric_bias", "val_randconv_fd uses the same randconv features as the perceptual loss")
    gan = _parent(client, exp_id, "gan_stability", 2_000_000, "val_classifier_fd", "gan_stability")
    log(gan, "dcgan", 0, {**GAN_BASE, "minibatch_disc": 32}, _gan_rows(40.0, 0.20))
    log(gan, "dcgan", 1, GAN_BASE, _gan_rows(45.0, 0.50))
    rid = log(gan, "dcgan", 2, {**GAN_BASE, "lr_ratio": 8.0}, _gan_rows(39.0, 0.80), "diverged")
    client.set_tag(rid, "diverged_epoch", "3")
    rid = log(gan, "dcgan", 3, {**GAN_BASE, "lr_g": 1e-4}, _gan_rows(60.0, 0.30, collapse=1.0), "collapsed")
    for k, v in {"collapsed_epoch": "2", "detector.mode_collapse": "epoch 1"}.items():
        client.set_tag(rid, k, v)
    new = _parent(client, exp_id, "tradeoff", 3_000_000, "val_probe_acc,val_classifier_fd", "tradeoff", mode="max,min")
    log(new, "vae", 10, {**VAE_BASE, "seed": 2}, _vae_rows(22.0, 0.37, 55.0))  # completes the seed-2 pair
    for i, (lat, probe, fd, collapse) in enumerate(
        [
            (16, 0.40, 50.0, 0.0),
            (32, 0.35, 40.0, 0.0),
            (128, 0.30, 45.0, 0.0),
            (256, 0.38, 60.0, 0.0),
            (8, 0.20, 35.0, 1.0),
        ],
        11,
    ):
        log(new, "vae", i, {**VAE_BASE, "seed": 3, "latent_dim": lat}, _vae_rows(5.0, probe, fd, collapse))
    log(new, "vae", 16, {**VAE_BASE, "seed": 3, "latent_dim": 512}, _vae_rows(5.0, 0.9, 1.0), "stopped")
    out = tmp_path / "report"
    md = build_report("mitigations", out, tracking_uri=uri).with_name("report.md").read_text()
    return out, md, {"old": old, "gan": gan, "new": new}


def _section(md, title):
    return md.split(f"## {title}")[1].split("\n## ")[0]


def _row(text, *starts):
    return next(line for line in text.splitlines() if line.startswith("| " + " | ".join(starts) + " |"))


def test_mitigation_gain_measured_over_seeds_and_parents(mitigations_report):
    _, md, parents = mitigations_report
    sec = _section(md, "Failure modes and mitigations")
    assert "all 16 trial runs of experiment 'mitigations' (children of 3 sweep parent run(s)" in sec
    assert _row(sec, "cyclical β annealing", "vae").count("KL > 10") == 1  # the catalogue row
    kl = _row(sec, "cyclical β annealing", "test_kl")
    # seed 1: 30 vs 20, seed 2: 34 vs 22 -> with 32 ± 2.83, without 21 ± 1.41, gain +11 (+52.4%); two seeds give a
    # 95% t-interval of 11 ± 12.71, which includes 0: inconclusive, whatever the mean says
    assert (
        "| 2 pair(s), 2 seed(s) | 32.00 ± 2.83 | 21.00 ± 1.41 | +11.00 (+52.4%), 95% CI [−1.71, +23.71] | KL > 10 |"
    ) in kl
    assert "inconclusive; with-mean > 10" in kl and "cifar10, test split, 10,000 images, best epoch" in kl
    probe = _row(sec, "cyclical β annealing", "test_probe_acc")
    assert "41.00% ± 1.41%" in probe and "36.50% ± 0.71%" in probe
    assert "+4.50 pp (+12.3%), 95% CI [−1.85 pp, +10.85 pp]" in probe
    assert "meaningful representations" in probe and "scored on the test split, 10,000 images" in probe
    assert (
        sec.count(
            "cyclical β annealing: on-settings compared: beta_schedule=cyclical, cycles=2, "
            "ramp_fraction=0.5 (2 pair(s))."
        )
        == 1
    )  # one note for both targets


def test_mitigation_not_measured_bias_and_gan(mitigations_report):
    _, md, _ = mitigations_report
    sec = _section(md, "Failure modes and mitigations")
    # Mitigations with no matched trials collapse into one line naming the command that measures them.
    line = next(ln for ln in sec.splitlines() if ln.startswith("Not measured in this experiment"))
    assert "free bits" in line and "spectral norm + TTUR" in line and "sweeps/ablate_cyclical.py" in line
    assert not [ln for ln in sec.splitlines() if ln.startswith("| free bits | test_kl |")]
    perc = _row(sec, "perceptual loss", "test_randconv_fd")
    assert (
        "| 41.00 | 52.00 | −11.00 (−21.2%), no interval (1 pair) | sharper textures, better details | "
        "inconclusive; BIASED"
    ) in perc
    assert "perceptual loss / test_randconv_fd: BIASED" in sec
    assert "BIASED" not in _row(sec, "perceptual loss", "test_classifier_fd")
    div = _row(sec, "minibatch discrimination", "test_class_kl")
    assert "| 0.20 | 0.50 | −0.30 (−60.0%), no interval (1 pair) | +20–30% diversity | inconclusive |" in div
    assert "512 fixed-z generated images vs test split" in div
    assert "TTUR alone: of the 1 on and 1 off trials in matched groups, diverged 1 on / 0 off." in sec


def test_flags_column_and_counts(mitigations_report):
    _, md, _ = mitigations_report
    top = _section(md, "Top trials")
    head = next(line for line in top.splitlines() if line.startswith("| rank"))
    assert head.endswith("| flags |") and "best val_probe_acc" in head  # multi-objective: ranked by the first
    assert "diverged@3" in next(line for line in top.splitlines() if "dcgan_00002" in line)
    assert "collapsed@2, mode collapse" in next(line for line in top.splitlines() if "dcgan_00003" in line)
    assert "posterior collapse" in next(line for line in top.splitlines() if "vae_00015" in line)
    assert "stopped" in next(line for line in top.splitlines() if "vae_00016" in line)
    assert "Flagged VAE trials: 2 of 7; posterior collapse: 1; stopped: 1." in top
    assert "Flagged DCGAN trials: 2 of 4; collapsed: 1; diverged: 1; mode collapse: 1." in top


def test_pareto_front(mitigations_report):
    out, md, parents = mitigations_report
    sec = _section(md, "Pareto front (multi-objective sweeps)")
    assert f"VAE, parent run {parents['new']}: val_probe_acc (max) and val_classifier_fd (min)" in sec
    assert "6 completed trials that logged every objective (1 other trial(s) left out); 3 are non-dominated" in sec
    png = out / "figures" / "vae_pareto.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and "figures/vae_pareto.png" in sec
    table = sec[sec.index("| trial_id") :]
    ids = [line.split(" | ")[0][2:] for line in table.splitlines()[2:]]
    assert ids == ["vae_00011", "vae_00012", "vae_00015"]  # best probe_acc first
    assert "posterior collapse" in table and "40.00%" in table and "35.00" in table
    assert "DCGAN, parent" not in sec  # a single-objective sweep has no front


def test_study_importances_read_the_sweeps_own_rdb_study(tmp_path):
    import optuna

    from common.report.importances import study_importances

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s/vae", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: 10 * t.suggest_float("x", 0, 1) + 0.01 * t.suggest_float("y", 0, 1), n_trials=12)
    imp, n = study_importances(storage, "s/vae")
    assert n == 12 and set(imp) == {"x", "y"} and imp["x"] > 0.9 and abs(sum(imp.values()) - 1) < 1e-9
    with pytest.raises(RuntimeError, match="cannot read Optuna study 'nope'"):
        study_importances(storage, "nope")


def test_seed_spread_table_for_trials_that_differ_only_in_seed(sweep, tmp_path):
    """The slides preset at three seeds: mean ± std and the 95% t-interval of each reported number."""
    uri, _ = sweep
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("seeds", artifact_location=(tmp_path / "artifacts").as_uri())
    pid = _parent(client, exp_id, "slides", 1_000_000, "val_mse_kl", "slides")
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
        _log_trial(
            client, exp_id, pid, "vae", i, {**VAE_BASE, "seed": seed}, rows, "completed", tmp_path, figures=False
        )
    _log_trial(
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
    kl = _row(sec, "VAE", "test_kl")
    # mean 42, std 2, half-width t(0.975, 2) * 2 / sqrt(3) = 4.303 * 1.155 = 4.97
    assert "| 3 (1, 2, 3) | 42.00 ± 2.00 | 95% CI [37.03, 46.97] |" in kl and "99.00" not in sec
    assert "| 3 (1, 2, 3) | 219.00 ± 1.00 |" in _row(sec, "VAE", "test_mse_kl")
    # ...but on 5,000 train images for 3 epochs: outside the slides' budget, so not the budget table's winners
    budget = _section(md, "Best within the slides' budget")
    assert "| VAE: KL (nats/image) (`test_kl`) | 61.25 | not run | not run | > 10.00 | not measured" in budget
    assert "VAE: a group of 3 seeds left out, outside the budget: train_subset 5000 is not 10,000." in budget


def test_a_sweep_over_several_families_gets_one_front_with_the_slides_models_on_it(sweep, tmp_path):
    """sweeps/tradeoff3.py: one parent, a multi-objective search per family; the slides preset's runs
    (another, older parent of the experiment) are placed on the families' joint front."""
    from common.report.seeds import preset_params

    uri, _ = sweep
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("tradeoff3", artifact_location=(tmp_path / "artifacts").as_uri())
    log = lambda parent, fam, i, params, rows: _log_trial(
        client, exp_id, parent, fam, i, params, rows, "completed", tmp_path, figures=False
    )
    seeds = _parent(client, exp_id, "seed_spread", 1_000_000, "val_bpd", "seed_spread")
    for i, (seed, probe) in enumerate(((42, 0.37), (43, 0.39))):
        log(seeds, "vae", i, {**preset_params()["vae"], "seed": seed}, _vae_rows(40.0, probe, 30.0))
    new = _parent(
        client, exp_id, "tradeoff3", 2_000_000, "val_probe_acc,val_classifier_fd", "tradeoff3", mode="max,min"
    )
    log(new, "vae", 10, VAE_BASE, _vae_rows(40.0, 0.40, 50.0))
    log(new, "vae", 11, {**VAE_BASE, "beta": 2.0}, _vae_rows(40.0, 0.30, 60.0))  # dominated by vae_00010
    log(new, "dcgan", 12, GAN_BASE, [{**_gan_rows(20.0, 0.1)[0], "val_probe_acc": 0.25}])
    out = tmp_path / "report"
    md = build_report("tradeoff3", out, tracking_uri=uri).with_name("report.md").read_text()
    sec = _section(md, "Pareto front (multi-objective sweeps)")
    joint = sec[sec.index(f"### VAE, DCGAN together, parent run {new}") :]
    assert "3 completed trials that logged every objective (0 other trial(s) left out); 2 are non-dominated" in joint
    assert (
        "Placed on it (black stars, not part of the front): the slides' VAE (slides preset, 2 seed(s)): "
        "val_probe_acc 38.00%, val_classifier_fd 30.00."
    ) in joint
    ids = [line.split(" | ")[0][2:] for line in joint[joint.index("| trial_id") :].splitlines()[2:]]
    assert ids == ["VAE vae_00010", "DCGAN dcgan_00012"]
    assert (out / "figures" / f"{new[:8]}_pareto_families.png").read_bytes()[:8] == PNG_MAGIC
