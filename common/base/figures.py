"""PNG figures: image grids and training-curve small multiples.

Used by the trial tasks (per-trial figures logged to MLflow) and by the report (common/report/).
Matplotlib is driven through ``Figure`` + ``FigureCanvasAgg`` directly rather than pyplot (``agg_figure``),
so nothing here changes the process-wide backend or keeps figures alive in pyplot's registry
(trials run many epochs in long-lived Ray workers).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torchvision.utils import save_image


def agg_figure(figsize: tuple[float, float]) -> Figure:
    """A 100-dpi Figure with an Agg canvas of its own: ``fig.savefig(path, format="png")`` writes it."""
    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)  # attaches the Agg canvas to this figure only
    return fig


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int = 8) -> Path:
    """Write ``images`` as one PNG grid and return its path.

    images: float tensor (N, 3, H, W) in [-1, 1] (the models' tanh range), any device.
    nrow:   images per grid row. Values are mapped to [0, 1] and clamped before saving.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"save_image_grid expects (N, 3, H, W) images, got shape {tuple(images.shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = ((images.detach().float().cpu() + 1.0) / 2.0).clamp_(0.0, 1.0)
    save_image(pixels, path, nrow=nrow, padding=2)
    return path


def save_curves(history: Mapping[str, Sequence[tuple[int, float]]], path: str | Path, title: str = "") -> Path:
    """Plot one panel per metric (x = epoch, y = value) into a PNG and return its path.

    history: metric name -> [(step, value), ...] with step = epoch (1-based; step 0 entries
             such as ``n_params`` are one-off values, plotted like any other point).
    Panels are laid out on a grid of at most 3 columns; metrics with no points get an empty
    panel saying so, so a missing metric is visible rather than silently dropped.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(history) or ["(no metrics)"]
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig = agg_figure((3.6 * ncols, 2.6 * nrows + (0.4 if title else 0.0)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.set_visible(False)
            continue
        name = names[i]
        points = sorted(history.get(name, ()))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        if not points:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            continue
        steps = [s for s, _ in points]
        values = [v for _, v in points]
        # Markers make short runs (a few epochs, or probe-only epochs) readable.
        ax.plot(steps, values, marker="o" if len(points) <= 30 else None, markersize=3, linewidth=1.2)
        if steps[0] == steps[-1]:  # one epoch only: widen x so the integer tick sits in the middle
            ax.set_xlim(steps[0] - 1, steps[0] + 1)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


LABEL_H, GAP = 28, 12  # pixels: the caption band above each image of a panel, and the space between them


def side_by_side(images: Sequence[tuple[str | Path, str]], scale: int = 1):
    """A panel (a PIL image): each (PNG path, label) in a row, the label above it; sizes may differ."""
    from PIL import Image, ImageDraw

    shown = []
    for path, label in images:
        im = Image.open(path).convert("RGB")
        shown.append((im.resize((im.width * scale, im.height * scale), Image.NEAREST), label))
    width = sum(im.width for im, _ in shown) + GAP * (len(shown) - 1)
    panel = Image.new("RGB", (max(width, 1), LABEL_H + max((im.height for im, _ in shown), default=0)), "white")
    draw, x = ImageDraw.Draw(panel), 0
    for im, label in shown:
        draw.text((x + 4, 8), label, fill="black")
        panel.paste(im, (x, LABEL_H))
        x += im.width + GAP
    return panel
