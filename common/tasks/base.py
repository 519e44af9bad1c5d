"""What the VAE and DCGAN tasks share: data on the device, the per-epoch sample scorer, state."""
from __future__ import annotations

import warnings

import torch
from torch import nn

from common.config import ConfigError, TrialConfig
from common.data import Dataset, DeviceData, subset_indices
from common.diagnostics import (DIVERSITY_REF_IMAGES, diversity_ratio, mean_pairwise_distance,
                                mode_collapse_flag, reference_indices)
from common.evaluation import Evaluator
from common.models import count_params


class Task:
    """Holds the trial's data on its device (moved once) and the metric plumbing.

    Subclasses set ``self.models`` / ``self.optimizers`` (name -> module / optimizer) and
    implement ``train_epoch``, ``evaluate``, ``figures`` and ``export_state``.
    """

    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]

    def __init__(self, cfg: TrialConfig, data: Dataset, device: torch.device, generator: torch.Generator):
        self.cfg, self.device, self.generator = cfg, device, generator
        idx = subset_indices(len(data.train_x), cfg.train_subset, cfg.seed)
        self.train = DeviceData(data.train_x[idx], data.train_y[idx], device)
        self.test = DeviceData(data.test_x, data.test_y, device)
        if len(self.train) < cfg.batch_size:
            raise ConfigError(f"batch_size={cfg.batch_size} is larger than the train subset ({len(self.train)} "
                              "images); lower --set batch_size or raise --train-subset")
        self.data = data
        self._evaluator: Evaluator | None = None
        # bf16 autocast where it is supported (CPU, CUDA from Ampere on); elsewhere (MPS, older
        # GPUs) fp32 with a warning. The run's tag ``precision_used`` says which one trained.
        self.precision_used = cfg.precision
        if cfg.precision == "bf16" and not (device.type == "cpu" or (
                device.type == "cuda" and torch.cuda.is_bf16_supported())):
            warnings.warn(f"precision=bf16 is not supported on {device}; this trial trains in fp32")
            self.precision_used = "fp32"

    def place(self, module: nn.Module) -> nn.Module:
        """``module`` on the trial's device; channels_last on CPU, where oneDNN's convolutions are
        9-16% faster in that layout (bench/throughput.py --variants; not measured on GPUs)."""
        if self.device.type == "cpu":
            return module.to(self.device, memory_format=torch.channels_last)
        return module.to(self.device)

    def autocast(self) -> torch.autocast:
        """Forward passes of a training step: bfloat16 matmuls/convs when ``precision_used`` is
        bf16, else a no-op. Losses are computed in fp32 from outputs cast back with ``.float()``."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision_used == "bf16")

    # ---- sample quality (common.evaluation, cheap settings) -------------------------------
    @property
    def evaluator(self) -> Evaluator:
        """The per-epoch scorer: the fixed random conv net (common.metrics), cheap enough to run
        every epoch on CPU, against the whole test split, held in memory. Not Inception FID."""
        if self._evaluator is None:
            self._evaluator = Evaluator(self.data, reference="test", n=len(self.data.test_x), extractor="randconv256",
                                        device=self.device, cache_dir=None, batch_size=500)
        return self._evaluator

    def sample_quality(self, fake: torch.Tensor) -> float:
        """``sample_fd``: Fréchet distance of ``fake`` (N,3,32,32) in [-1,1] vs the test split."""
        return self.evaluator(fake, ["fid"])["fid"]

    # ---- sample diversity (mode-collapse detector; common.diagnostics) --------------------
    _real_diversity: float | None = None  # mean pairwise feature distance of real test images

    def sample_scores(self, fake: torch.Tensor) -> dict[str, float]:
        """``sample_fd``, ``diversity`` and ``mode_collapse`` of ``fake`` (N>=2,3,32,32) in [-1,1],
        from one feature extraction.

        ``sample_fd`` is exactly ``sample_quality(fake)``. ``diversity`` = mean pairwise L2
        distance between the features of ``fake`` / the same for real test images (a fixed,
        evenly spaced subset of ``DIVERSITY_REF_IMAGES``): ~1 healthy, << 1 collapsed.
        ``mode_collapse`` = 1.0 if diversity < 0.5 else 0.0. The extra cost over
        ``sample_quality`` is the N x N distance matrix (milliseconds for N = 1000).
        """
        if self._real_diversity is None:
            idx = reference_indices(len(self.test), DIVERSITY_REF_IMAGES).numpy()
            self._real_diversity = mean_pairwise_distance(self.evaluator.real_features()[idx])
        feats = self.evaluator.features(fake)
        diversity = diversity_ratio(feats, self._real_diversity)
        return {"sample_fd": self.evaluator.score(feats, ["fid"])["fid"],
                "diversity": diversity, "mode_collapse": mode_collapse_flag(diversity)}

    def tags(self) -> dict[str, str]:
        """Extra MLflow tags for this trial's run (families override)."""
        return {}

    # ---- bookkeeping ----------------------------------------------------------------------
    def static_metrics(self) -> dict[str, float]:
        """Logged once at step 0: model sizes and the data sizes every number is measured on."""
        counts = {f"n_params_{k}": float(count_params(m)) for k, m in self.models.items()}
        return {"n_params": float(sum(counts.values())), **counts,
                "n_train_images": float(len(self.train)), "n_test_images": float(len(self.test))}

    def state_dict(self) -> dict:
        return {
            "models": {k: m.state_dict() for k, m in self.models.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        for k, m in self.models.items():
            m.load_state_dict(state["models"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
