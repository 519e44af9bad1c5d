"""MLflow -> comparison report (``report.md`` + self-contained ``index.html`` + ``figures/``).

Reads MLflow only (the layout in docs/ARCHITECTURE.md, "MLflow layout"): the sweep's parent
run and its child (trial) runs. Nothing comes from Ray or local trial folders, so a report
can be rebuilt anywhere the tracking store is reachable. Every number in the report carries
the data, split and sample count it was measured on, taken from the run's own params/tags;
only the seed column (the published slides) is constant.
"""
from __future__ import annotations

import datetime as dt
import html
import math
import tempfile
import os
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run

from common.figures import save_curves


class ReportError(ValueError):
    """The experiment or parent run to report on does not exist; the message says how to fix it."""


# (label, metric key, published seed value). Source: /work/shared/seed/vae_vs_dcgan_slides.md.
SEED_ROWS = [
    ("ELBO (nats/image, lower is better)", "test_elbo", "200.82"),
    ("Reconstruction (nats/image)", "test_recon", "139.56"),
    ("KL (nats/image)", "test_kl", "61.25"),
    ("Linear probe accuracy", "probe_acc", "37.69%"),
    ("G loss", "g_loss", "3.866"),
    ("D loss", "d_loss", "0.159"),
    ("G/D loss ratio", "loss_ratio", "24.4"),
    ("Train time", "train_time_s", "VAE 22 min (20 epochs, M1 Pro MPS); DCGAN 45 min (40 epochs)"),
    ("Sample quality (sample_fd, lower is better)", "sample_fd", "not measured"),
]
SEED_CONTEXT = "Seed: CIFAR-10, 10k train subset, 10k test images, seed 42, M1 Pro (MPS), per the slides."
# Objective when the sweep's own metric is not logged by a family.
FALLBACK_OBJECTIVE = {"vae": ("test_elbo", "min"), "dcgan": ("sample_fd", "min")}
CURVE_METRICS = {
    "vae": ["test_elbo", "test_recon", "test_kl", "train_loss", "probe_acc", "sample_fd"],
    "dcgan": ["g_loss", "d_loss", "loss_ratio", "d_real", "d_fake", "sample_fd"],
}
FAMILY_LABEL = {"vae": "VAE", "dcgan": "DCGAN"}
SWEEP_PARAMS = ["space", "num_samples", "max_epochs", "metric", "mode", "seed", "data", "train_subset"]
TOP_K = 10
MIN_IMPORTANCE_TRIALS = 3


@dataclass
class Trial:
    """One child run plus what the report derives from it."""

    run: Run
    family: str
    objective: float | None = None  # final-epoch value of the family's objective metric
    epochs: int | None = None  # filled lazily by _epochs (needs a metric-history call)

    def __post_init__(self):
        self.run_id, self.params, self.tags = self.run.info.run_id, self.run.data.params, self.run.data.tags
        self.trial_id = self.tags.get("trial_id") or self.run.info.run_name or self.run_id[:8]

    def metric(self, key: str) -> float | None:
        # run.data.metrics holds the latest value, i.e. the one at the highest step = final epoch.
        return self.run.data.metrics.get(key)


@dataclass
class Family:
    name: str
    metric: str
    mode: str  # "min" | "max"
    trials: list[Trial] = field(default_factory=list)
    ranked: list[Trial] = field(default_factory=list)  # trials with a finite objective, best first
    varying: list[str] = field(default_factory=list)  # params whose value differs across trials

    @property
    def best(self) -> Trial | None:
        return self.ranked[0] if self.ranked else None


# ---- entry point --------------------------------------------------------------------------
def build_report(
    experiment: str,
    out_dir: str | Path,
    tracking_uri: str | None = None,
    parent_run_id: str | None = None,
) -> Path:
    """Write ``out_dir/report.md``, ``out_dir/index.html`` and ``out_dir/figures/*.png``.

    Reports on ``parent_run_id`` or, by default, the most recent run tagged
    ``sweep.role=parent`` in ``experiment``. Returns the path of ``index.html``. The folder is
    also logged to the parent run under ``report/`` (a failed upload only warns).
    """
    client = MlflowClient(tracking_uri=tracking_uri)
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    parent = _find_parent(client, experiment, parent_run_id)
    families = _load_families(client, parent)

    blocks = _header(experiment, parent, families)
    blocks += _seed_table(client, families)
    blocks += _figures(client, families, out_dir)
    blocks += _top_trials(client, families)
    blocks += _importances(families)

    (out_dir / "report.md").write_text(_to_markdown(blocks), encoding="utf-8")
    index = out_dir / "index.html"
    index.write_text(_to_html(blocks, f"Sweep report: {experiment}"), encoding="utf-8")
    try:
        client.log_artifacts(parent.info.run_id, str(out_dir), "report")
    except Exception as e:  # the report on disk is the product; the upload is a convenience
        warnings.warn(f"report written to {out_dir} but logging it to MLflow run {parent.info.run_id} failed: {e}")
    return index


