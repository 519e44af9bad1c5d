"""What the VAE and DCGAN tasks share: data on the device, real-feature stats, state."""
from __future__ import annotations

import torch
from torch import nn

from common.config import ConfigError, TrialConfig
from common.data import Dataset, DeviceData, subset_indices, to_unit_range
from common.metrics import RandomConvFeatures, extract_features, feature_stats, sample_fd
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
