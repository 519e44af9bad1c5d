"""What the VAE and DCGAN tasks share: the splits on the device, the sample scores, the probe, state.

Splits (``TrialConfig.split``): the seeded train subset (trained on), the validation images (every
per-epoch metric and so every selection), the test split (only ``evaluate(split="test")``, which
the loop calls on the best checkpoint once training is over; nothing selects on it). Metric names
carry their split: ``val_*`` / ``test_*``.
"""

from __future__ import annotations

import copy
import warnings
from typing import Callable

import numpy as np
import torch
from torch import nn

from common.base.data import Dataset, DeviceData, to_unit_range
from common.metrics.classifier import get_classifier, load_classifier
from common.metrics.maths import (
    RandomConvFeatures,
    class_balance,
    feature_stats,
    frechet_distance,
    inception_score,
    linear_probe,
    nearest_neighbour_distance,
)
from common.trial.config import ConfigError, TrialConfig
from common.trial.diagnostics import mode_collapse_flag
from common.trial.models import count_params

SCORED_SPLITS = ("val", "test")  # what evaluate() scores on
SCORE_BATCH = 500  # images per no-grad forward pass when scoring


def bf16_native(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively: CUDA from Ampere on; a CPU with oneDNN bf16 kernels
    (AVX-512 BF16 / AMX). Elsewhere it is emulated: on an AVX2-only CPU a bf16 VAE epoch measured
    many times slower than fp32 (BENCHMARKS.md), so such trials train in fp32."""
    if device.type == "cuda":  # is_bf16_supported() is also true before Ampere, where bf16 is emulated
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # no such check in this torch: do not guess
            return False
    return False


class Task:
    """Holds the trial's data on its device (moved once) and the metric plumbing.

    Subclasses set ``self.models`` / ``self.optimizers`` (name -> module / optimizer or lr scheduler:
    anything with a checkpointed ``state_dict``) and
    implement ``train_epoch``, ``evaluate``, ``generate``, ``probe_features``, ``figures``,
    ``export_state`` and ``build_sampler``. ``classifier``: the domain classifier's state (``common.metrics.classifier``), as the
    sweep's driver hands it to trials; None = load it from (or train it into) the disk cache.
    """

    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    COLLAPSE_FLAGS: tuple[str, ...] = ("mode_collapse",)  # detector metrics ``evaluate`` sets (1.0 = flagged)

    def __init__(
        self,
        cfg: TrialConfig,
        data: Dataset,
        device: torch.device,
        generator: torch.Generator,
        classifier: dict | None = None,
    ):
        self.cfg, self.device, self.generator = cfg, device, generator
        train_idx, val_idx = cfg.split(len(data.train_x))
        self.split_indices = {"train": train_idx, "val": val_idx}
        self.train = DeviceData(data.train_x[train_idx], data.train_y[train_idx], device)
        self.val = DeviceData(data.train_x[val_idx], data.train_y[val_idx], device)
        self.test = DeviceData(data.test_x, data.test_y, device)
        if len(self.train) < cfg.batch_size:
            raise ConfigError(
                f"batch_size={cfg.batch_size} is larger than the train subset ({len(self.train)} "
                "images); lower --set batch_size or raise --train-subset"
            )
        self.data = data
        self.classifier = load_classifier(classifier or get_classifier(data)[0], device)
        self.randconv = RandomConvFeatures().to(device)
        # The same latent draws every epoch: epoch-to-epoch and trial-to-trial differences in the
        # sample scores then come from the model, not from new noise. A private generator leaves
        # the training RNG stream alone.
        self.fixed_z = torch.randn(cfg.eval_samples, cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed))
        self._reference: dict[str, dict] = {}
        # bf16 autocast where it runs natively (bf16_native); elsewhere (MPS, older GPUs, CPUs
        # without bf16 kernels) fp32 with a warning. The run's tag ``precision_used`` says which.
        self.precision_used = cfg.precision
        if cfg.precision == "bf16" and not bf16_native(device):
            warnings.warn(f"precision=bf16 has no native support on {device}; this trial trains in fp32")
            self.precision_used = "fp32"

    def split(self, name: str) -> DeviceData:
        if name not in SCORED_SPLITS:
            raise ValueError(f"evaluate on 'val' or 'test', got {name!r}")
        return self.val if name == "val" else self.test

    def place(self, module: nn.Module) -> nn.Module:
        """``module`` on the trial's device; channels_last on CPU, where oneDNN's convolutions are
        faster in that layout (bench/throughput.py --variants, BENCHMARKS.md; not measured on GPUs)."""
        if self.device.type == "cpu":
            return module.to(self.device, memory_format=torch.channels_last)
        return module.to(self.device)

    def autocast(self) -> torch.autocast:
        """Forward passes of a training step: bfloat16 matmuls/convs when ``precision_used`` is
        bf16, else a no-op. Losses are computed in fp32 from outputs cast back with ``.float()``."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision_used == "bf16")

    # ---- sample scores (common.metrics.maths over the domain classifier and randconv256) ------------
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, latent_dim) -> images (N,3,32,32) in [-1, 1] (families implement)."""
        raise NotImplementedError

    @torch.no_grad()
    def samples(self) -> torch.Tensor:
        """The fixed-z samples (eval_samples,3,32,32) in [-1, 1], on the device, in eval batches."""
        z = self.fixed_z.to(self.device)
        return torch.cat([self.generate(z[i : i + SCORE_BATCH]) for i in range(0, len(z), SCORE_BATCH)])

    @torch.no_grad()
    def _embed(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N,3,32,32) -> (classifier features, classifier logits, randconv features), float64 CPU."""
        feats, logits = self.classifier.features_and_logits(images, SCORE_BATCH)
        rc = torch.cat(
            [
                self.randconv(to_unit_range(x) if x.dtype == torch.uint8 else x.float()).cpu()
                for x in images.split(SCORE_BATCH)
            ]
        )
        return feats.double().numpy(), logits.double().numpy(), rc.double().numpy()

    def _real(self, split: str) -> dict:
        """Gaussian fits of the split's real images in both feature spaces (computed once)."""
        if split not in self._reference:
            feats, _, rc = self._embed(self.split(split).x)
            self._reference[split] = {
                "classifier": feature_stats(feats),
                "randconv": feature_stats(rc),
                "features": feats,  # for the diversity reference
            }
        return self._reference[split]

    def sample_scores(self, fake: torch.Tensor, split: str = "val") -> dict[str, float]:
        """Scores of ``fake`` (N>=2,3,32,32) in [-1,1] against the split's real images:

        ``<split>_classifier_fd``: Fréchet distance in the domain classifier's features (the
        per-epoch objective; bench/proxy.py ranks it against Inception FID); ``<split>_randconv_fd``:
        the same in the random conv net's features; ``<split>_diversity``: the samples' median
        nearest-neighbour distance over the real images' (the mode-collapse detector's number,
        common.trial.diagnostics); ``<split>_class_coverage`` / ``<split>_class_kl``
        (``common.metrics.maths.class_balance`` of the predicted classes); ``<split>_classifier_is``: an
        Inception Score with the classifier's logits.
        """
        feats, logits, rc = self._embed(fake)
        ref = self._real(split)
        coverage, kl = class_balance(logits.argmax(1), self.classifier.num_classes)
        n = min(len(feats), len(ref["features"]))  # nearest-neighbour distances compare at one n
        return {
            f"{split}_classifier_fd": frechet_distance(*feature_stats(feats), *ref["classifier"]),
            f"{split}_randconv_fd": frechet_distance(*feature_stats(rc), *ref["randconv"]),
            f"{split}_class_coverage": coverage,
            f"{split}_class_kl": kl,
            f"{split}_classifier_is": inception_score(logits, splits=1)[0],
            f"{split}_diversity": nearest_neighbour_distance(feats, n) / nearest_neighbour_distance(ref["features"], n),
        }

    def collapse_flags(self, scores: dict[str, float]) -> dict[str, float]:
        """``mode_collapse`` from the validation samples' diversity (common.trial.diagnostics)."""
        return {"mode_collapse": mode_collapse_flag(scores["val_diversity"])} if "val_diversity" in scores else {}

    def windowed(self, metrics: dict[str, float], history: dict[str, list]) -> dict[str, float]:
        """Metrics over the last few epochs, added to this epoch's ``metrics``; ``history``: metric
        -> [(epoch, value)] of the epochs before. None by default."""
        return {}

    @staticmethod
    def build_sampler(cfg: TrialConfig, models: dict) -> nn.Module:
        """best.pt's ``model`` dict -> the module whose ``sample(n, device)`` gives (n,3,32,32) images."""
        raise NotImplementedError

    # ---- linear probe ---------------------------------------------------------------------------
    def probe_features(self, images: torch.Tensor, net: nn.Module | None = None) -> np.ndarray:
        """uint8 (N,3,32,32) on the device -> (N,F) representation for the probe (families implement);
        ``net``: the module to embed with (default the trial's own)."""
        raise NotImplementedError

    def probe(self, split: str = "val", embed: Callable[[torch.Tensor], np.ndarray] | None = None) -> dict[str, float]:
        """Linear probe (common.metrics.maths.linear_probe): fit on the train subset, C chosen on the
        validation images, -> {"val_probe_acc", "probe_c", "probe_converged"} and, for
        split="test", also "test_probe_acc". ``embed``: uint8 images -> features (default
        ``probe_features``; the baselines pass raw pixels or a randomly initialised net's)."""
        embed = embed or self.probe_features
        tr, va = embed(self.train.x), embed(self.val.x)
        te = embed(self.test.x) if split == "test" else None
        out = linear_probe(
            tr,
            self.train.y.cpu().numpy(),
            va,
            self.val.y.cpu().numpy(),
            te,
            self.test.y.cpu().numpy() if te is not None else None,
            seed=self.cfg.seed,
            device=self.device,
        )
        res = {"val_probe_acc": out["val_acc"], "probe_c": out["C"], "probe_converged": out["converged"]}
        if te is not None:
            res["test_probe_acc"] = out["test_acc"]
        return res

    def real_bn(self, module: nn.Module, forward: Callable[[nn.Module, torch.Tensor], object]) -> nn.Module:
        """A copy of ``module`` whose BatchNorm statistics are those of the real train-subset images.

        A GAN's D updates its running statistics on real and fake batches alike, so its eval mode
        would normalise real images by partly fake statistics; the probe's features must not
        depend on that. ``forward(copy, x)`` runs the part of the model the probe uses.
        """
        net = copy.deepcopy(module)
        norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if norms:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # a cumulative average over every batch below
            net.train()
            with torch.no_grad():
                for i in range(0, len(self.train), SCORE_BATCH):
                    forward(net, to_unit_range(self.train.x[i : i + SCORE_BATCH]))
        return net.eval()

    def tags(self) -> dict[str, str]:
        """Extra MLflow tags for this trial's run (families override)."""
        return {}

    def settled(self, epoch: int) -> bool:
        """Whether the objective after 0-based ``epoch`` is comparable with other trials' (a VAE's
        beta schedule must have reached its final value: ``common.sweep.tuning.ScheduleAwareASHA``)."""
        return True

    # ---- bookkeeping ----------------------------------------------------------------------
    def static_metrics(self) -> dict[str, float]:
        """Logged once at step 0: model sizes and the data sizes every number is measured on."""
        counts = {f"n_params_{k}": float(count_params(m)) for k, m in self.models.items()}
        return {
            "n_params": float(sum(counts.values())),
            **counts,
            "n_train_images": float(len(self.train)),
            "n_val_images": float(len(self.val)),
            "n_test_images": float(len(self.test)),
        }

    def state_dict(self) -> dict:
        return {
            "models": {k: m.state_dict() for k, m in self.models.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
        }

    def load_state_dict(self, state: dict, keep_hyperparams: bool = False) -> None:
        """``keep_hyperparams``: the optimizers keep this config's lr and betas, taking only the
        state's weights and moments (a PBT clone: the donor's training, this trial's mutation)."""
        mine = {
            k: [{h: g[h] for h in ("lr", "betas") if h in g} for g in o.param_groups]
            for k, o in self.optimizers.items()
            if isinstance(o, torch.optim.Optimizer)
        }
        for k, m in self.models.items():
            m.load_state_dict(state["models"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        if keep_hyperparams:
            for k, groups in mine.items():
                for group, own in zip(self.optimizers[k].param_groups, groups):
                    group.update(own)

    def evaluate_exported(self, exported: dict, split: str = "test", probe: bool = True) -> dict[str, float]:
        """``evaluate(split, probe)`` with the weights of ``exported`` (an ``export_state``, as in
        best.pt), then the trial's own weights back: the best epoch scored on the test split."""
        modules = self.exported_modules()
        current = {k: copy.deepcopy(m.state_dict()) for k, m in modules.items()}
        try:
            for k, weights in exported.items():
                modules[k].load_state_dict(weights)
            return self.evaluate(split=split, probe=probe)
        finally:
            for k, weights in current.items():
                modules[k].load_state_dict(weights)

    def exported_modules(self) -> dict[str, nn.Module]:
        """The modules ``export_state`` saves, by its keys (families with a separate sampling copy
        of a net override it)."""
        return self.models
