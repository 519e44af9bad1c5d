"""What a trial writes to its MLflow run besides the epoch's metrics: the run itself (opened, or
continued after a restart), PBT lineage, figures, training curves and the best epoch's test metrics.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from common.base.device import cpu_flags, describe_machine, is_deterministic, no_tf32
from common.base.figures import save_curves
from common.base.names import CPU_FLAGS, MACHINE_TAG, SNAPSHOT, SWEEP_ROLE, TEST_WEIGHTS_TAG, TRIAL_STATUS
from common.base.run_context import dataset_inputs
from common.base.tracking import TrialRun
from common.trial.contract import Session, SweepContext

RUN_ID_FILE = "mlflow_run_id"  # in the trial folder: a trial restarted before its first checkpoint keeps its run
TEST_EPOCH_TAG = "test.epoch"  # the epoch whose weights the test_* metrics score; set after them


def tag_lineage(run: TrialRun, donor: str, epoch: int, cfg, held: int, history: dict) -> None:
    """PBT lineage on the trial's run: ``pbt.clones`` (how many times) and ``pbt.clone.<n>`` =
    'from trial X at epoch E; config now k=v ...' (the params logged at the start are the first
    config only; MLflow params cannot change). ``held``: the last epoch the run already holds.
    - Past E (async PBT clones from a donor behind this trial): those epochs keep the run's earlier
      line, one point per step; ``pbt.clone.<n>.logged_from`` says where the clone's line starts.
    - Before E (the donor is ahead, as after a resumed sweep): the run gets the donor's points for
      epochs held+1..E from ``history`` (metric -> [(epoch, value)], the donor's checkpoint's), so
      the curve has no gap; ``pbt.clone.<n>.copied`` says which epochs are the donor's.
    The same clone restored again (a resumed sweep replaying it) is not tagged or filled twice."""
    n = int(run.tag("pbt.clones") or 0)
    now = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in cfg.to_dict().items() if k in PBT_KEYS
    )
    lineage = f"from trial {donor} at epoch {epoch}; config now {now}"
    if not (n and run.tag(f"pbt.clone.{n}") == lineage):
        tags = {f"pbt.clone.{n + 1}": lineage, "pbt.clones": str(n + 1)}
        if held > epoch:
            tags[f"pbt.clone.{n + 1}.logged_from"] = (
                f"epoch {held + 1} (epochs {epoch + 1}-{held} keep the earlier line)"
            )
        if held < epoch:
            tags[f"pbt.clone.{n + 1}.copied"] = f"epochs {held + 1}-{epoch} are trial {donor}'s points"
        run.set_tags(tags)
    missing: dict[int, dict[str, float]] = {}  # epoch -> the donor's metrics, for held+1..E
    for k, line in history.items():
        for ep, v in line:
            if held < ep <= epoch:
                missing.setdefault(ep, {})[k] = v
    for e in sorted(missing):  # after the tags: a restore that died midway fills the rest
        run.log_metrics(missing[e], step=e)


PBT_KEYS = ("lr", "lr_g", "lr_ratio", "beta1", "beta2", "beta", "batch_size")  # what a clone's tag reports


def still_pending(records: list[dict]) -> list[dict]:
    """The writes a checkpoint says an earlier attempt could not deliver, less the artifacts
    uploaded after it: a kept copy is deleted once uploaded (a later epoch's file of the same
    name replaces it). Metrics sent twice are harmless: MLflow keeps one of identical points."""
    return [r for r in records if r["kind"] != "artifact" or Path(r["path"]).is_file()]


def log_test(task, best_model: dict, run: TrialRun) -> None:
    """The best epoch's weights scored on the test split (``test_*``, step = that epoch): the
    numbers the report shows. Logged to MLflow only; nothing that selects reads them."""
    with no_tf32():
        metrics = task.evaluate_exported(best_model["model"], "test")
    run.log_metrics({k: v for k, v in metrics.items() if k.startswith("test_")}, step=best_model["epoch"])
    # last: it marks the test metrics as logged
    run.set_tags({TEST_WEIGHTS_TAG: SNAPSHOT, TEST_EPOCH_TAG: str(best_model["epoch"])})


def open_run(cfg, ctx: SweepContext, session: Session, task, data, kind: str, run_id: str | None) -> TrialRun:
    where = {
        "device": kind,
        "node": session.node,
        "node_ip": session.node_ip,
        "pid": str(os.getpid()),
        "precision_used": task.precision_used,
        "deterministic_used": "on" if is_deterministic(cfg.deterministic, kind) else "off",
        "threads": str(torch.get_num_threads()),  # the intra-op threads this attempt computes with
    }
    id_file = Path(session.trial_dir) / RUN_ID_FILE
    if not run_id and id_file.is_file():  # restarted before its first checkpoint
        run_id = id_file.read_text().strip()
    if run_id:  # continue the same MLflow run
        run = TrialRun.attach(ctx.tracking_uri, run_id, tolerant=True, reopen=True)
        boxes = {
            MACHINE_TAG: _boxes(run, MACHINE_TAG, describe_machine()),
            CPU_FLAGS: _boxes(run, CPU_FLAGS, cpu_flags()),
        }
        run.set_tags({TRIAL_STATUS: "running", "restored": "true", **where, **boxes})
        return run
    tags = {
        **(ctx.context_tags or {}),
        SWEEP_ROLE: "trial",
        "family": cfg.family,
        "trial_id": session.trial_id,
        "git_commit": ctx.git_commit,
        "data": data.source,
        "data_hash": data.content_hash,
        TRIAL_STATUS: "running",
        **where,
        MACHINE_TAG: describe_machine(),
        CPU_FLAGS: cpu_flags(),
    }
    if ctx.parent_run_id:
        tags["mlflow.parentRunId"] = ctx.parent_run_id
    if ctx.placement:
        tags["placement"] = ctx.placement
    tags.update(task.tags())  # e.g. which perceptual net, and a metric-bias warning
    name = f"{cfg.family}-{session.trial_id}" + (f" {label}" if (label := getattr(session, "label", "")) else "")
    run = TrialRun.create(ctx.tracking_uri, ctx.experiment_id, name, tags, tolerant=True)
    id_file.parent.mkdir(parents=True, exist_ok=True)
    id_file.write_text(run.run_id)
    run.log_params(cfg.to_dict())
    run.log_datasets(dataset_inputs(cfg.data, data.content_hash, {**task.split_indices, "test": None}))
    run.log_metrics(task.static_metrics(), step=0)
    return run


def _boxes(run: TrialRun, tag: str, now: str) -> str:
    """What a restored trial's ``tag`` (``machine``, ``cpu_flags``) says of the boxes it has trained on:
    the run's value, then ``now`` if it differs (a resumed sweep on another machine: each epoch's
    time, and its numerics, are one of theirs)."""
    before = run.tag(tag)
    if not before or now in before.split("; then "):
        return before or now
    return f"{before}; then {now}"


def run_label(searched: dict) -> str:
    """The searcher's first two params for a trial's run name: {"lr": 0.000653, "batch_size": 32}
    -> "lr=0.000653 batch_size=32" (the run name then reads like the trial in the MLflow UI)."""
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)
    return " ".join(f"{k}={fmt(v)}" for k, v in list(searched.items())[:2])


IMAGE_STEPS = 50  # at most this many epochs of images per run: the UI's slider, a bounded store


def image_epoch(epoch: int, max_epochs: int) -> bool:
    """Whether 0-based ``epoch`` logs its sample grids as images: every epoch up to 50 epochs, else
    every ceil(max_epochs / 50)-th, and always the last."""
    stride = -(-max_epochs // IMAGE_STEPS)
    return (epoch + 1) % stride == 0 or epoch + 1 == max_epochs


def log_figures(task, folder: Path, run: TrialRun, keep_dir: str, step: int | None = None) -> list[Path]:
    """The task's figures drawn into ``folder``. ``keep_dir``: logged as the run's ``figures/``
    artifacts (the best epoch's). ``step``: every figure the task drew (any family's: samples,
    reconstructions, interpolations, a plugin's own) also logged as an image at that step, keyed by
    its file name, which the MLflow UI scrubs through with a slider."""
    folder.mkdir(exist_ok=True)
    drawn = task.figures(folder)
    for p in drawn:
        if keep_dir is not None:
            run.log_artifact(p, "figures", keep_dir=keep_dir)
        if step is not None:
            run.log_image(p, key=p.stem, step=step)
    return drawn


def log_curves(task, history: dict, folder: Path, run: TrialRun, keep_dir: str) -> None:
    """Once, when the trial ends: drawing them is most of a trial's per-epoch
    bookkeeping (bench/overhead.py, BENCHMARKS.md), and the MLflow UI plots the same metrics live."""
    folder.mkdir(exist_ok=True)
    skip = ("epoch_time_s", "train_time_s", "peak_rss_mb", "peak_gpu_mem_mb")
    curves = {k: v for k, v in history.items() if k not in skip}
    run.log_artifact(
        save_curves(curves, folder / "curves.png", title=f"{task.cfg.family} training curves"),
        "figures",
        keep_dir=keep_dir,
    )
