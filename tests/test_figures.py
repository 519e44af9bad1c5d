"""common/base/figures.py: image grids and training curves are written as valid PNGs."""

from __future__ import annotations

import pytest
import torch

from common.base.figures import save_curves, save_image_grid

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_save_image_grid_and_curves(tmp_path):
    grid = save_image_grid(torch.rand(10, 3, 8, 8) * 2 - 1, tmp_path / "sub" / "grid.png", nrow=5)
    assert grid.read_bytes()[:8] == PNG_MAGIC
    curves = save_curves(
        {"loss": [(1, 3.0), (2, 2.0), (3, 1.5)], "acc": [(5, 0.3)], "empty": []}, tmp_path / "curves.png", title="t"
    )
    assert curves.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="N, 3, H, W"):
        save_image_grid(torch.zeros(3, 8, 8), tmp_path / "bad.png")
