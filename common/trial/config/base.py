"""TrialConfig, the fields every family shares, and how a config is parsed and checked
(``from_dict``: types coerced, unknown keys, NaN and out-of-range values refused)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Mapping

from pydantic import BeforeValidator, StrictStr, TypeAdapter, ValidationError

from common.base.data import split_indices
from common.base.errors import UserError
from common.base.names import DEFAULT_SEED
from common.base.slides import PARAMS, PARAMS_TOLERANCE
from common.trial.models import count_params

if TYPE_CHECKING:
    import torch


class ConfigError(UserError):
    """Bad user input: the CLI prints the message on one line and exits 2."""


def config_field(default, *, lo=None, hi=None, lo_open=False, choices=None, doc=""):
    """A dataclass field carrying its valid range (``lo``/``hi`` inclusive unless ``lo_open``)."""
    return field(default=default, metadata=dict(lo=lo, hi=hi, lo_open=lo_open, choices=choices, doc=doc))


CUDA_CONTEXT_MB = 600  # what a CUDA process holds before its first tensor (context, cuBLAS/cuDNN handles)
SYNTHETIC_RSS_MB = 1600  # any family on synthetic data (768 images): measured 1,164-1,326


@dataclass(frozen=True)
class TrialConfig:
    """Fields every family shares: data, budget, seed, device."""

    family: ClassVar[str] = ""
    default_metric: ClassVar[str] = ""  # the objective when a space file names none (fixed runs)
    # Peak RSS of one trial at the defaults on real CIFAR-10 (10k train subset, 10k test, the
    # end-of-trial probe included) in a Ray worker, MiB, rounded up: what a trial reserves from
    # Ray's ``memory`` resource unless told otherwise (BENCHMARKS.md, "Memory per trial").
    peak_rss_mb: ClassVar[int] = 0
    # The structural fields: what sets each net's parameter count (param_counts, the budget check).
    layout: ClassVar[tuple[str, ...]] = ()
    seed: int = config_field(DEFAULT_SEED, lo=0, doc="global seed: same config + seed => same metrics on CPU")
    data: str = config_field(
        "cifar10", doc="cifar10 | synthetic | path to cifar-10-batches-py, an image-folder tree or its .tar.gz"
    )
    train_subset: int = config_field(10_000, lo=1, doc="seeded subset of the training split (the slides used 10k)")
    val_size: int = config_field(
        0,
        lo=0,
        doc="validation images, drawn (val_seed) from the train images outside the "
        "train subset (held out of it when it takes the whole split); every selection reads them. "
        "0 = auto: 5,000, or a tenth of the train split if fewer (common.base.data.auto_val_size)",
    )
    val_seed: int = config_field(0, lo=0, doc="seed of the validation draw (common.base.data.split_indices)")
    batch_size: int = config_field(128, lo=1, hi=8192)
    max_epochs: int = config_field(20, lo=1, hi=10_000)
    probe_every: int = config_field(
        5,
        lo=0,
        doc="run the (costly) linear probe on the validation images every N epochs; "
        "0 = never during training. The best epoch is always probed after training (test split)",
    )
    eval_samples: int = config_field(
        1000,
        lo=16,
        doc="generated images per epoch for the sample scores, from a fixed z "
        "(the same every epoch, so epochs and trials differ only by the model)",
    )
    device: str = config_field("auto", choices=("auto", "cuda", "mps", "cpu"))
    deterministic: str = config_field(
        "auto",
        choices=("auto", "on", "off"),
        doc="deterministic kernels: auto = on for CPU and "
        "MPS, off on CUDA (cuDNN autotuning instead); on = reproducible on a GPU too, where "
        "torch has deterministic kernels (common.base.device.is_deterministic)",
    )
    precision: str = config_field(
        "fp32",
        choices=("fp32", "bf16"),
        doc="training steps' matmuls/convs: bf16 = autocast to "
        "bfloat16 (faster on CPU, changes the numbers: bench/precision.py); evaluation is always fp32",
    )
    collapse_patience: int = config_field(
        0,
        lo=0,
        doc="stop a trial flagged mode_collapse / posterior_collapse this many "
        "epochs in a row (a pruning signal); 0 = never",
    )
    param_budget: str = config_field(
        "",
        choices=("", "slides"),
        doc="slides = every net of the layout must lie within ±10% of the slides' parameter "
        "count (VAE 1.38M; G 1.24M, D 2.76M), else the config is refused; empty = any size",
    )

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrialConfig":
        """Build from a mapping of field -> value; strings (from ``--set``) are coerced."""
        values = dict(values)
        family = values.pop("family", cls.family)  # to_dict() output round-trips
        if family != cls.family:
            raise ConfigError(f"config says family={family!r} but a {cls.family} config was expected")
        known = cls.fields()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown {cls.family} config key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys: {', '.join(sorted(known))}"
            )
        return cls(**{k: _coerce(k, v, known[k]) for k, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, **dataclasses.asdict(self)}

    def __post_init__(self):
        for name, f in self.fields().items():
            _check_range(self.family, name, getattr(self, name), f.metadata)
        self._validate()

    def _validate(self) -> None:
        """Cross-field checks; subclasses extend (calling this one last: the budget check builds the nets)."""
        if 0 < self.val_size < 16:
            raise ConfigError(
                f"{self.family} config key val_size={self.val_size} is too small to select on: "
                "use >= 16, or 0 for the automatic size"
            )
        if self.param_budget == "slides":
            check_budget(self)

    # ---- layout ---------------------------------------------------------------------------
    def mults(self, name: str) -> tuple[float, ...]:
        """A ``*stage_mults`` field as numbers: "1,2,4" -> (1.0, 2.0, 4.0)."""
        return tuple(float(m) for m in getattr(self, name).split(","))

    def _check_mults(self, *names: str) -> None:
        """ConfigError unless each named field is three positive numbers, comma-separated."""
        for name in names:
            value = getattr(self, name)
            try:
                ok = len(self.mults(name)) == 3 and all(m > 0 and math.isfinite(m) for m in self.mults(name))
            except ValueError:
                ok = False
            if not ok:
                raise ConfigError(
                    f"{self.family} config key {name}={value!r} must be three positive numbers, "
                    "comma-separated, e.g. '1,2,4' (each stage's width as a multiple of the first)"
                )

    def param_counts(self) -> dict[str, int]:
        """Parameters of each net this config builds, keyed by its ``n_params_*`` metric (subclasses)."""
        return {}

    def split(self, n_train: int) -> tuple["torch.Tensor", "torch.Tensor"]:
        """(train subset, validation) indices into a train split of ``n_train`` images."""
        return split_indices(n_train, self.train_subset, self.val_size, self.seed, self.val_seed)

    def memory_mb(self) -> int:
        """Host memory one trial of this config needs, MiB (a measured peak, not a model)."""
        return SYNTHETIC_RSS_MB if self.data == "synthetic" else self.peak_rss_mb

    def gpu_memory_mb(self) -> int:
        """GPU memory one trial needs, MiB, for packing trials on a GPU (``common.sweep.resources.gpu_plan``).
        Not yet measured on a GPU (BENCHMARKS.md): until ``bench/memory.py --device cuda`` is, the
        host peak plus a CUDA context stands in, an overestimate, since the host peak also holds
        the Python runtime, torch's CPU libraries and the decoded dataset."""
        return self.memory_mb() + CUDA_CONTEXT_MB


