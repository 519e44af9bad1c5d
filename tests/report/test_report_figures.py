"""common/report/figures.py: each family's best trial's figures copied into the report, and its own
training curves (named test_report_figures: tests/test_figures.py is common/base/figures.py's)."""

from __future__ import annotations

from fake_sweep import PNG_MAGIC


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
        assert f"alt='{name}'" in page and f"figures/{name}.png" in md  # the page embeds it (a data URI)
