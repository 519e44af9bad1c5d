"""The trial loop without Ray: reproducibility, checkpoint restore, MLflow contents."""

from __future__ import annotations

import dataclasses
import json
import math
import threading

import pytest
from mlflow.tracking import MlflowClient

from common.base.tracking import get_or_create_experiment, prepare_store
from common.trial.config import DCGANConfig, VAEConfig
from common.trial.contract import LocalSession, SweepContext
from common.trial.loop import DIVERGED_PENALTY, run_trial

TIMING = {"epoch_time_s", "train_time_s", "peak_rss_mb", "mlflow_run_id"}  # measured, not computed


def _ctx(uri: str, metric: str) -> SweepContext:
    prepare_store(uri)
    exp = get_or_create_experiment(MlflowClient(uri), "loop-tests", None)
    return SweepContext(tracking_uri=uri, experiment_id=exp, parent_run_id=None, metric=metric, mode="min")


def _deterministic(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMING}


@pytest.mark.parametrize(
    "cfg,metric",
    [
        (
            VAEConfig(data="synthetic", val_size=128, max_epochs=2, batch_size=64, eval_samples=64, probe_every=1),
            "val_mse_kl",
        ),
        (
            DCGANConfig(
                data="synthetic",
                val_size=128,
                max_epochs=2,
                batch_size=64,
                eval_samples=64,
                g_channels=32,
                d_channels=16,
                g_hidden=0,
                d_hidden=0,
            ),
            "val_classifier_fd",
        ),
    ],
    ids=["vae", "dcgan"],
)
def test_same_config_and_seed_give_identical_metrics(cfg, metric, tracking_uri, workdir):
    ctx = _ctx(tracking_uri, metric)
    a = LocalSession(workdir / "a")
    b = LocalSession(workdir / "b")
    run_trial(cfg, ctx, a)
    run_trial(cfg, ctx, b)
    assert [_deterministic(r) for r in a.results] == [_deterministic(r) for r in b.results]
    if cfg.family == "dcgan":  # windowed D/G ratio = mean of the epochs so far (window 5)
        ratios = [r["loss_ratio"] for r in a.results]
        assert math.isclose(a.results[1]["loss_ratio_window"], sum(ratios) / 2)
    other = LocalSession(workdir / "c")
    run_trial(
        VAEConfig.from_dict({**cfg.to_dict(), "seed": 7})
        if cfg.family == "vae"
        else DCGANConfig.from_dict({**cfg.to_dict(), "seed": 7}),
        ctx,
        other,
    )
    assert other.results[-1][metric] != a.results[-1][metric]


def test_restore_continues_the_same_run_and_matches_an_uninterrupted_trial(tracking_uri, workdir, monkeypatch):
    cfg = VAEConfig(data="synthetic", val_size=128, max_epochs=3, batch_size=64, eval_samples=64, probe_every=0)
    ctx = _ctx(tracking_uri, "val_mse_kl")
    full = LocalSession(workdir / "full")
    run_trial(cfg, ctx, full)

    monkeypatch.setattr("common.trial.records.describe_machine", lambda: "box A")
    first = LocalSession(workdir / "first")
    run_trial(VAEConfig.from_dict({**cfg.to_dict(), "max_epochs": 2}), ctx, first)
    # Continue the 2-epoch checkpoint to epoch 3 with the original config, on another machine.
    monkeypatch.setattr("common.trial.records.describe_machine", lambda: "box B")
    resumed = LocalSession(workdir / "resumed", resume_from=first.latest_checkpoint)
    run_trial(cfg, ctx, resumed)

    assert [r["epoch"] for r in resumed.results] == [3]
    assert _deterministic(resumed.results[-1]) == _deterministic(full.results[-1])
    run_id = first.results[0]["mlflow_run_id"]
    assert resumed.results[-1]["mlflow_run_id"] == run_id
    steps = [m.step for m in MlflowClient(tracking_uri).get_metric_history(run_id, "val_mse_kl")]
    assert steps == [1, 2, 3]  # no duplicate or missing epochs
    assert MlflowClient(tracking_uri).get_run(run_id).data.tags["machine"] == "box A; then box B"


