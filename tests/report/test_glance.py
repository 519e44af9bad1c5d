"""common/report/glance.py: the report's 'At a glance', first, over a VAE and a DCGAN sweep."""

from __future__ import annotations

from fake_sweep import log_trial
from mlflow.tracking import MlflowClient
from PIL import Image

from common.report.build import build_report


def _experiment(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("glance", artifact_location=(tmp_path / "art").as_uri())
    pid = client.create_run(exp, run_name="sweep", tags={"sweep.role": "parent"}).info.run_id
    client.log_param(pid, "metric", "val_classifier_fd")
    # (family, val objective, test probe, test FD, pixels, status, mode collapse)
    trials = [
        ("vae", 30.0, 0.39, 30.5, 0.40, "completed", 0.0),
        ("vae", 32.0, 0.37, 31.0, 0.40, "completed", 0.0),
        ("dcgan", 6.0, 0.60, 6.2, 0.39, "completed", 1.0),
        ("dcgan", 9.0, 0.58, 9.5, 0.39, "completed", 0.0),
        ("dcgan", 1e9, None, None, None, "diverged", 0.0),
    ]
    for i, (family, val, probe, fd, pixels, status, collapse) in enumerate(trials):
        last = {
            "val_classifier_fd": val,
            "epoch_time_s": 12.0 if family == "vae" else 20.0,
            "train_time_s": 40.0,
            "mode_collapse": collapse,
        }
        last.update(
            {
                k: v
                for k, v in {"test_probe_acc": probe, "test_classifier_fd": fd, "test_probe_acc_pixels": pixels}.items()
                if v is not None
            }
        )
        log_trial(client, exp, pid, family, i, {"latent_dim": 64}, [last], status, tmp_path, figures=i in (0, 2))
    return uri


def test_the_report_opens_with_the_answer_per_axis_the_samples_and_the_tradeoff(tmp_path):
    index = build_report("glance", tmp_path / "r", tracking_uri=_experiment(tmp_path))
    md = index.with_name("report.md").read_text()
    glance = md.split("## At a glance")[1].split("\n## ")[0]
    assert (
        md.index("## At a glance") < md.index("## Comparison with the slides") < md.index("## Appendix: run metadata")
    )
    assert "| VAE (vae_00000) | 39.00% (raw pixels 40.00%, -1.00 pp) |" in glance
    assert "| DCGAN (dcgan_00002) | 60.00% (raw pixels 39.00%, +21.00 pp) |" in glance
    assert (
        "Sample quality (the per-epoch proxy; no Inception FID for both yet): DCGAN's domain-classifier FD 6.20"
        in glance
    )
    assert "2 of 3 trials diverged or collapsed (diverged: 1; mode collapse: 1)" in glance
    assert "0 of 2 trials diverged or collapsed |" in glance  # no kinds when none was flagged
    assert "Representation: DCGAN's features probe best, 60.00% vs VAE's 39.00%" in glance
    assert "one seed, so no interval" in glance
    # The scatter: every completed trial (4), x = the proxy since no trial has an Inception FID
    assert "Trade-off: 4 completed trials" in glance and "x = test_classifier_fd" in glance
    assert "1 trial on the Pareto front" in glance  # the DCGAN at 6.2 / 60% dominates the other three
    assert "stars" not in glance  # no trial ran the slides preset: the caption names no stars
    for png in ("glance_tradeoff.png", "glance_samples.png"):
        assert f"figures/{png}" in glance and Image.open(tmp_path / "r" / "figures" / png).size[0] > 300
    # One epoch per trial: the training curves are a table of values, not single-point panels.
    assert "One epoch per best trial: its values, not curves." in md
    assert not (tmp_path / "r" / "figures" / "training_curves.png").exists()
