"""What a number in the report means: how a param or final metric is read (``parse_value``,
``final_value``), how a metric value is printed (``fmt_value``, ``fmt_count``) and the data, split and
sample count it was measured on (``measured_on``; ``SPLITS_NOTE``, which split selects and which scores).
Pure: no I/O.

A trial here is a dict ``{"id", "params", "metrics", "tags"}`` (``runs.Trial.as_dict``): its MLflow
params (strings), its final-epoch metric values and its tags.
"""

from __future__ import annotations

import math
from typing import Any

SPLITS_NOTE = (
    "Splits: every selection (ASHA, the searcher, each trial's best epoch, the best trial, the @best model, the "
    "Pareto front) reads val_* metrics: validation images drawn from the train split outside the train subset. "
    "test_* numbers are each trial's best epoch scored once on the test split."
)


def parse_value(value: Any) -> int | float | str:
    """MLflow params are strings: '3' -> 3, '1e-3' -> 0.001, 'adam' -> 'adam'."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    for typ in (int, float):
        try:
            return typ(value)
        except (TypeError, ValueError):
            pass
    return str(value)


def final_value(trial: dict, key: str) -> float | None:
    """The trial's final-epoch value of ``key``; None when not logged or not finite."""
    v = trial["metrics"].get(key)
    return v if v is not None and math.isfinite(v) else None


def fmt_value(key: str, value: float | None) -> str:
    """A metric value as the report prints it: probe_acc as %, train time in min, sizes in M."""
    if value is None or not math.isfinite(value):
        return "—" if value is None else str(value)
    if key.endswith("probe_acc") or key.startswith("test_probe_acc"):  # a fraction; > 1 is already a percentage
        return f"{value * 100 if value <= 1 else value:.2f}%"
    if key == "train_time_s":
        return f"{value / 60:.1f} min"
    if key.startswith("n_params"):
        return f"{value / 1e6:.2f}M ({int(value):,})"
    return f"{value:.3f}" if key in ("g_loss", "d_loss") or key.endswith("bpd") else f"{value:.2f}"


def fmt_count(value: float | str | None) -> str | None:
    """10000.0 or '10000' -> '10,000'; None when not logged or not a number."""
    try:
        return f"{int(float(value)):,}"
    except (TypeError, ValueError):
        return None


def measured_on(key: str, trial: dict, epochs: int | None = None) -> str:
    """Data, split and sample count behind ``key``: the trial's data param and step-0 size metrics
    (``epochs``: how many the trial ran, for train_time_s)."""
    params, tags = trial["params"], trial["tags"]
    data = params.get("data") or tags.get("data", "?")
    n_train, n_val, n_test = (
        fmt_count(trial["metrics"].get(f"n_{split}_images")) for split in ("train", "val", "test")
    )
    size = lambda n: f"{n} images" if n else "size not logged"
    val = f"validation: {size(n_val)} of the train split outside the train subset"
    test = f"test split, {size(n_test)}"
    where = val if key.startswith("val_") else test if key.startswith("test_") else None
    best = "best epoch (on validation)" if key.startswith("test_") else "final epoch"
    if key.endswith("probe_acc") or key.startswith("test_probe_acc"):
        scored = "validation images" if key.startswith("val_") else f"the {test}"
        base = {"test_probe_acc_pixels": "raw pixels; ", "test_probe_acc_random_init": "randomly initialised net; "}
        return (
            f"{data}, {base.get(key, '')}logistic regression fit on the train subset ({size(n_train)}), C chosen "
            f"on the {val}, scored on {scored}"
        )
    if key.endswith(("_classifier_fd", "_randconv_fd", "_class_coverage", "_class_kl", "_classifier_is", "_diversity")):
        n_gen = fmt_count(params.get("eval_samples")) or "? (not logged)"
        feats = "randconv256 features" if "randconv" in key else "domain-classifier features"
        return f"{data}, {n_gen} fixed-z generated images vs {where}, {feats} (not Inception FID), {best}"
    if where:
        return f"{data}, {where}, {best}"
    if key in ("g_loss", "d_loss", "d_real", "d_fake", "loss_ratio", "grad_norm_d", "grad_norm_g"):
        what = "ratio of final-epoch means" if key == "loss_ratio" else "final-epoch mean"
        return f"{data}, train subset {size(n_train)}, {what} over batches"
    if key == "train_time_s":
        return f"cumulative training time, {epochs or '?'} epochs on {tags.get('device', '?')}"
    return data
