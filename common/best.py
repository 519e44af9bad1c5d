"""The end of a sweep: each family's best checkpoint becomes a registered MLflow model
(alias ``best``) and gets the full evaluation protocol (Inception FID & co.), logged to the
trial run that produced it. Everything here is idempotent, so ``--resume`` can rerun it."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from common.loop import load_checkpoint
from common.tracking import TrialRun


def best_checkpoint(uri: str, run_id: str) -> dict:
    """The best.pt a trial logged to MLflow (config, epoch, model weights)."""
    import mlflow.artifacts

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="checkpoints/best.pt", tracking_uri=uri)
    return load_checkpoint(path)


def registered_name(experiment: str, family: str) -> str:
    """The model-registry name of an experiment's best ``family`` model, e.g. vae_vs_dcgan-dcgan."""
    return f"{experiment}-{family}"


def log_best_model(uri: str, parent_run_id: str, family: str, best: dict, ckpt: dict, experiment: str) -> None:
    """Log the sweep's best model of ``family`` on the parent run (mlflow.pytorch.log_model),
    register it as a new version of ``registered_name(experiment, family)`` and point that
    model's alias ``best`` at it, so ``models:/<name>@best`` is the latest sweep's best."""
    import mlflow
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.tracking import MlflowClient
    from mlflow.types import Schema, TensorSpec

    from common.models import from_checkpoint

    client = MlflowClient(uri)
    if client.get_run(parent_run_id).data.tags.get(f"best_{family}_run_id") == best["mlflow_run_id"]:
        return  # already logged (a --resume of a finished sweep): no duplicate model
    model = from_checkpoint(ckpt["config"], ckpt["model"])
    # The decoder side is the generative model: a VAE takes images, a generator z (B, latent).
    shape = (-1, 3, 32, 32) if family in ("vae", "vaegan") else (-1, ckpt["config"]["latent_dim"])
    name = registered_name(experiment, family)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=parent_run_id):
        # pickle + the `common` package as code: loads anywhere without this checkout.
        info = mlflow.pytorch.log_model(
            model, name=f"best_{family}", signature=ModelSignature(Schema([TensorSpec(np.dtype("float32"), shape)])),
            serialization_format="pickle", code_paths=[str(Path(__file__).parent)], registered_model_name=name)
        mlflow.set_tags({f"best_{family}_run_id": best["mlflow_run_id"], f"best_{family}_epoch": ckpt["epoch"]})
    version = str(info.registered_model_version)
    client.set_registered_model_alias(name, "best", version)
    for key, value in {"metric": best["metric"], "value": best["value"], "trial_run_id": best["mlflow_run_id"],
                       "sweep_run_id": parent_run_id, "epoch": ckpt["epoch"]}.items():
        client.set_model_version_tag(name, version, key, str(value))


def eval_samples_default(eval_n: int | None, smoke_test: bool) -> int:
    """--eval-n: None = 10,000 (the full protocol) with a GPU, 2,000 on CPU (Inception costs
    ~0.08 s per image there: bench/fid.py), 64 for --smoke-test."""
    if eval_n is not None:
        return eval_n
    if smoke_test:
        return 64
    return 10_000 if torch.cuda.is_available() else 2_000


def final_evaluation(uri: str, run_id: str, ckpt: dict, data, n: int, weights: str | None) -> dict[str, float]:
    """Inception metrics of the best checkpoint (common.evaluation.evaluate_checkpoint), logged
    to the trial's own run at the checkpoint's epoch, with tags saying how they were made."""
    from mlflow.tracking import MlflowClient

    from common.device import pick_device
    from common.evaluation import FINAL_METRICS, Evaluator, evaluate_checkpoint

    client = MlflowClient(uri)
    run = client.get_run(run_id)
    if run.data.tags.get("eval.n") == str(min(n, len(data.test_x))) and "fid" in run.data.metrics:
        return {k: v for k, v in run.data.metrics.items() if k in FINAL_METRICS}  # --resume: done already
    t0 = time.perf_counter()
    ev = Evaluator(data, reference="test", n=n, weights=weights, device=pick_device("auto"))
    metrics = evaluate_checkpoint(ckpt, data, n=n, evaluator=ev)
    tags = {"eval.n": str(ev.n), "eval.reference": "test", "eval.extractor": ev.extractor.name,
            "eval.epoch": str(ckpt["epoch"]), "eval.seconds": f"{time.perf_counter() - t0:.1f}"}
    TrialRun.attach(uri, run_id).log_metrics(metrics, step=ckpt["epoch"])
    for k, v in tags.items():
        client.set_tag(run_id, k, v)
    return metrics
