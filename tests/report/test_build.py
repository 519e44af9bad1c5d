"""common/report/build.py: the report (report.md, index.html, figures/) built from a fake sweep in a
temporary sqlite MLflow store, uploaded to the parent run; a missing experiment or parent is a ReportError."""

from __future__ import annotations

import pytest
from fake_sweep import EXPERIMENT
from mlflow import MlflowClient

from common.report.build import ReportError, build_report


def test_files_written(report):
    out, index, md, page = report
    assert index == out / "index.html" and (out / "report.md").is_file()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page


def test_header(report, sweep):
    _, _, md, _ = report
    assert sweep[1] in md and "abc1234" in md and "d41d8cd9" in md and "gan_ttur" in md


def test_the_report_says_which_split_selects(report):
    _, _, md, _ = report
    header = md.split("## Comparison with the slides")[0]
    assert "every selection (ASHA, the searcher, each trial's best epoch, the best trial" in header
    assert "chosen by its best val_mse_kl (min, validation)" in md


def test_the_html_carries_its_images_so_mlflows_artifact_viewer_shows_them(report):
    _, _, md, page = report
    assert "<img" in page and "<img src='data:image/png;base64," in page
    assert "<img src='figures/" not in page  # a relative path resolves to nothing in the viewer
    assert "](figures/" in md  # the Markdown beside its figures/ folder keeps its links


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


def test_several_experiments_make_one_report_each_family_from_the_first_that_has_it(sweep, tmp_path):
    from fake_sweep import log_parent, log_trial

    uri, pid = sweep
    client = MlflowClient(tracking_uri=uri)
    other = client.create_experiment("vae_only", artifact_location=(tmp_path / "a").as_uri())
    parent = log_parent(client, other, "vae sweep", 1, "val_mse_kl", "vae_beta")
    rows = [{"val_mse_kl": 199.0 - e, "val_kl": 60.0, "val_recon": 139.0, "train_time_s": 1.0} for e in range(3)]
    rows[-1].update(test_mse_kl=196.789, test_kl=60.5)
    log_trial(client, other, parent, "vae", 7, {"latent_dim": 48}, rows, "completed", tmp_path, figures=False)

    md = (build_report(["vae_only", EXPERIMENT], tmp_path / "r", tracking_uri=uri).parent / "report.md").read_text()
    assert md.startswith(f"# VAE vs DCGAN report: vae_only + {EXPERIMENT}")  # the title names the families shown
    assert "196.79" in md and "205.43" not in md  # the VAE from vae_only, listed first
    assert "38.77" in md  # the DCGAN from the other experiment, which alone has one
    assert parent in md and pid in md  # both sweeps named in the appendix
    with pytest.raises(ReportError, match="'nope' not found"):
        build_report(["vae_only", "nope"], tmp_path / "r2", tracking_uri=uri)
