"""What the VAE and DCGAN tasks share: data on the device, real-feature stats, state."""
from __future__ import annotations

import torch
from torch import nn

from common.config import ConfigError, TrialConfig
from common.data import Dataset, DeviceData, subset_indices, to_unit_range
from common.diagnostics import (DIVERSITY_REF_IMAGES, diversity_ratio, mean_pairwise_distance,
                                mode_collapse_flag, reference_indices)
from common.metrics import RandomConvFeatures, extract_features, feature_stats, frechet_distance, sample_fd
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
        self._extractor: RandomConvFeatures | None = None
        self._real_stats = None

    # ---- sample quality -------------------------------------------------------------------
    def sample_quality(self, fake: torch.Tensor) -> float:
        """Fréchet distance of ``fake`` (N,3,32,32) in [-1,1] vs the whole test split.

        The extractor is the project's fixed random conv net (see common.metrics): cheap
        enough to run every epoch on CPU; not comparable to Inception FID.
        """
        if self._extractor is None:
            self._extractor = RandomConvFeatures().to(self.device)
            real = to_unit_range(self.test.x)
            self._real_stats = feature_stats(extract_features(self._extractor, real))
        return sample_fd(fake, self._real_stats, self._extractor)

    # ---- sample diversity (mode-collapse detector; common.diagnostics) --------------------
    _real_diversity: float | None = None  # mean pairwise feature distance of real test images

    def sample_scores(self, fake: torch.Tensor) -> dict[str, float]:
        """``sample_fd``, ``diversity`` and ``mode_collapse`` of ``fake`` (N>=2,3,32,32) in [-1,1],
        from one feature extraction.

        ``sample_fd`` is exactly ``sample_quality(fake)``. ``diversity`` = mean pairwise L2
        distance between the features of ``fake`` / the same for real test images (a fixed,
        evenly spaced subset of ``DIVERSITY_REF_IMAGES``, extracted once per trial): ~1
        healthy, << 1 collapsed. ``mode_collapse`` = 1.0 if diversity < 0.5 else 0.0. The extra
        cost over ``sample_quality`` is the N x N distance matrix (milliseconds for N = 1000).
        """
        if self._extractor is None:  # as in sample_quality
            self._extractor = RandomConvFeatures().to(self.device)
            self._real_stats = feature_stats(extract_features(self._extractor, to_unit_range(self.test.x)))
        if self._real_diversity is None:
            idx = reference_indices(len(self.test), DIVERSITY_REF_IMAGES).to(self.test.device)
            self._real_diversity = mean_pairwise_distance(
                extract_features(self._extractor, to_unit_range(self.test.x[idx])))
        feats = extract_features(self._extractor, fake)
        diversity = diversity_ratio(feats, self._real_diversity)
        return {"sample_fd": frechet_distance(*feature_stats(feats), *self._real_stats),
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