class _Backend:
    """MLflow going away and coming back, under the trial's tolerant TrialRun."""

    def __init__(self, monkeypatch):
        from common.base.tracking import TrialRun

        self.down, send = False, TrialRun._send
        monkeypatch.setattr(TrialRun, "RECHECK_S", 0.0)  # retry the backend at every write

        def flaky(run, record):
            if self.down:
                raise ConnectionError("backend down")
            return send(run, record)

        monkeypatch.setattr(TrialRun, "_send", flaky)


class _Dying(LocalSession):
    """Dies (an OSError, as when the disk fills) in ``die_at``'s report; ``backend`` follows
    ``down_after``: epoch -> whether MLflow is down once that epoch has reported."""

    def __init__(self, out_dir, backend, die_at, down_after):
        super().__init__(out_dir)
        self.backend, self.die_at, self.down_after = backend, die_at, down_after

    def report(self, metrics, checkpoint_dir):
        if metrics["epoch"] == self.die_at:
            raise OSError(28, "No space left on device")
        super().report(metrics, checkpoint_dir)
        self.backend.down = self.down_after.get(metrics["epoch"], self.backend.down)


def _steps(uri: str, run_id: str) -> list[int]:
    return sorted(m.step for m in MlflowClient(uri).get_metric_history(run_id, "val_mse_kl"))


def test_an_attempt_that_died_with_writes_undelivered_is_redone_once_and_its_unlogged_file_superseded(
    tracking_uri, workdir, monkeypatch
):
    cfg = VAEConfig(data="synthetic", val_size=128, max_epochs=3, batch_size=64, eval_samples=64, probe_every=0)
    ctx, backend = _ctx(tracking_uri, "val_mse_kl"), _Backend(monkeypatch)
    first = _Dying(workdir / "t", backend, die_at=2, down_after={1: True})  # epoch 2 never reaches MLflow
    with pytest.raises(OSError):
        run_trial(cfg, ctx, first)
    kept = workdir / "t" / "mlflow_unlogged.jsonl"
    assert {json.loads(line)["step"] for line in kept.read_text().splitlines() if '"metrics"' in line} == {2}

    backend.down = False  # the same trial folder, restored from epoch 1's checkpoint, as Tune does
    run_trial(cfg, ctx, LocalSession(workdir / "t", resume_from=first.latest_checkpoint))
    assert not kept.exists() and (workdir / "t" / "mlflow_unlogged.superseded.jsonl").is_file()
    assert _steps(tracking_uri, first.results[0]["mlflow_run_id"]) == [1, 2, 3]


