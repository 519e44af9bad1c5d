"""The report's first section, 'At a glance': the study's question ("how do VAEs and GANs differ
in representation learning vs sample quality?") answered per axis, from what MLflow holds.

A table (family x representation, sample quality, stability, cost), one verdict sentence per
axis, the best models' samples side by side, and the trade-off scatter: every completed trial's
probe accuracy against its sample score, coloured by family, the Pareto front and the slides'
models marked. Every number names its split and N; a comparison of single runs says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from common.base import slides
from common.base.figures import agg_figure
from common.base.names import TRIAL_STATUS
from common.base.objective import Objective, non_dominated
from common.report.flags import flag_kinds
from common.report.runs import FAMILY_LABEL, FamilyTrials, Trial
from common.report.seeds import preset_means
from common.report.values import fmt_count, fmt_value
from common.trial.families import FAMILIES

UNSTABLE = ("diverged", "collapsed", "mode collapse", "posterior collapse")


def _pct(v: float | None) -> str:
    return fmt_value("test_probe_acc", v)


def _kinds(bad: list[Trial]) -> str:
    """' (mode collapse: 7; diverged: 1)': which detector flagged them, so a reader can tell a
    diverged run from samples that miss classes (common.trial.diagnostics: mode collapse = fewer
    than 80% of the classes get a tenth of their share of the fixed-z samples)."""
    kinds = flag_kinds([tr.flags for tr in bad], only=UNSTABLE)
    return f" ({'; '.join(f'{k}: {n}' for k, n in sorted(kinds.items()))})" if kinds else ""


def _row(fam: FamilyTrials) -> list[str]:
    """One family: representation, sample quality, stability, cost (its best trial; stability over all)."""
    t = fam.best
    probe, pixels = t.metric("test_probe_acc"), t.metric("test_probe_acc_pixels")
    rep = f"{_pct(probe)} (raw pixels {_pct(pixels)}" + (
        f", {100 * (probe - pixels):+.2f} pp)" if None not in (probe, pixels) else ")"
    )
    if (fid := t.metric("fid")) is not None:
        n, ref = t.tags.get("eval.n", "?"), t.tags.get("eval.reference_n", "?")
        quality = f"FID {fid:.1f}, KID {fmt_value('kid', t.metric('kid'))} ({n} generated vs {ref} test, Inception-v3)"
    else:
        quality = (
            "no Inception FID (the final stage did not score it); domain-classifier FD "
            f"{fmt_value('test_classifier_fd', t.metric('test_classifier_fd'))} (1,000 fixed-z samples)"
        )
    cov, div = t.metric("test_class_coverage"), t.metric("test_diversity")
    if cov is not None and div is not None:  # numbers, not flags: blurry samples miss classes without collapsing
        quality += f"; its samples cover {cov:.0%} of the classes, diversity {div:.2f} (real images: 1)"
    bad = [tr for tr in fam.trials if any(f.split("@")[0] in UNSTABLE for f in tr.flags)]
    cost = t.metric("epoch_time_s")  # its last epoch, validation scoring included
    return [
        f"{FAMILY_LABEL[fam.name]} ({t.trial_id})",
        rep,
        quality,
        f"{len(bad)} of {len(fam.trials)} trials diverged or collapsed" + _kinds(bad),
        "—"
        if cost is None
        else f"{cost:.1f} s per epoch (its last, validation included) on {t.tags.get('device', '?')}",
    ]


def _verdicts(families: dict[str, FamilyTrials], rows: dict[str, list[str]]) -> list[str]:
    fams = [f for f in families.values() if f.best is not None]
    out = []
    probes = [(f.best.metric("test_probe_acc"), f) for f in fams if f.best.metric("test_probe_acc") is not None]
    if len(probes) >= 2:
        (hi, a), (lo, b) = max(probes, key=lambda p: p[0]), min(probes, key=lambda p: p[0])
        px = a.best.metric("test_probe_acc_pixels")
        out.append(
            f"Representation: {FAMILY_LABEL[a.name]}'s features probe best, {_pct(hi)} vs "
            f"{FAMILY_LABEL[b.name]}'s {_pct(lo)} (raw pixels {_pct(px)}; linear probe, all test images)."
        )
    fids = [(f.best.metric("fid"), f) for f in fams if f.best.metric("fid") is not None]
    if len(fids) >= 2:
        (lo, a), (hi, b) = min(fids, key=lambda p: p[0]), max(fids, key=lambda p: p[0])
        out.append(
            f"Sample quality: {FAMILY_LABEL[a.name]}'s samples are closer to the test images, FID {lo:.1f} vs "
            f"{FAMILY_LABEL[b.name]}'s {hi:.1f} (Inception-v3, n = {a.best.tags.get('eval.n', '?')} generated)."
        )
    elif (
        len(
            proxy := [
                (f.best.metric("test_classifier_fd"), f)
                for f in fams
                if f.best.metric("test_classifier_fd") is not None
            ]
        )
        >= 2
    ):
        (lo, a), (hi, b) = min(proxy, key=lambda p: p[0]), max(proxy, key=lambda p: p[0])
        out.append(
            f"Sample quality (the per-epoch proxy; no Inception FID for both yet): {FAMILY_LABEL[a.name]}'s "
            f"domain-classifier FD {lo:.2f} vs {FAMILY_LABEL[b.name]}'s {hi:.2f} (1,000 fixed-z samples vs the "
            "test images)."
        )
    if len(fams) >= 2:
        out.append("Stability: " + "; ".join(f"{FAMILY_LABEL[f.name]} {rows[f.name][3]}" for f in fams) + ".")
    if out:
        out.append(
            "Each number is one trial, the best of its family on the validation objective: one seed, so no "
            "interval; 'Seed-to-seed spread' below gives intervals where the experiment ran seeds."
        )
    return out or ["One family only: run both (make sweep) to compare them."]


def _samples(families: dict[str, FamilyTrials], out_dir: Path) -> list[tuple]:
    """The best models' sample grids (copied by the report's Figures section) in one row."""
    grids = [(n, out_dir / "figures" / f"{n}_samples.png") for n in families]
    grids = [(n, p) for n, p in grids if p.is_file()]
    if not grids:
        return []
    import matplotlib.image as mpimg

    fig = agg_figure((3.2 * len(grids), 3.5))
    for ax, (name, path) in zip(fig.subplots(1, len(grids), squeeze=False)[0], grids):
        ax.imshow(mpimg.imread(str(path)))
        ax.set_title(f"{FAMILY_LABEL[name]}, trial {families[name].best.trial_id}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out_dir / "figures" / "glance_samples.png", format="png")
    return [
        (
            "img",
            "figures/glance_samples.png",
            "Samples of each family's best model (the trial's figures/samples.png, drawn when its objective last improved)",
        )
    ]


def _scatter(every: Sequence[Trial], out_dir: Path) -> list[tuple]:
    """Every completed trial: test_probe_acc against FID where all have one, else test_classifier_fd."""
    # 1. the trials with a probe and the sample score, and the front among them
    done = [t for t in every if t.tags.get(TRIAL_STATUS) == "completed" and t.metric("test_probe_acc") is not None]
    x_key = "fid" if done and all(t.metric("fid") is not None for t in done) else "test_classifier_fd"
    done = [t for t in done if t.metric(x_key) is not None]
    if len(done) < 2:
        return [
            (
                "p",
                "Trade-off scatter: fewer than 2 completed trials with a probe and a sample score; run "
                "`make sweep` (or `python run_sweep.py --space sweeps/tradeoff3.py`) to draw it.",
            )
        ]
    points = [(t.metric(x_key), t.metric("test_probe_acc")) for t in done]
    front = non_dominated(points, [Objective(x_key, "min"), Objective("test_probe_acc", "max")])
    # 2. the figure, with the slides' models as the slides preset ran them
    anchors = preset_means([t.as_dict() for t in every], [x_key, "test_probe_acc"])
    _draw(done, points, front, anchors, x_key).savefig(out_dir / "figures" / "glance_tradeoff.png", format="png")
    # 3. its caption: what each axis was measured on
    n = done[0].run.data.metrics.get("n_test_images")
    x_what = (
        " (Inception FID of the final stage)"
        if x_key == "fid"
        else " (domain-classifier FD of 1,000 fixed-z samples, the validated per-epoch proxy: not every trial "
        "has an Inception FID)"
    )
    caption = (
        f"Trade-off: {len(done)} completed trials, each at its best epoch (chosen on validation), scored on the "
        f"test split ({fmt_count(n) or '?'} images); x = {x_key}{x_what}; {len(front)} "
        f"trial{'' if len(front) == 1 else 's'} on the Pareto front (ringed); dotted line: the slides' VAE probe"
        + ("; stars: the slides' models as the slides preset ran them here." if anchors else ".")
    )
    return [("img", "figures/glance_tradeoff.png", caption)]


def _draw(done: list[Trial], points: list[tuple[float, float]], front: list[int], anchors, x_key: str):
    """The trade-off scatter: a colour per family, the front ringed, the anchors as stars, the slides' probe."""
    fig = agg_figure((7, 4.6))
    ax = fig.subplots()
    for family in dict.fromkeys(t.family for t in done):
        xs = [p for t, p in zip(done, points) if t.family == family]
        ax.scatter(
            [x for x, _ in xs],
            [100 * y for _, y in xs],
            s=24,
            c=FAMILIES[family].colour if family in FAMILIES else "C7",
            label=FAMILY_LABEL.get(family, family),
        )
    order = sorted(front, key=lambda i: points[i][0])
    ax.plot(
        [points[i][0] for i in order],
        [100 * points[i][1] for i in order],
        "ko--",
        lw=1,
        ms=11,
        mfc="none",
        label="Pareto front (ringed)",
    )
    for label, (x, y) in anchors:
        ax.scatter([x], [100 * y], s=160, marker="*", c="black")
        ax.annotate(label, (x, 100 * y), fontsize=7, xytext=(4, -10), textcoords="offset points")
    ax.axhline(
        100 * slides.PROBE_ACC,
        color="C0",
        ls=":",
        lw=1,
        label=f"the slides' VAE probe ({slides.PROBE_ACC:.2%}; no FID)",
    )
    ax.set(
        xlabel=f"{x_key} (test split, lower is better)",
        ylabel="linear probe accuracy, % (test split)",
        title="Representation vs sample quality: every completed trial",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def glance_blocks(families: dict[str, FamilyTrials], every: Sequence[Trial], out_dir: Path) -> list[tuple]:
    """'At a glance': run after the Figures section has copied each best model's samples."""
    fams = [f for f in families.values() if f.best is not None]
    if not fams:
        return [("h2", "At a glance"), ("p", "No completed trial yet: run `make sweep`.")]
    rows = {f.name: _row(f) for f in fams}
    table = (
        "table",
        [
            "family (best trial)",
            "representation: probe on test (raw-pixel baseline)",
            "sample quality",
            "stability (all trials)",
            "cost (train time)",
        ],
        list(rows.values()),
    )
    return [
        ("h2", "At a glance"),
        table,
        ("ul", _verdicts(families, rows)),
        *_samples(families, out_dir),
        *_scatter(every, out_dir),
    ]
