"""common/report/runs.py: which sweep parents and trial runs the report reads from MLflow (each family from
its latest sweep, or one parent run given)."""

from __future__ import annotations

from fake_sweep import dcgan_rows, log_parent, log_trial
from mlflow import MlflowClient

from common.report.build import build_report


def test_each_family_from_its_latest_sweep(sweep, tmp_path):
    """`make sweep`: a VAE sweep, then a DCGAN sweep, into one experiment (plus an older DCGAN sweep
    and a newer parent without trials, neither of which may be used)."""
    uri, _ = sweep
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("vae_vs_dcgan", artifact_location=(tmp_path / "artifacts").as_uri())
    old = log_parent(client, exp_id, "old_gan", 1_000_000, "val_classifier_fd", "gan_ttur")
    log_trial(
        client, exp_id, old, "dcgan", 7, {"lr_ratio": 1.0}, dcgan_rows(11.11), "completed", tmp_path, figures=False
    )
    vae = log_parent(client, exp_id, "vae_sweep", 2_000_000, "val_mse_kl", "vae_beta")
    for i, elbo in enumerate([250.0, 222.22]):
        log_trial(
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
    new = log_parent(client, exp_id, "new_gan", 3_000_000, "val_classifier_fd", "gan_ttur")
    for i, fd in enumerate([35.0, 33.33]):
        log_trial(
            client,
            exp_id,
            new,
            "dcgan",
            i,
            {"lr_ratio": 2.0 * (i + 1)},
            dcgan_rows(fd),
            "completed",
            tmp_path,
            sizes={"n_train_images": 1000, "n_test_images": 2000},
            figures=False,
        )
    empty = log_parent(client, exp_id, "no_trials_yet", 4_000_000, "val_classifier_fd", "gan_ttur")

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
    assert "best VAE trial" not in md_old  # no column for a family that has no run under this parent