# ---- reading MLflow -----------------------------------------------------------------------
def _find_parent(client: MlflowClient, experiment: str, parent_run_id: str | None) -> Run:
    try:
        exp = client.get_experiment_by_name(experiment)
    except Exception as e:
        raise ReportError(f"cannot read MLflow at {client.tracking_uri}: {e}; check the tracking URI") from None
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ReportError(
            f"MLflow experiment {experiment!r} not found at {client.tracking_uri}; "
            f"existing experiments: {', '.join(names) or '(none)'} -- pass one of these or check the tracking URI"
        )
    if parent_run_id:
        try:
            run = client.get_run(parent_run_id)
        except Exception:
            raise ReportError(f"parent run {parent_run_id!r} not found at {client.tracking_uri}; "
                              f"omit it to use the latest sweep in {experiment!r}") from None
        if run.info.experiment_id != exp.experiment_id:
            raise ReportError(f"run {parent_run_id} belongs to experiment id {run.info.experiment_id}, "
                              f"not {experiment!r} (id {exp.experiment_id})")
        return run
    runs = client.search_runs([exp.experiment_id], "tags.`sweep.role` = 'parent'",
                              max_results=1, order_by=["attributes.start_time DESC"])
    if not runs:
        raise ReportError(f"experiment {experiment!r} has no sweep parent run (tag sweep.role=parent); "
                          f"run a sweep into it first or pass parent_run_id")
    return runs[0]