def test_a_checkpoints_pending_writes_that_arrived_later_are_not_sent_again(tracking_uri, workdir, monkeypatch):
    import warnings

    cfg = VAEConfig(data="synthetic", val_size=128, max_epochs=3, batch_size=64, eval_samples=64, probe_every=0)
    ctx, backend = _ctx(tracking_uri, "val_mse_kl"), _Backend(monkeypatch)
    backend.down = True  # epoch 1's writes wait in its checkpoint; epoch 2's first write delivers them
    first = _Dying(workdir / "t", backend, die_at=3, down_after={1: False})
    with pytest.raises(OSError):
        run_trial(cfg, ctx, first)
    run_id = first.results[0]["mlflow_run_id"]
    assert _steps(tracking_uri, run_id) == [1, 2, 3]  # epoch 3 logged, then the attempt died in its report
    # Restored from epoch 1's checkpoint (the later one lost): its pending epoch 1 is in MLflow already.
    epoch1 = sorted((workdir / "t").glob("checkpoint_*"))[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_trial(cfg, ctx, LocalSession(workdir / "t", resume_from=epoch1))
    assert _steps(tracking_uri, run_id) == [1, 2, 3]
    assert not [w for w in caught if "MLflow artifact failed" in str(w.message)]  # its uploaded figures: not re-sent


def test_an_attempt_that_died_between_the_last_epochs_metrics_and_its_test_scores_logs_them_on_replay(
    tracking_uri, workdir, monkeypatch
):
    import common.trial.loop

    cfg = VAEConfig(data="synthetic", val_size=128, max_epochs=2, batch_size=64, eval_samples=64, probe_every=0)
    ctx, log_test = _ctx(tracking_uri, "val_mse_kl"), common.trial.loop.log_test

    def killed(*args):  # as a SIGKILL would: epoch 2's metrics are in MLflow, its test scores not
        raise OSError("killed")

    monkeypatch.setattr(common.trial.loop, "log_test", killed)
    first = LocalSession(workdir / "t")
    with pytest.raises(OSError):
        run_trial(cfg, ctx, first)
    run_id = first.results[0]["mlflow_run_id"]
    assert _steps(tracking_uri, run_id) == [1, 2]

    monkeypatch.setattr(common.trial.loop, "log_test", log_test)  # Tune restores epoch 1's checkpoint
    run_trial(cfg, ctx, LocalSession(workdir / "t", resume_from=first.latest_checkpoint))
    client = MlflowClient(tracking_uri)
    run, history = client.get_run(run_id), client.get_metric_history(run_id, "val_mse_kl")
    best_epoch = min(history, key=lambda m: m.value).step  # the epoch whose weights best.pt holds
    assert "test_mse_kl" in run.data.metrics and run.data.tags["test.epoch"] == str(best_epoch)
    assert _steps(tracking_uri, run_id) == [1, 2]


def test_trial_logs_params_metrics_figures_and_best_checkpoint(tracking_uri, workdir):
    cfg = VAEConfig(data="synthetic", val_size=128, max_epochs=2, batch_size=64, eval_samples=64, probe_every=2)
    session = LocalSession(workdir / "t")
    run_trial(cfg, _ctx(tracking_uri, "val_mse_kl"), session)
    client = MlflowClient(tracking_uri)
    run = client.get_run(session.results[0]["mlflow_run_id"])
    assert run.data.params["latent_dim"] == "64" and run.data.params["family"] == "vae"
    assert run.data.tags["device"] == "cpu" and run.data.tags["trial_status"] == "completed"
    # the validation images are held out of the (whole) synthetic train split
    assert (
        run.data.metrics["n_train_images"],
        run.data.metrics["n_val_images"],
        run.data.metrics["n_test_images"],
    ) == (384, 128, 256)
    for name in ("val_mse_kl", "val_recon", "val_kl", "val_active_units", "val_classifier_fd", "beta", "peak_rss_mb"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [1, 2]
    assert 100 < run.data.metrics["peak_rss_mb"] < 64_000  # MiB of this process, torch included
    assert math.isclose(
        run.data.metrics["val_mse_kl"], run.data.metrics["val_recon"] + run.data.metrics["val_kl"], rel_tol=1e-6
    )
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_probe_acc")] == [2]
    figures = {f.path for f in client.list_artifacts(run.info.run_id, "figures")}
    assert figures == {f"figures/{n}.png" for n in ("reconstructions", "interpolations", "samples", "curves")}
    assert [f.path for f in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/best.pt"]
    # The test split is scored once, on the best epoch's weights, after training; Tune never sees it.
    best_epoch = min(session.results, key=lambda r: r["val_mse_kl"])["epoch"]
    assert run.data.tags["test.epoch"] == str(best_epoch)
    for name in ("test_mse_kl", "test_bpd", "test_kl", "test_probe_acc", "test_classifier_fd"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [best_epoch]
    assert not any(k.startswith("test_") for r in session.results for k in r)
    # The three splits as MLflow dataset inputs (the runs table's Dataset column), the validation
    # rows' digest differing from the train rows'.
    inputs = {
        i.dataset.name: (i.dataset.digest, {t.key: t.value for t in i.tags}["mlflow.data.context"])
        for i in run.inputs.dataset_inputs
    }
    assert {n: c for n, (_, c) in inputs.items()} == {
        "synthetic:train": "training",
        "synthetic:val": "validation",
        "synthetic:test": "test",
    }
    assert len({d for d, _ in inputs.values()}) == 3


def test_a_trial_run_records_system_metrics_while_it_trains(tracking_uri, workdir, monkeypatch):
    import common.base.run_context

    monkeypatch.setattr(common.base.run_context, "SYSTEM_METRICS_S", 0.5)
    session = LocalSession(workdir / "sys")
    run_trial(
        VAEConfig(data="synthetic", val_size=128, max_epochs=3, batch_size=64, eval_samples=64, probe_every=0),
        _ctx(tracking_uri, "val_mse_kl"),
        session,
    )
    run = MlflowClient(tracking_uri).get_run(session.results[-1]["mlflow_run_id"])
    system = {k for k in run.data.metrics if k.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system, system
    assert run.data.tags["system_metrics.scope"].startswith("node-wide")


def test_a_trial_shorter_than_the_sampling_interval_still_has_system_metrics(tracking_uri, workdir, monkeypatch):
    import common.base.run_context

    monkeypatch.setattr(common.base.run_context, "SYSTEM_METRICS_S", 3600.0)  # no sample falls within the trial
    session = LocalSession(workdir / "short")
    cfg = VAEConfig(data="synthetic", val_size=128, max_epochs=1, batch_size=64, eval_samples=64, probe_every=0)
    # In a thread of its own, as in a fresh Ray worker: psutil's CPU share is per calling thread, 0.0
    # on a thread's first call, so the last sample must not be that thread's first.
    trial = threading.Thread(target=run_trial, args=(cfg, _ctx(tracking_uri, "val_mse_kl"), session))
    trial.start()
    trial.join()
    client = MlflowClient(tracking_uri)
    history = client.get_metric_history(session.results[-1]["mlflow_run_id"], "system/cpu_utilization_percentage")
    assert len(history) == 1 and history[0].value > 0  # taken as the run ended: the trial's CPU share


def test_curves_are_drawn_once_when_the_trial_ends_and_samples_when_it_improves(tracking_uri, workdir):
    client = MlflowClient(tracking_uri)

    class Watching(LocalSession):  # the run's figures as each epoch reports
        seen: list[set[str]] = []

        def report(self, metrics, checkpoint_dir):
            super().report(metrics, checkpoint_dir)
            self.seen.append({f.path for f in client.list_artifacts(metrics["mlflow_run_id"], "figures")})

    session = Watching(workdir / "w")
    run_trial(
        VAEConfig(data="synthetic", val_size=128, max_epochs=2, batch_size=64, eval_samples=64, probe_every=0),
        _ctx(tracking_uri, "val_mse_kl"),
        session,
    )
    samples = {f"figures/{n}.png" for n in ("reconstructions", "interpolations", "samples")}
    assert session.seen == [samples, samples | {"figures/curves.png"}]
    # every epoch's figures are images at their step: the UI's slider (each figure the task drew)
    run_id = session.results[-1]["mlflow_run_id"]
    images = [f.path.split("/")[-1].split("+") for f in client.list_artifacts(run_id, "images")]
    logged = sorted((name[0], int(name[2])) for name in images if name[-1].endswith(".png"))
    assert logged == [(n, e) for n in ("interpolations", "reconstructions", "samples") for e in (1, 2)]


@pytest.mark.parametrize(
    "max_epochs,logged",
    [(3, [1, 2, 3]), (50, list(range(1, 51))), (120, [*range(3, 121, 3)]), (101, [*range(3, 100, 3), 101])],
)
def test_images_are_logged_at_most_50_epochs_a_run_and_at_the_last(max_epochs, logged):
    from common.trial.records import image_epoch

    got = [e + 1 for e in range(max_epochs) if image_epoch(e, max_epochs)]
    assert got == logged and len(got) <= 51


def test_a_huge_learning_rate_stops_the_trial_as_diverged(tracking_uri, workdir):
    session = LocalSession(workdir / "nan")
    final = run_trial(
        VAEConfig(data="synthetic", val_size=128, max_epochs=3, batch_size=64, lr=1e3, eval_samples=64),
        _ctx(tracking_uri, "val_mse_kl"),
        session,
    )
    assert final["diverged"] == 1.0
    last = session.results[-1]
    assert last["diverged"] == 1 and last["val_mse_kl"] == DIVERGED_PENALTY  # the searcher sees a finite, bad value
    run = MlflowClient(tracking_uri).get_run(last["mlflow_run_id"])
    assert run.data.tags["trial_status"] == "diverged"
    assert run.data.tags["diverged_epoch"] == str(last["epoch"]) and "blown up" in run.data.tags["diverged_reason"]
    assert run.data.metrics.get("val_mse_kl", 0.0) != DIVERGED_PENALTY  # MLflow never gets the penalty


def test_collapse_patience_prunes_a_collapsed_trial(tracking_uri, workdir, monkeypatch):
    from common.trial.tasks.vae import VAETask

    real = VAETask.evaluate
    monkeypatch.setattr(
        VAETask,
        "evaluate",
        lambda self, split="val", probe=False: {**real(self, split, probe), "posterior_collapse": 1.0},
    )
    session = LocalSession(workdir / "collapse")
    cfg = VAEConfig(
        data="synthetic", val_size=128, max_epochs=5, batch_size=64, eval_samples=64, probe_every=0, collapse_patience=2
    )
    run_trial(cfg, _ctx(tracking_uri, "val_mse_kl"), session)
    assert [r["epoch"] for r in session.results] == [1, 2]  # stopped after 2 flagged epochs, not 5
    tags = MlflowClient(tracking_uri).get_run(session.results[-1]["mlflow_run_id"]).data.tags
    assert tags["trial_status"] == "collapsed" and tags["collapsed_epoch"] == "2"
    assert "posterior_collapse" in tags["collapsed_reason"]
    assert tags["detector.posterior_collapse"] == "epoch 1"  # raised as a tag when it first fires


@pytest.mark.parametrize("donor_epochs,own_epochs", [(3, 1), (1, 3)], ids=["donor-ahead", "donor-behind"])
def test_a_pbt_clone_keeps_one_point_per_epoch_whether_its_donor_is_ahead_or_behind(
    tracking_uri, workdir, donor_epochs, own_epochs
):
    # Trial B's run holds own_epochs; it clones trial A's checkpoint at donor_epochs and trains to 4.
    cfg = VAEConfig(data="synthetic", val_size=128, max_epochs=4, batch_size=64, eval_samples=64, probe_every=0)
    ctx = _ctx(tracking_uri, "val_mse_kl")
    client = MlflowClient(tracking_uri)
    ctx = dataclasses.replace(ctx, parent_run_id=client.create_run(ctx.experiment_id).info.run_id)
    donor = LocalSession(workdir / "a", trial_id="A")
    run_trial(VAEConfig.from_dict({**cfg.to_dict(), "max_epochs": donor_epochs}), ctx, donor)
    own = LocalSession(workdir / "b", trial_id="B")
    run_trial(VAEConfig.from_dict({**cfg.to_dict(), "max_epochs": own_epochs, "seed": 7}), ctx, own)
    b_run = own.results[0]["mlflow_run_id"]
    for attempt in ("clone", "clone-replayed"):  # Tune restarts a clone in a fresh folder; a resume replays it
        run_trial(cfg, ctx, LocalSession(workdir / attempt, trial_id="B", resume_from=donor.latest_checkpoint))
        history = client.get_metric_history(b_run, "val_mse_kl")
        assert sorted(m.step for m in history) == [1, 2, 3, 4], attempt  # no gap, no epoch twice
    tags = client.get_run(b_run).data.tags
    assert tags["pbt.clones"] == "1" and tags["pbt.clone.1"].startswith(f"from trial A at epoch {donor_epochs};")
    a_points = {m.step: m.value for m in client.get_metric_history(donor.results[0]["mlflow_run_id"], "val_mse_kl")}
    b_points = {m.step: m.value for m in history}
    if donor_epochs > own_epochs:  # epochs 2-3 are the donor's points, and the run says so
        assert tags["pbt.clone.1.copied"] == "epochs 2-3 are trial A's points"
        assert [b_points[e] for e in (2, 3)] == [a_points[e] for e in (2, 3)]
    else:  # epochs 2-3 keep B's own line; the clone's starts at 4
        assert tags["pbt.clone.1.logged_from"] == "epoch 4 (epochs 2-3 keep the earlier line)"
        assert [b_points[e] for e in (2, 3)] == [r["val_mse_kl"] for r in own.results[1:]]


def test_a_trial_run_is_named_by_its_family_id_and_first_searched_params():
    from common.trial.records import run_label

    assert run_label({"lr": 0.000653219, "batch_size": 32, "beta1": 0.9}) == "lr=0.000653 batch_size=32"
    assert run_label({}) == ""
