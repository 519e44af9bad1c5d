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