def _search_all(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _load_families(client: MlflowClient, parent: Run) -> dict[str, Family]:
    """Group the parent's children by family, pick each family's objective and rank trials."""
    children = _search_all(client, parent.info.experiment_id,
                           f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    sweep_metric = parent.data.params.get("metric")
    sweep_mode = parent.data.params.get("mode", "min")
    families: dict[str, Family] = {}
    for name in FAMILY_LABEL:
        trials = [Trial(r, name) for r in children
                  if (r.data.tags.get("family") or r.data.params.get("family")) == name]
        if not trials:
            continue
        if sweep_metric and any(sweep_metric in t.run.data.metrics for t in trials):
            metric, mode = sweep_metric, sweep_mode
        else:
            metric, mode = FALLBACK_OBJECTIVE[name]
        fam = Family(name, metric, mode, trials)
        for t in trials:
            v = t.metric(metric)
            t.objective = v if v is not None and math.isfinite(v) else None
        fam.ranked = sorted((t for t in trials if t.objective is not None),
                            key=lambda t: t.objective, reverse=(mode == "max"))
        fam.varying = _varying_params(trials)
        families[name] = fam
    return families


def _varying_params(trials: list[Trial]) -> list[str]:
    keys = sorted({k for t in trials for k in t.params} - {"family"})
    return [k for k in keys if len({t.params.get(k) for t in trials}) > 1]


def _epochs(client: MlflowClient, trial: Trial) -> int | None:
    """Epochs run = highest step of a per-epoch metric (step = epoch, 1-based)."""
    if trial.epochs is None:
        for key in ("epoch_time_s", "train_time_s"):
            steps = [m.step for m in client.get_metric_history(trial.run_id, key)]
            if steps:
                trial.epochs = max(steps)
                break
    return trial.epochs


# ---- number formatting and "measured on" context --------------------------------------------
def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    if key == "probe_acc":  # logged as a fraction; a value > 1 is already a percentage
        return f"{value * 100 if value <= 1 else value:.2f}%"
    if key == "train_time_s":
        return f"{value / 60:.1f} min"
    if key in ("g_loss", "d_loss"):
        return f"{value:.3f}"
    return f"{value:.2f}"


def _count(value: str | None) -> str | None:
    """'10000' -> '10,000'; None when not logged or not a number."""
    try:
        return f"{int(float(value)):,}"
    except (TypeError, ValueError):
        return None


def _n_test(trial: Trial) -> str | None:
    """Size of the test split: a logged ``n_test`` if any, else known from the data source."""
    n = trial.params.get("n_test") or trial.tags.get("n_test")
    if n is None and (trial.params.get("data") or trial.tags.get("data")) == "cifar10":
        n = "10000"  # the CIFAR-10 test split; other sources don't log their size
    return _count(n)


def _measured_on(client: MlflowClient, key: str, trial: Trial) -> str:
    """Data, split and sample count behind ``key`` for this trial, from its params/tags."""
    p = trial.params
    data = p.get("data") or trial.tags.get("data", "?")
    n_train = _count(p.get("train_subset")) or "? (not logged)"
    n_test = _n_test(trial)
    test = f"{n_test} test images" if n_test else "test images (count not logged)"
    if key.startswith("test_"):
        return f"{data}, test split, {n_test + ' images' if n_test else 'size not logged'}"
    if key == "probe_acc":
        return f"{data}, fit on train subset ({n_train} images), scored on {test}"
    if key in ("g_loss", "d_loss", "d_real", "d_fake"):
        return f"{data}, train subset {n_train} images, final-epoch mean over batches"
    if key == "loss_ratio":
        return f"{data}, train subset {n_train} images, ratio of final-epoch means over batches"
    if key == "train_time_s":
        return f"cumulative training time, {_epochs(client, trial) or '?'} epochs on {trial.tags.get('device', '?')}"
    if key == "sample_fd":
        n_gen = _count(p.get("eval_samples")) or "? (not logged)"
        return f"{n_gen} generated vs {data} test images, randconv256 features, not FID"
    return data


# ---- report sections (a list of blocks rendered to both Markdown and HTML) -------------------
def _header(experiment: str, parent: Run, families: dict[str, Family]) -> list[tuple]:
    tags, params = parent.data.tags, parent.data.params
    started = dt.datetime.fromtimestamp(parent.info.start_time / 1000, dt.timezone.utc)
    rows = [["Experiment", experiment],
            ["Parent run", f"{parent.info.run_id} ({parent.info.run_name or 'unnamed'})"],
            ["Sweep started (UTC)", started.strftime("%Y-%m-%d %H:%M")],
            ["Report built (UTC)", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")],
            ["Git commit", tags.get("git_commit", "—")],
            ["Data source (tag data)", tags.get("data", "—")],
            ["Data hash (tag data_hash)", tags.get("data_hash", "—")]]
    rows += [[f"Sweep param {k}", params.get(k, "—")] for k in SWEEP_PARAMS]
    for fam in families.values():
        statuses = Counter(t.tags.get("trial_status", "unknown") for t in fam.trials)
        rows.append([f"{FAMILY_LABEL[fam.name]} trials",
                     f"{len(fam.trials)} ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))})"])
    if not families:
        rows.append(["Trials", "none logged under this parent run"])
    return [("h1", f"VAE vs DCGAN sweep report: {experiment}"), ("table", ["Field", "Value"], rows)]


def _seed_table(client: MlflowClient, families: dict[str, Family]) -> list[tuple]:
    best = {name: fam.best for name, fam in families.items()}
    cols = [f"ours: best {FAMILY_LABEL[n]} trial ({best[n].trial_id if best.get(n) else 'none'})"
            for n in FAMILY_LABEL]
    rows = []
    for label, key, seed in SEED_ROWS:
        ours = [_fmt(key, best[n].metric(key)) if best.get(n) else "—" for n in FAMILY_LABEL]
        contexts = {n: _measured_on(client, key, t) for n, t in best.items()
                    if t is not None and t.metric(key) is not None}
        if not contexts:
            on = "not logged by the best trials"
        elif len(set(contexts.values())) == 1:
            on = next(iter(contexts.values()))
        else:
            on = "; ".join(f"{FAMILY_LABEL[n]}: {c}" for n, c in contexts.items())
        rows.append([label, seed, *ours, on])
    notes = [SEED_CONTEXT, "Ours = final-epoch value (highest logged step) of each metric in the best trial's MLflow run."]
    for name, fam in families.items():
        t = fam.best
        if t is None:
            notes.append(f"{FAMILY_LABEL[name]}: no trial logged {fam.metric}, so there is no best trial.")
            continue
        notes.append(
            f"Best {FAMILY_LABEL[name]} trial {t.trial_id} (run {t.run_id}): chosen by final {fam.metric} "
            f"({fam.mode}) among {len(fam.ranked)} trials that logged it; {_epochs(client, t) or '?'} epochs on "
            f"{t.tags.get('device', '?')}, status {t.tags.get('trial_status', '?')}.")
    return [("h2", "Seed comparison"),
            ("table", ["metric", "seed (published)", *cols, "measured on"], rows),
            ("ul", notes)]


def _figures(client: MlflowClient, families: dict[str, Family], out_dir: Path) -> list[tuple]:
    """Copy each best trial's figures/*.png into out_dir/figures and draw the report's curves."""
    blocks: list[tuple] = [("h2", "Figures")]
    history: dict[str, list[tuple[int, float]]] = {}
    order = {n: i for i, n in enumerate(("samples", "reconstructions", "interpolations", "curves"))}
    for name, fam in families.items():
        if (t := fam.best) is None:
            continue
        blocks.append(("h3", f"{FAMILY_LABEL[name]}: best trial {t.trial_id}"))
        try:
            pngs = [f.path for f in client.list_artifacts(t.run_id, "figures") if f.path.endswith(".png")]
        except Exception as e:
            pngs = []
            blocks.append(("p", f"Could not list artifacts of run {t.run_id}: {e}"))
        pngs.sort(key=lambda a: (order.get(Path(a).stem, len(order)), a))
        with tempfile.TemporaryDirectory() as tmp, _no_progress_bar():
            for art in pngs:
                dest = out_dir / "figures" / f"{name}_{Path(art).name}"
                try:
                    dest.write_bytes(Path(client.download_artifacts(t.run_id, art, tmp)).read_bytes())
                except Exception as e:
                    blocks.append(("p", f"Could not download {art} of run {t.run_id}: {e}"))
                    continue
                blocks.append(("img", f"figures/{dest.name}",
                               f"{FAMILY_LABEL[name]} {t.trial_id}: {Path(art).stem} (run artifact {art})"))
        if not pngs:
            blocks.append(("p", f"Run {t.run_id} has no figures/*.png artifacts."))
        for key in CURVE_METRICS[name]:
            points = [(m.step, m.value) for m in client.get_metric_history(t.run_id, key)]
            if points:
                history[f"{name}: {key}"] = points
    if history:
        save_curves(history, out_dir / "figures" / "training_curves.png",
                    title="Best trial per family: per-epoch metrics from MLflow")
        blocks += [("h3", "Training curves (report)"),
                   ("img", "figures/training_curves.png",
                    "Best trial per family, x = epoch. test_* on the test split; g/d losses and d_real/d_fake are "
                    "epoch means over train-subset batches; sample_fd as in the seed table; probe_acc only on "
                    "probe epochs.")]
    if len(blocks) == 1:
        blocks.append(("p", "No best trial in any family, so there are no figures."))
    return blocks


@contextmanager
def _no_progress_bar():
    """MLflow draws a tqdm bar per downloaded file; hide it while we fetch, then restore the setting."""
    key, old = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ[key] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _top_trials(client: MlflowClient, families: dict[str, Family]) -> list[tuple]:
    blocks: list[tuple] = [("h2", "Top trials")]
    for name, fam in families.items():
        top = fam.ranked[:TOP_K]
        blocks.append(("h3", f"{FAMILY_LABEL[name]}: top {len(top)} of {len(fam.trials)} trials "
                             f"by final {fam.metric} ({fam.mode})"))
        if fam.best is not None:
            blocks.append(("p", f"{fam.metric} measured on: {_measured_on(client, fam.metric, fam.best)}. "
                                f"Varying params: {', '.join(fam.varying) or 'none'}."))
        rows = [[str(i), t.trial_id, t.tags.get("trial_status", "?"), *[t.params.get(k, "—") for k in fam.varying],
                 _fmt(fam.metric, t.objective), str(_epochs(client, t) or "—")] for i, t in enumerate(top, 1)]
        if rows:
            blocks.append(("table", ["rank", "trial_id", "trial_status", *fam.varying,
                                     f"final {fam.metric}", "epochs"], rows))
        missing = [t for t in fam.trials if t.objective is None]
        if missing:
            desc = ", ".join(f"{t.trial_id} ({t.tags.get('trial_status', '?')})" for t in missing[:TOP_K])
            blocks.append(("p", f"{len(missing)} trial(s) logged no {fam.metric}: {desc}"
                                + (" ..." if len(missing) > TOP_K else "")))
    if not families:
        blocks.append(("p", "No trials."))
    return blocks


def _importances(families: dict[str, Family]) -> list[tuple]:
    blocks: list[tuple] = [("h2", "Parameter importances")]
    for name, fam in families.items():
        done = [t for t in fam.ranked if t.tags.get("trial_status") == "completed"]
        label = FAMILY_LABEL[name]
        if len(done) < MIN_IMPORTANCE_TRIALS:
            blocks.append(("p", f"{label}: only {len(done)} completed trial(s) with {fam.metric}; "
                                f"importances need at least {MIN_IMPORTANCE_TRIALS}."))
            continue
        table, note = _param_importances(done, fam.mode)
        blocks.append(("p", f"{label}: {note} Objective: final {fam.metric} ({fam.mode}) over {len(done)} "
                            f"completed trials; with this few trials importances are noisy, read them as a hint."))
        if table:
            blocks.append(("table", ["param", "importance", "observed values"], table))
    if len(blocks) == 1:
        blocks.append(("p", "No trials."))
    return blocks


def _parse(value: str) -> int | float | str:
    for typ in (int, float):
        try:
            return typ(value)
        except ValueError:
            pass
    return value


def _param_importances(trials: list[Trial], mode: str) -> tuple[list[list[str]], str]:
    """Optuna importances of the params that vary across ``trials`` (rows, one-line note)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    keys = _varying_params(trials)
    keys = [k for k in keys if all(k in t.params for t in trials)]
    if not keys:
        return [], "no parameter varies across these trials, so there is nothing to rank."
    values = {k: [_parse(t.params[k]) for t in trials] for k in keys}
    dists = {}
    for k, vs in values.items():
        if all(isinstance(v, int) for v in vs):
            dists[k] = IntDistribution(min(vs), max(vs))
        elif all(isinstance(v, (int, float)) for v in vs):
            values[k] = vs = [float(v) for v in vs]
            dists[k] = FloatDistribution(min(vs), max(vs))
        else:
            values[k] = vs = [str(v) for v in vs]
            dists[k] = CategoricalDistribution(sorted(set(vs)))
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # silence "study created" chatter
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
            for i, t in enumerate(trials):
                study.add_trial(optuna.trial.create_trial(
                    params={k: values[k][i] for k in keys}, distributions=dists, value=t.objective))
            errors = []
            for label, evaluator in (("fANOVA", None),
                                     ("mean decrease impurity", optuna.importance.MeanDecreaseImpurityImportanceEvaluator())):
                try:
                    imp = optuna.importance.get_param_importances(study, evaluator=evaluator)
                    break
                except Exception as e:  # fANOVA needs sklearn; fall back rather than lose the section
                    errors.append(f"{label}: {e}")
            else:
                return [], f"no importance evaluator worked ({'; '.join(errors)})."
    finally:
        optuna.logging.set_verbosity(verbosity)
    rows = []
    for k, v in imp.items():
        d = dists[k]
        seen = (", ".join(d.choices) if isinstance(d, CategoricalDistribution) else f"{d.low:g} .. {d.high:g}")
        rows.append([k, f"{v:.3f}", seen])
    return rows, f"{label} importances (optuna, normalised to sum 1)."


# ---- rendering ----------------------------------------------------------------------------
def _to_markdown(blocks: list[tuple]) -> str:
    cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    out = []
    for kind, *body in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + body[0])
        elif kind == "p":
            out.append(body[0])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in body[0]))
        elif kind == "table":
            head, rows = body
            lines = ["| " + " | ".join(map(cell, head)) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{Path(body[0]).stem}]({body[0]})\n\n*{body[1]}*")
    return "\n\n".join(out) + "\n"


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}h3{margin-top:1.4em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}
figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}figcaption{font-size:.85em;color:#555}
ul{font-size:.9em;color:#333}
"""


def _to_html(blocks: list[tuple], title: str) -> str:
    e = html.escape
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
           f"<style>{CSS}</style></head><body>"]
    for kind, *body in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{e(body[0])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{e(body[0])}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{e(item)}</li>" for item in body[0]) + "</ul>")
        elif kind == "table":
            head, rows = body
            out.append("<table><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
                       + "</table>")
        elif kind == "img":
            out.append(f"<figure><img src='{e(body[0])}' alt='{e(body[1])}'>"
                       f"<figcaption>{e(body[1])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)
