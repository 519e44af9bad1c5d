"""Real Tune sweeps end to end on the shared in-process local Ray (see conftest.py).

``ray.init(local_mode=True)`` raises in the Ray we use, so these run real sweeps on one small
local Ray (num_cpus=2, no dashboard) with synthetic data and <= 2 epochs, and assert what
lands in MLflow and in the report folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import replace
from pathlib import Path
from unittest import mock

import pytest
from mlflow.tracking import MlflowClient
from real_sweeps import assert_all_runs_final, sweep_options, sweep_runs

import run_sweep
from common.sweep.export import Exporter
from trainables.sweep import run

OVERRIDES = (("eval_samples", "64"), ("batch_size", "64"), ("probe_every", "2"))


@pytest.fixture(scope="module")
def vae_sweep(ray_session, module_workdir):
    """One 2-trial VAE sweep with the final stage at n=16, shared by the tests below (each checks
    one part of what it left); returns (workdir, tracking URI, result, what it printed)."""
    workdir, out = module_workdir, io.StringIO()
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    ended = mock.patch.object(Exporter, "trial", autospec=True, side_effect=Exporter.trial)  # as each trial ends
    with contextlib.redirect_stdout(out), ended as exported:
        result = run(
            sweep_options(
                workdir, uri, "vae_beta.py", num_samples=2, max_epochs=2, eval_n=16, overrides=OVERRIDES,
                export=str(workdir / "results"),
            )
        )  # fmt: skip
    (workdir / "exported_as_trials_ended").write_text(json.dumps([c.args[2] for c in exported.call_args_list]))
    return workdir, uri, result, out.getvalue()


def test_a_sweep_lands_a_parent_and_its_trials_with_metrics_figures_and_checkpoints(vae_sweep):
    workdir, uri, result, printed = vae_sweep
    # gpu="auto" (the space's default) on a machine without GPUs: CPU trials, and it says so.
    chosen = re.search(r"^vae: (\d+ trials? at once, 1 CPU each \(cpu\))$", printed, re.M)
    assert chosen, "the sweep prints what it chose per family"
    client, parents, children = sweep_runs(uri, "vae_beta")
    assert len(parents) == 1 and len(children) == 2 and result.completed and result.families == ["vae"]
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.params["metric"] == "val_bpd"
    # what was searched, on the parent: the space file and its distributions, as Markdown and as a table
    space = {a.path for a in client.list_artifacts(parent.info.run_id, "space")}
    assert space == {"space/vae_beta.py", "space/search_space.md", "space/search_space.json"}
    table = Path(client.download_artifacts(parent.info.run_id, "space/search_space.md", str(workdir)))
    assert "| vae | beta | float in [0.25, 4], log-uniform |" in table.read_text()
    # the trials' samples side by side on the parent: their best epochs, and one panel per epoch (the slider)
    images = [a.path.split("/")[-1].split("+") for a in client.list_artifacts(parent.info.run_id, "images")]
    panels = {(name[0], name[2]) for name in images if name[-1].endswith(".png") and "compressed" not in name[-1]}
    assert ("vae_trials_best", "0") in panels and {("vae_trials", "1"), ("vae_trials", "2")} <= panels
    for child in children:
        assert child.data.tags["placement"] == chosen.group(1)
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["family"] == "vae" and child.data.tags["device"] == "cpu"
        # ASHA (grace 1) may stop a trial after epoch 1: its status says which, from the epochs it ran
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_bpd")]
        assert child.data.tags["trial_status"] == {2: "completed", 1: "stopped"}[len(steps)]
        assert {"git_commit", "data_hash", "trial_id"} <= set(child.data.tags)
        assert child.data.params["data"] == "synthetic" and child.data.params["max_epochs"] == "2"
        assert steps == list(range(1, len(steps) + 1)) and steps
        arts = {a.path for a in client.list_artifacts(child.info.run_id, "figures")}
        figures = {"samples.png", "reconstructions.png", "interpolations.png", "curves.png"}
        assert {f"figures/{f}" for f in figures} <= arts
        assert [a.path for a in client.list_artifacts(child.info.run_id, "checkpoints")] == ["checkpoints/best.pt"]
    best = result.best["vae"]
    values = {
        c.info.run_id: min(m.value for m in client.get_metric_history(c.info.run_id, "val_bpd")) for c in children
    }
    assert best.mlflow_run_id == min(values, key=values.get)  # the lowest validation objective wins
    assert parent.data.tags["best_vae_run_id"] == best.mlflow_run_id


def test_the_final_stage_scores_the_best_checkpoint_on_its_own_run(vae_sweep):
    _, uri, result, _ = vae_sweep
    client, parents, children = sweep_runs(uri, "vae_beta")
    best = result.best["vae"]
    final = client.get_run(best.mlflow_run_id).data
    keys = ("fid", "kid", "precision", "recall", "density", "coverage", "is10", "recon_fid", "recon_coverage")
    assert set(keys) <= set(final.metrics) and set(keys) <= set(best.final)
    assert {k: final.metrics[k] for k in keys} == pytest.approx({k: best.final[k] for k in keys})  # as returned
    assert final.metrics["fid"] > 0  # 16 generated images are not the test set
    assert {
        "eval.n": "16",
        "eval.reference": "test",
        "eval.reference_n": "256",  # every test image
        "eval.extractor": "inception-v3-fid-helper",
    }.items() <= final.tags.items()
    # ... and the probe's baselines beside its test accuracy (same protocol: raw pixels, random init)
    assert {"test_probe_acc", "test_probe_acc_pixels", "test_probe_acc_random_init"} <= set(final.metrics)
    tags = parents[0].data.tags  # the per-epoch scores' classifier, and how good
    assert tags["classifier.name"].startswith("classifier-") and 0.5 < float(tags["classifier.test_acc"]) <= 1.0
    assert all("fid" not in c.data.metrics for c in children if c.info.run_id != best.mlflow_run_id)
    assert_all_runs_final(uri, "vae_beta")  # the end stage wrote to the best run, and closed nothing open


def test_export_leaves_a_file_per_finished_trial_with_the_end_stages_numbers(vae_sweep):
    from common.base.device import describe_machine

    workdir, uri, result, _ = vae_sweep
    _, _, children = sweep_runs(uri, "vae_beta")
    records = [json.loads(p.read_text()) for p in (workdir / "results" / "vae_beta").glob("vae-*.json")]
    assert sorted(r["run_id"] for r in records) == sorted(c.info.run_id for c in children)
    # each was written when Tune ended its trial, not only by the end stage's second pass
    assert sorted(json.loads((workdir / "exported_as_trials_ended").read_text())) == sorted(
        r["run_id"] for r in records
    )
    best = next(r for r in records if r["run_id"] == result.best["vae"].mlflow_run_id)
    assert best["final"]["fid"] == pytest.approx(result.best["vae"].final["fid"]) and best["final"]["eval.n"] == "16"
    assert best["machine"] == describe_machine() and best["status"] == "completed"


def test_a_new_search_warm_started_from_the_exported_files_knows_the_old_trials(vae_sweep):
    """The machine that held the first sweep's Optuna study is gone: a new sweep seeded with the
    run files ``--export`` left starts its study with those trials, then adds its own."""
    import optuna

    workdir, uri, _, _ = vae_sweep
    records = {
        r["run_id"]: r for r in map(json.loads, map(Path.read_text, sorted((workdir / "results").rglob("*.json"))))
    }
    opts = sweep_options(workdir, uri, "vae_beta.py", num_samples=1, max_epochs=2, overrides=OVERRIDES)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert run(replace(opts, experiment="warm", warm_start=str(workdir / "results"), report=False)).completed
    assert f"vae: the searcher starts from {len(records)} finished trial(s) of" in out.getvalue()
    (parent,) = sweep_runs(uri, "warm")[1]
    tags = parent.data.tags
    trials = optuna.load_study(study_name=tags["optuna.study.vae"], storage=tags["optuna.storage"]).trials
    assert len(trials) == len(records) + 1
    # its sampler is not the first sweep's (same seed): that would redraw the first sweep's first config
    assert trials[-1].params not in [t.params for t in trials[:-1]]
    assert "seed=42," not in tags["optuna.sampler.vae"] and tags["optuna.sampler.vae"].startswith("TPESampler(seed=")
    for old, r in zip(trials, records.values()):  # as the first sweep's searcher was told at each trial's end
        curve = {int(e): v for e, v in r["objective"]["per_epoch"].items()}
        assert old.state.name == {"completed": "COMPLETE", "stopped": "PRUNED"}[r["status"]]
        assert old.intermediate_values == curve and old.value == (
            curve[max(curve)] if r["status"] == "completed" else None
        )


def test_the_best_model_is_a_pt2_model_logged_by_its_trial_and_registered(vae_sweep):
    import mlflow
    import torch

    from common.sweep.best import best_checkpoint
    from common.trial.families import from_checkpoint

    _, uri, result, _ = vae_sweep
    best, client = result.best["vae"], MlflowClient(uri)
    mlflow.set_tracking_uri(uri)
    exp_id = client.get_experiment_by_name("vae_beta").experiment_id
    models = mlflow.search_logged_models(experiment_ids=[exp_id], output_format="list")
    assert [(m.name, m.source_run_id) for m in models] == [("best_vae", best.mlflow_run_id)]
    assert {"val_bpd", "fid"} <= {m.key for m in models[0].metrics}  # its best epoch's, and the final stage's
    # as pt2 (torch.export: a graph and weights, no pickled code): z -> the VAE's decoded images
    local = Path(mlflow.artifacts.download_artifacts(models[0].model_uri))
    assert [p.name for p in (local / "data").iterdir()] == ["model.pt2"]
    requirements = (local / "requirements.txt").read_text().split()  # what `mlflow models serve` installs
    assert {r.split("==")[0] for r in requirements} >= {"mlflow", "torch"}
    assert f"torch=={torch.__version__.split('+')[0]}" in requirements
    sampler, ckpt = mlflow.pytorch.load_model(models[0].model_uri), best_checkpoint(uri, best.mlflow_run_id)
    z = torch.randn(3, ckpt["config"]["latent_dim"])
    with torch.no_grad():
        assert torch.allclose(sampler(z), from_checkpoint(ckpt["config"], ckpt["model"]).decode(z), atol=1e-5)
    # registered, with the alias `best`, tagged with what made it best
    version = client.get_model_version_by_alias("vae_beta-vae", "best")
    assert version.tags["trial_run_id"] == best.mlflow_run_id and version.tags["metric"] == "val_bpd"
    assert version.tags["model_id"] == models[0].model_id


def test_sample_draws_a_grid_from_the_registered_model(vae_sweep):
    from PIL import Image

    workdir, uri, _, _ = vae_sweep
    grid = workdir / "grid.png"
    argv = ["--sample", "models:/vae_beta-vae@best", "-n", "16", "--out", str(grid), "--tracking-uri", uri]
    assert run_sweep.main(argv) == 0
    assert Image.open(grid).size == (2 + 4 * 34, 2 + 4 * 34)  # 4x4 grid of 32 px + 2 px padding
    assert_all_runs_final(uri, "vae_beta")


def test_the_report_is_built_from_mlflow_and_a_resume_of_the_finished_sweep_leaves_every_run_final(vae_sweep):
    workdir, uri, result, _ = vae_sweep
    assert result.report == str(workdir / "report" / "index.html")  # the sweep's, then --report's of it
    assert "FID (Inception" in (workdir / "report" / "report.md").read_text()
    assert run_sweep.main(["--report", "vae_beta", "--out", str(workdir / "report2"), "--tracking-uri", uri]) == 0
    assert (workdir / "report2" / "index.html").is_file()
    assert_all_runs_final(uri, "vae_beta")
    client, _, children = sweep_runs(uri, "vae_beta")
    epochs = {c.info.run_id: len(client.get_metric_history(c.info.run_id, "val_bpd")) for c in children}
    # A finished search measured again at another N (a search run with --eval-n 0, then its best at
    # the standard protocol): --resume --eval-n N re-scores the best checkpoint, trains nothing.
    again = run(
        sweep_options(
            workdir, uri, "vae_beta.py", num_samples=2, max_epochs=2, eval_n=24, resume=True, report=False,
            overrides=OVERRIDES,
        )
    )  # fmt: skip
    client, parents, children = sweep_runs(uri, "vae_beta")
    assert again.parent_run_id == parents[0].info.run_id  # the same parent, reopened
    assert {c.info.run_id: len(client.get_metric_history(c.info.run_id, "val_bpd")) for c in children} == epochs
    best = client.get_run(result.best["vae"].mlflow_run_id)
    assert best.data.tags["eval.n"] == "24" and again.best["vae"].final["fid"] == best.data.metrics["fid"]
    assert len(client.get_metric_history(best.info.run_id, "fid")) == 2  # at n=16, then at n=24
    run(
        sweep_options(
            workdir, uri, "vae_beta.py", num_samples=2, max_epochs=2, eval_n=24, resume=True, report=False,
            overrides=OVERRIDES,
        )
    )  # fmt: skip
    assert len(client.get_metric_history(best.info.run_id, "fid")) == 2  # at the same N: done already
    images = [a.path for a in client.list_artifacts(again.parent_run_id, "images") if a.path.endswith(".png")]
    panels = [p for p in images if "compressed" not in p and p.split("/")[-1].startswith("vae_trials_best+")]
    assert len(panels) == 1, panels  # the resumes logged no second panel
    assert_all_runs_final(uri, "vae_beta")


def test_check_passes_on_the_sweep_then_names_a_deleted_checkpoint_and_a_duplicated_epoch(vae_sweep, capsys):
    """Last in this file: it tampers with the shared sweep."""
    from urllib.parse import urlparse

    workdir, uri, _, _ = vae_sweep
    check = ["--check", "vae_beta", "--tracking-uri", uri, "--storage", str(workdir / "ray_results")]
    assert run_sweep.main(check) == 0
    client, _, children = sweep_runs(uri, "vae_beta")
    done = next(c for c in children if c.data.tags["trial_status"] == "completed")
    Path(urlparse(done.info.artifact_uri).path, "checkpoints", "best.pt").unlink()  # a deleted best.pt
    client.log_metric(children[0].info.run_id, "epoch_time_s", 1.0, step=1)  # a duplicated epoch
    capsys.readouterr()
    assert run_sweep.main(check) == 1
    table = capsys.readouterr().out
    assert f"run {done.info.run_id}: no checkpoints/best.pt" in table
    assert f"run {children[0].info.run_id}: epochs [1, 1, 2], not 1..3 once each" in table
