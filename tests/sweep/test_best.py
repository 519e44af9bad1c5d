"""common/sweep/best.py without a sweep: the best model logged from its trial run at its best
epoch with that step's model metrics (not the node's system/*), the final metrics logged against it, one version per
sweep on a rerun, and ``--sample`` from the registered pt2 program with pickles refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from PIL import Image

from common.base.data import load_dataset
from common.base.device import seed_everything
from common.base.tracking import TrialRun, get_or_create_experiment, prepare_store
from common.sweep.best import log_best_model, registered_name, sample_registered_model
from common.sweep.result import BestTrial
from common.trial.families import FAMILIES, from_checkpoint


@pytest.fixture(params=["vae", "dcgan"])
def trained(request, tmp_path):
    """(uri, the trial run id, its best.pt contents, the parent run id): a finished trial whose
    validation metric was logged for epochs 1..3, best at epoch 2."""
    family = FAMILIES[request.param]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prepare_store(uri)
    client = MlflowClient(uri)
    exp = get_or_create_experiment(client, "exp", str(tmp_path / "artifacts"))
    parent, trial = (client.create_run(exp).info.run_id for _ in range(2))
    metric = family.config.default_metric
    for epoch, value in ((1, 3.0), (2, 1.0), (3, 2.0)):
        client.log_metric(trial, metric, value, step=epoch)
        client.log_metric(trial, "system/cpu_utilization_percentage", 50.0, step=epoch)  # a node's, not a model's
    client.set_terminated(trial, "FINISHED")
    cfg = family.config.from_dict({**family.tiny, "data": "synthetic", "val_size": 64})
    task = family.task(cfg, load_dataset("synthetic"), torch.device("cpu"), seed_everything(0))
    ckpt = {"config": cfg.to_dict(), "epoch": 2, "model": task.export_state()}
    best = BestTrial(trial, metric, 1.0, {})
    return uri, best, ckpt, parent, family.name


def test_the_best_model_is_its_trial_runs_at_the_best_epoch_with_the_metrics_linked(trained):
    import mlflow

    uri, best, ckpt, parent, family = trained
    model_id = log_best_model(uri, parent, family, best, ckpt, "exp")
    TrialRun.attach(uri, best.mlflow_run_id).log_metrics({"fid": 99.0}, step=2, model_id=model_id)
    mlflow.set_tracking_uri(uri)
    model = mlflow.get_logged_model(model_id)
    assert model.source_run_id == best.mlflow_run_id and model.name == f"best_{family}"
    assert {(m.key, m.step, m.value) for m in model.metrics} == {(best.metric, 2, 1.0), ("fid", 2, 99.0)}
    client = MlflowClient(uri)
    outputs = client.get_run(best.mlflow_run_id).outputs.model_outputs
    assert [(o.model_id, o.step) for o in outputs] == [(model_id, 2)]  # the run's output, at its best epoch
    version = client.get_model_version_by_alias(registered_name("exp", family), "best")
    assert version.source == f"models:/{model_id}" and version.tags["model_id"] == model_id
    assert client.get_run(best.mlflow_run_id).info.status == "FINISHED"  # logged to, not reopened
    assert len(client.get_metric_history(best.mlflow_run_id, best.metric)) == 3  # the link copies nothing
    # a rerun (--resume) logs and registers nothing new
    assert log_best_model(uri, parent, family, best, ckpt, "exp") == model_id
    assert len(client.search_model_versions(f"name = '{registered_name('exp', family)}'")) == 1
    exp = client.get_run(parent).info.experiment_id
    assert len(mlflow.search_logged_models(experiment_ids=[exp], output_format="list")) == 1


def test_sample_draws_from_the_registered_program_as_the_checkpoint_samples(trained, tmp_path, monkeypatch):
    import os

    import mlflow.pytorch

    uri, best, ckpt, parent, family = trained
    log_best_model(uri, parent, family, best, ckpt, "exp")
    loads, load = [], mlflow.pytorch.load_model

    def recording(uri, *a, **k):  # MLflow loads a pt2 archive pickle-free only with this switch off
        loads.append((uri, os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")))
        return load(uri, *a, **k)

    monkeypatch.setattr(mlflow.pytorch, "load_model", recording)
    out = sample_registered_model(f"models:/{registered_name('exp', family)}@best", 4, tmp_path / "s.png", uri, seed=3)
    assert loads == [(f"models:/{registered_name('exp', family)}@best", "false")]
    sampler = from_checkpoint(ckpt["config"], ckpt["model"]).eval()  # its init draws from the RNG: before the seed
    torch.manual_seed(3)
    with torch.no_grad():
        expected = sampler.sample(4, torch.device("cpu"))
    from common.base.figures import save_image_grid

    ref = save_image_grid(expected, tmp_path / "ref.png", nrow=2)
    got, want = (np.asarray(Image.open(p), dtype=int) for p in (out, ref))
    assert got.shape == want.shape and np.abs(got - want).max() <= 1  # 8-bit rounding of float noise at most


def test_a_program_whose_batch_was_fixed_at_the_examples_still_draws_any_number():
    from common.sweep.best import EXAMPLE_BATCH, _in_example_batches

    def fixed(z):  # what torch.export makes of a forward that reads len(z): the example's batch only
        assert z.shape[0] == EXAMPLE_BATCH
        return z * 2

    z = torch.arange(10.0).view(5, 2)
    assert torch.equal(_in_example_batches(fixed, z), z * 2)
