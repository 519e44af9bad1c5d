"""Validated trial configs, one dataclass per model family.

A field name here is the sweep key, the ``--set`` key and the MLflow param name: one name
for one thing. ``from_dict`` rejects unknown keys, wrong types, NaN and out-of-range values
with a ``ConfigError`` whose message says what is wrong and how to fix it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping


class ConfigError(ValueError):
    """Bad user input: the CLI prints the message on one line and exits 2."""


def _f(default, *, lo=None, hi=None, lo_open=False, choices=None, doc=""):
    """A dataclass field carrying its valid range (``lo``/``hi`` inclusive unless ``lo_open``)."""
    return field(default=default, metadata=dict(lo=lo, hi=hi, lo_open=lo_open, choices=choices, doc=doc))


@dataclass(frozen=True)
class TrialConfig:
    """Fields every family shares: data, budget, seed, device."""

    family: ClassVar[str] = ""
    default_metric: ClassVar[str] = ""  # the objective when a space file names none (fixed runs)
    seed: int = _f(42, lo=0, doc="global seed: same config + seed => same metrics on CPU")
    data: str = _f("cifar10", doc="cifar10 | synthetic | path to cifar-10-batches-py, an image-folder tree or its .tar.gz")
    train_subset: int = _f(10_000, lo=1, doc="seeded subset of the training split (the seed used 10k)")
    batch_size: int = _f(128, lo=1, hi=8192)
    max_epochs: int = _f(20, lo=1, hi=10_000)
    probe_every: int = _f(5, lo=0, doc="run the (costly) linear probe every N epochs and at the end; 0 = end only")
    eval_samples: int = _f(1000, lo=16, doc="generated images per epoch for the sample-quality score")
    device: str = _f("auto", choices=("auto", "cuda", "mps", "cpu"))

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
                f"unknown {cls.family} config key(s) {', '.join(unknown)}; "
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
        """Cross-field checks; subclasses extend."""


@dataclass(frozen=True)
class VAEConfig(TrialConfig):
    """Conv-VAE (seed: latent 64, 20 epochs, L = MSE + beta*KL)."""

    family: ClassVar[str] = "vae"
    default_metric: ClassVar[str] = "test_elbo"
    lr: float = _f(1e-3, lo=0.0, lo_open=True, hi=1.0)
    latent_dim: int = _f(64, lo=1, hi=4096)
    base_channels: int = _f(32, lo=1, doc="encoder widths c, 2c, 4c (seed: 32-64-128)")
    hidden_dim: int = _f(256, lo=0, doc="hidden FC between the 4x4 feature map and the latent; 0 = none")
    beta: float = _f(1.0, lo=0.0, doc="KL weight reached by the schedule (beta-VAE when != 1)")
    beta_schedule: str = _f("constant", choices=("constant", "linear", "cyclical"))
    warmup_epochs: int = _f(10, lo=1, doc="linear schedule: epochs to ramp beta from 0")
    cycles: int = _f(4, lo=1, doc="cyclical schedule: number of cycles over max_epochs")


@dataclass(frozen=True)
class DCGANConfig(TrialConfig):
    """DCGAN (seed: z = 100, 40 epochs, non-saturating BCE, Adam beta1 = 0.5)."""

    family: ClassVar[str] = "dcgan"
    default_metric: ClassVar[str] = "sample_fd"
    max_epochs: int = _f(40, lo=1, hi=10_000)
    latent_dim: int = _f(100, lo=1, hi=4096)
    lr_g: float = _f(2e-4, lo=0.0, lo_open=True, hi=1.0)
    lr_ratio: float = _f(1.0, lo=0.0, lo_open=True, hi=100.0, doc="TTUR: lr_D = lr_ratio * lr_g")
    beta1: float = _f(0.5, lo=0.0, hi=0.999)
    beta2: float = _f(0.999, lo=0.0, hi=0.9999)
    g_channels: int = _f(128, lo=1, doc="generator widths c, c, c/2 (seed: 128-128-64)")
    g_hidden: int = _f(384, lo=0, doc="generator hidden FC before the 4x4 map; 0 = none")
    d_channels: int = _f(64, lo=1, doc="discriminator widths c, 2c, 4c (seed: 64-128-256)")
    d_hidden: int = _f(512, lo=0, doc="discriminator hidden FC before the logit; 0 = none")

    @property
    def lr_d(self) -> float:
        return self.lr_g * self.lr_ratio


FAMILIES: dict[str, type[TrialConfig]] = {"vae": VAEConfig, "dcgan": DCGANConfig}


def config_class(family: str) -> type[TrialConfig]:
    try:
        return FAMILIES[family]
    except KeyError:
        raise ConfigError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}") from None


def for_family(values: Mapping[str, Any], family: str) -> dict[str, Any]:
    """Resolve ``--set`` keys for one family: ``key`` applies to all, ``family.key`` to one.

    A sweep with both families (the seed preset) can then set e.g. ``dcgan.g_channels=32``.
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        scope, dot, name = key.rpartition(".")
        if not dot:
            out[key] = value
        elif scope not in FAMILIES:
            raise ConfigError(f"config key {key!r}: prefix {scope!r} is not a model family ({', '.join(FAMILIES)})")
        elif scope == family:
            out[name] = value
    return out


# ---- helpers ------------------------------------------------------------------------------
def _coerce(name: str, value: Any, f: dataclasses.Field) -> Any:
    typ = {"int": int, "float": float, "str": str, "bool": bool}[f.type if isinstance(f.type, str) else f.type.__name__]
    if typ is bool:
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
            return value.lower() in ("1", "true", "yes")
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, bool):
            pass
        elif isinstance(value, int):
            return value
        elif isinstance(value, float) and value.is_integer():
            return int(value)
        elif isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str and isinstance(value, str):
        return value
    raise ConfigError(f"config key {name}={value!r} must be of type {typ.__name__}")


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
