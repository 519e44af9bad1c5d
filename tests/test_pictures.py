"""bench/pictures.py: the README's pictures from what MLflow holds and what the report renders."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import pictures  # noqa: E402


def test_the_samples_picture_puts_each_runs_logged_grid_side_by_side_under_its_label(tmp_path):
    from mlflow.tracking import MlflowClient
    from PIL import Image

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri())
    runs = []
    for shade, size in (("red", 34), ("blue", 50)):
        rid = client.create_run(exp).info.run_id
        (tmp_path / rid).mkdir()
        Image.new("RGB", (size, size), shade).save(tmp_path / rid / "samples.png")
        client.log_artifact(rid, str(tmp_path / rid / "samples.png"), "figures")
        runs.append((uri, rid, f"{shade} run"))
    out = pictures.samples(runs, tmp_path / "img" / "samples.png", scale=2)
    picture = Image.open(out)
    assert picture.size == (68 + pictures.GAP + 100, pictures.LABEL_H + 100)
    assert picture.getpixel((10, pictures.LABEL_H + 10)) == (255, 0, 0)  # the first run's own grid
    assert picture.getpixel((68 + pictures.GAP + 10, pictures.LABEL_H + 10)) == (0, 0, 255)


def test_the_glance_picture_is_the_reports_at_a_glance_section_alone(tmp_path):
    pytest.importorskip("playwright.sync_api")
    if not Path(pictures.CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (the Makefile installs it)")
    from PIL import Image

    tall = "<p style='height:900px'>other</p>"
    html = f"<html><body><h1>r</h1><h2>At a glance</h2><p style='height:200px'>x</p><h2>More</h2>{tall}</body></html>"
    (tmp_path / "index.html").write_text(html)
    out = pictures.glance(tmp_path / "index.html", tmp_path / "glance.png", width=400)
    height = Image.open(out).size[1]
    assert 250 < height < 800  # the section (and the title), not the 900-pixel section after it
