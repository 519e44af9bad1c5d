"""The shapes a space file's names must have, as pydantic models: the scheduler (a tagged union of
ASHA, PBT and PB2 on its ``kind``), the per-trial resources, fixed runs and the scalar settings.

``check(ns)`` validates a space file's namespace and returns the first name that is wrong (None if
all are right); ``common.sweep.space`` turns that into its one-line error, which says what the name
must be (``MUST``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    Tag,
    TypeAdapter,
    ValidationError,
)

Number = Union[StrictInt, StrictFloat]  # a bool is no number here
AtLeastOne = Annotated[Number, Field(ge=1)]
NonNegative = Annotated[Number, Field(ge=0)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _ordered(r: tuple) -> tuple:
    kind, low, high = r
    if not low < high or (kind == "log" and low <= 0):
        raise ValueError("low < high, and low > 0 for log")
    return r


Range = Annotated[tuple[Literal["uniform", "log"], Number, Number], AfterValidator(_ordered)]
UniformRange = Annotated[tuple[Literal["uniform"], Number, Number], AfterValidator(_ordered)]
Choices = Annotated[list[Any], Field(min_length=1)]


class Asha(_Shape):
    """ASHA on ``training_iteration`` (the space's default scheduler)."""

    grace_period: AtLeastOne = 1
    reduction_factor: AtLeastOne = 3


class Pbt(_Shape):
    """Population-based training: each mutated field is [choices] or ("uniform" | "log", low, high)."""

    kind: Literal["pbt"]
    perturbation_interval: PositiveInt
    quantile_fraction: Annotated[Number, Field(gt=0, le=0.5)] = 0.25
    synch: StrictBool = False
    mutations: Annotated[dict[str, Union[Range, Choices]], Field(min_length=1)]


class Pb2(Pbt):
    """PB2 models its bounds linearly and draws no choices: ("uniform", low, high) only."""

    kind: Literal["pb2"]
    mutations: Annotated[dict[str, UniformRange], Field(min_length=1)]


def _kind(value: Any) -> str:
    return value.get("kind", "asha") if isinstance(value, dict) else "asha"


Scheduler = Annotated[
    Union[Annotated[Asha, Tag("asha")], Annotated[Pbt, Tag("pbt")], Annotated[Pb2, Tag("pb2")]], Discriminator(_kind)
]


class Resources(_Shape):
    cpu: NonNegative = 1.0
    gpu: Union[NonNegative, Literal["auto"]] = "auto"
    memory_mb: NonNegative | None = None


class Run(BaseModel):
    """One fixed run: its family, and config fields (checked by the family's config)."""

    model_config = ConfigDict(extra="allow", strict=True)
    family: str


class SpaceShapes(_Shape):
    """A space file's settings, each optional (the file's own defaults apply)."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)
    defaults: dict[str, Any] = {}
    runs: list[Run] | None = None
    resources: Resources = Resources()
    scheduler: Scheduler | None = None
    sampler: Literal["tpe", "random"] = "tpe"
    max_concurrent: PositiveInt | None = None
    num_samples: PositiveInt = 8
    max_epochs: PositiveInt | None = None
    plugins: Union[list[str], tuple[str, ...]] = []
    preset: Annotated[str, Field(pattern=r"^([A-Za-z_]\w*)?$")] = ""


MUST = {  # what each name must be, in the error line
    "defaults": "a dict of config fields",
    "runs": "a list of dicts, each with a 'family'",
    "resources": "a dict like {'cpu': 1, 'gpu': 'auto', 'memory_mb': 2000} with non-negative numbers ('auto' for gpu)",
    "scheduler": "None, ASHA's {'grace_period': 1, 'reduction_factor': 3} (values >= 1) or PBT's {'kind': 'pbt', "
    "'perturbation_interval': 4, 'synch': True, 'mutations': {'lr_g': ('log', 1e-4, 5e-4), 'beta1': [0.0, 0.5]}} "
    "(PB2: 'kind': 'pb2', ranges only, e.g. 'lr_g': ('uniform', 1e-4, 5e-4))",
    "sampler": "'tpe' or 'random'",
    "max_concurrent": "None or a positive integer",
    "num_samples": "a positive integer",
    "max_epochs": "a positive integer",
    "plugins": "a list, e.g. ['my_models.wae', 'wae.py']",
    "preset": "a name such as 'slides' (letters, digits, _)",
}
_SHAPES = TypeAdapter(SpaceShapes)


def check(ns: dict[str, Any]) -> str | None:
    """The first of the space file's names (``ns``) whose value has the wrong shape; None if none."""
    try:
        _SHAPES.validate_python({k: v for k, v in ns.items() if k in MUST})
    except ValidationError as e:
        return str(e.errors()[0]["loc"][0])
    return None


def is_population_based(scheduler: Any) -> bool:
    """A scheduler that draws and mutates its own configs (PBT or PB2)."""
    return _kind(scheduler) in ("pbt", "pb2")
