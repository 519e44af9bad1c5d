"""common/report/slides_comparison.py: the slides' published numbers beside each family's best trial,
what each was measured on, and the models' sizes."""

from __future__ import annotations

from fake_sweep import table_row


def test_seed_table_values(report):
    _, _, md, page = report
    seed_rows = md.split("## Comparison with the slides")[1].split("## Figures")[0]
    for published in ("200.82", "139.56", "61.25", "37.69%", "3.866", "0.159", "24.4", "22 min", "45 min"):
        assert published in seed_rows
    elbo_row = next(line for line in seed_rows.splitlines() if line.startswith("| Negative ELBO, the slides"))
    assert "205.43" in elbo_row  # best VAE trial's test_mse_kl (its best epoch on the test split)
    probe_row = next(line for line in seed_rows.splitlines() if line.startswith("| Linear probe"))
    assert "36.12%" in probe_row  # test_probe_acc of that same trial (index 1), as a percentage
    assert "39.99%" in table_row(seed_rows, "Probe baseline: raw pixels, same protocol")
    assert "28.88%" in table_row(seed_rows, "Probe baseline: the same net randomly initialised, same protocol")
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


def test_model_sizes(report):
    _, _, md, _ = report
    models = md.split("### Model sizes")[1].split("## Figures")[0]
    vae = next(line for line in models.splitlines() if "n_params_vae" in line)
    assert "1.38M" in vae and "1.10M (1,100,000)" in vae and "vae_00001" in vae  # best VAE trial is index 1
    g = next(line for line in models.splitlines() if "n_params_g" in line)
    d = next(line for line in models.splitlines() if "n_params_d" in line)
    assert "1.24M" in g and "(1,240,002)" in g and "dcgan_00002" in g
    assert "2.76M" in d and "(2,760,002)" in d


def test_a_one_family_report_has_columns_and_size_rows_for_that_family_alone(tmp_path):
    from dataclasses import dataclass
    from typing import ClassVar

    from fake_sweep import gan_rows, log_parent, log_trial
    from mlflow import MlflowClient

    from common.report.build import build_report
    from common.trial.config import DCGANConfig
    from common.trial.families import FAMILIES, Family, register
    from common.trial.tasks.dcgan import DCGANTask

    @dataclass(frozen=True)
    class PlainConfig(DCGANConfig):
        family: ClassVar[str] = "plain"

    register(Family("plain", PlainConfig, DCGANTask, "Plain GAN", curve_metrics=(), decodes=False))  # no param_rows
    try:
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        client = MlflowClient(uri)
        exp_id = client.create_experiment("plain_only", artifact_location=(tmp_path / "a").as_uri())
        parent = log_parent(client, exp_id, "sweep", 0, "val_classifier_fd", "plain_space")
        for i, fd in enumerate([30.0, 20.0]):
            rows = gan_rows(fd, 0.5)
            log_trial(client, exp_id, parent, "plain", i, {"lr_g": 2e-4}, rows, "completed", tmp_path, figures=False)
        md = build_report("plain_only", tmp_path / "report", tracking_uri=uri).with_name("report.md").read_text()
    finally:
        FAMILIES.pop("plain", None)
    section = md.split("## Comparison with the slides")[1].split("\n## ")[0]
    header = next(line for line in section.splitlines() if line.startswith("| metric"))
    assert "Plain GAN" in header and not any(f"best {x} trial" in header for x in ("VAE", "DCGAN", "VAE-GAN"))
    sizes = section.split("### Model sizes")[1]
    body = [line for line in sizes.splitlines() if line.startswith("| ") and "model" not in line and "---" not in line]
    assert body and all("Plain GAN" in line for line in body)  # its logged n_params_g / n_params_d, nothing else
    assert {"n_params_g", "n_params_d"} <= {k for line in body for k in ("n_params_g", "n_params_d") if k in line}