def check_budget(cfg: TrialConfig) -> None:
    """ConfigError unless each net of ``cfg`` lies within ±10% of the slides' count for it."""
    counts = cfg.param_counts()
    if not counts or set(counts) - set(PARAMS):
        raise ConfigError(
            f"param_budget='slides' but the slides give no parameter count for the {cfg.family} family's "
            f"nets ({', '.join(counts) or 'none'}); set param_budget=''"
        )
    for key, count in counts.items():
        budget = PARAMS[key]
        if abs(count / budget - 1) > PARAMS_TOLERANCE:
            net = key.removeprefix("n_params_")
            raise ConfigError(
                f"{cfg.family} layout has {count:,} parameters in {net!r}, outside the slides' budget of "
                f"{budget:,.0f} ± {PARAMS_TOLERANCE:.0%} ({budget * (1 - PARAMS_TOLERANCE):,.0f} to "
                f"{budget * (1 + PARAMS_TOLERANCE):,.0f}); change its widths, hidden FC, kernel or "
                "latent size, or set param_budget=''"
            )


def count_on_meta(**nets) -> dict[str, int]:
    """``name=build`` (a zero-argument callable returning an nn.Module) -> {``n_params_<name>``: count};
    the nets are built on torch's meta device: no memory, no initialisation, milliseconds."""
    import torch

    with torch.device("meta"):
        return {f"n_params_{name}": count_params(build()) for name, build in nets.items()}


def check_objective(metric: str) -> None:
    """ConfigError for an objective read off the test split: selection reads validation metrics."""
    if metric.startswith("test_"):
        raise ConfigError(
            f"objective {metric!r} is a test-split metric; select on the validation split: use "
            f"{'val_' + metric.removeprefix('test_')!r}"
        )


# ---- helpers ------------------------------------------------------------------------------
def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a bool is no number")
    return value


def _bool_or_word(value: Any) -> Any:
    if not isinstance(value, (bool, str)):
        raise ValueError("neither a bool nor a word for one")
    return value


# pydantic's lax parsing ("3" -> 3, "1e-3" -> 0.001, "yes" -> True: what --set and MLflow params
# give), with bools and numbers kept apart.
_COERCE = {
    "int": TypeAdapter(Annotated[int, BeforeValidator(_no_bool)]),
    "float": TypeAdapter(Annotated[float, BeforeValidator(_no_bool)]),
    "bool": TypeAdapter(Annotated[bool, BeforeValidator(_bool_or_word)]),
    "str": TypeAdapter(StrictStr),
}


def _coerce(name: str, value: Any, f: dataclasses.Field) -> Any:
    typ = f.type if isinstance(f.type, str) else f.type.__name__
    try:
        return _COERCE[typ].validate_python(value)
    except ValidationError:
        raise ConfigError(f"config key {name}={value!r} must be of type {typ}") from None


def _check_range(family: str, name: str, value: Any, meta: Mapping[str, Any]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{family} config key {name}={value} must be a finite number")
    choices, lo, hi = meta.get("choices"), meta.get("lo"), meta.get("hi")
    if choices is not None and value not in choices:
        raise ConfigError(f"{family} config key {name}={value!r} must be one of {', '.join(map(str, choices))}")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        op = ">" if meta.get("lo_open") else ">="
        raise ConfigError(f"{family} config key {name}={value} is out of range: it must be {op} {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{family} config key {name}={value} is out of range: it must be <= {hi}")
