"""Space files: the shipped ones load and resolve; malformed ones raise SpaceError naming the file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from common.sweep.space import Space, SpaceError, check_configs, load_space, sample_params
from common.trial.config import ConfigError
from common.trial.families import FAMILIES

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"
SHIPPED = sorted(p.stem for p in SWEEPS.glob("*.py") if p.stem != "__init__")

HEADER = 'family = "vae"\nmetric = "val_mse_kl"\nmode = "min"\n'


def write(tmp_path, *parts: str, name: str = "space.py") -> Path:
    path = tmp_path / name
    path.write_text("".join(textwrap.dedent(p) for p in parts))
    return path


class RecordingTrial:
    """Stands in for an optuna trial: records each suggest_* call's bounds, returns the low end."""

    def __init__(self):
        self.calls = {}

    def suggest_float(self, name, low, high, *, step=None, log=False):
        self.calls[name] = ("float", low, high)
        return low

    def suggest_int(self, name, low, high, *, step=1, log=False):
        self.calls[name] = ("int", low, high)
        return low

    def suggest_categorical(self, name, choices):
        self.calls[name] = ("categorical", tuple(choices))
        return choices[0]


# ---- the shipped space files -------------------------------------------------------------------
def test_shipped_spaces_are_the_expected_ones():
    assert {"gan_ttur", "vae_beta", "slides"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_space_loads_and_resolves(name):
    space = load_space(SWEEPS / f"{name}.py")
    assert isinstance(space, Space)
    assert space.name == name
    assert space.mode in ("min", "max")
    configs = check_configs(space, {}, seed=42)
    assert configs and all(c["family"] in FAMILIES for c in configs)


def test_gan_ttur():
    space = load_space(SWEEPS / "gan_ttur.py")
    assert (space.family, space.metric, space.mode) == ("dcgan", "val_classifier_fd", "min")
    assert callable(space.search) and not space.runs
    trial = RecordingTrial()
    space.search(trial)
    kind, low, high = trial.calls["lr_ratio"]
    assert kind == "float" and 1.0 <= low < high <= 8.0
    assert set(trial.calls) <= set(check_configs(space, {}, 0)[0])  # every searched key is a config field
    (cfg,) = check_configs(space, {}, seed=42)
    assert cfg["family"] == "dcgan" and 1.0 <= cfg["lr_ratio"] <= 8.0


def test_vae_beta():
    space = load_space(SWEEPS / "vae_beta.py")
    assert (space.family, space.metric, space.mode) == ("vae", "val_bpd", "min")
    trial = RecordingTrial()
    space.search(trial)
    assert trial.calls["latent_dim"] == ("categorical", (16, 32, 64, 128, 256))
    assert set(trial.calls["beta_schedule"][1]) == {"constant", "linear", "cyclical"}
    seen = {check_configs(space, {}, seed=s)[0]["latent_dim"] for s in range(40)}
    assert seen <= {16, 32, 64, 128, 256} and len(seen) > 1


def test_slides_preset():
    space = load_space(SWEEPS / "slides.py")
    assert space.search is None and space.family is None
    assert {r["family"]: r["max_epochs"] for r in space.runs} == {"vae": 20, "dcgan": 40}
    configs = check_configs(space, {}, seed=42)
    assert [(c["family"], c["max_epochs"]) for c in configs] == [("vae", 20), ("dcgan", 40)]
    assert configs[0]["latent_dim"] == 64 and configs[1]["latent_dim"] == 100
    assert all(c["seed"] == 42 for c in configs)


def test_tradeoff3_searches_each_family_with_its_own_space_on_shared_objectives():
    space = load_space(SWEEPS / "tradeoff3.py")
    assert space.families == ["vae", "vaegan", "dcgan"] and space.family == "vae"
    assert space.objectives == [("val_probe_acc", "max"), ("val_classifier_fd", "min")]
    configs = check_configs(space, {"dcgan.g_channels": 32}, seed=42)
    assert [(c["family"], c["max_epochs"], c["probe_every"]) for c in configs] == [
        ("vae", 20, 1),
        ("vaegan", 20, 1),
        ("dcgan", 40, 1),
    ]  # the slides' budget: each family's default
    assert configs[2]["g_channels"] == 32 and "ema_decay" in sample_params(space, 0, "dcgan")
    for family in space.families:
        trial = RecordingTrial()
        space.search_for(family)(trial)
        assert set(trial.calls) <= set(next(c for c in configs if c["family"] == family))
    assert "gamma" in sample_params(space, 0, "vaegan") and "gamma" not in sample_params(space, 0, "vae")


def test_a_family_list_shares_one_space_and_family_scoped_defaults(tmp_path):
    path = write(
        tmp_path,
        'family = ["vae", "vaegan"]\nmetric = "val_classifier_fd"\nmode = "min"\n'
        'defaults = {"vaegan.gamma": 0.5, "batch_size": 64}\n'
        'def space(trial):\n    trial.suggest_float("lr", 1e-4, 1e-3, log=True)\n',
    )
    space = load_space(path)
    vae, vaegan = check_configs(space, {}, seed=1)
    assert vaegan["gamma"] == 0.5 and "gamma" not in vae and vae["batch_size"] == vaegan["batch_size"] == 64
    assert space.search_for("vae") is space.search_for("vaegan")


# ---- sample_params -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gan_ttur", "vae_beta"])
def test_sample_params_is_deterministic(name):
    space = load_space(SWEEPS / f"{name}.py")
    assert sample_params(space, 7) == sample_params(space, 7)
    assert len({tuple(sorted(sample_params(space, s).items())) for s in range(5)}) > 1


def test_sample_params_respects_ranges():
    space = load_space(SWEEPS / "gan_ttur.py")
    for s in range(30):
        p = sample_params(space, s)
        assert set(p) == {"lr_g", "lr_ratio", "beta1", "spectral_norm", "gan_loss"}
        assert p["gan_loss"] in ("bce", "hinge") and p["spectral_norm"] in (False, True)
        assert 5e-5 <= p["lr_g"] <= 5e-4
        assert 1.0 <= p["lr_ratio"] <= 8.0
        assert 0.0 <= p["beta1"] <= 0.9


def test_sample_params_distribution_dict(tmp_path):
    space = load_space(
        write(
            tmp_path,
            HEADER,
            """
        from optuna.distributions import CategoricalDistribution, FloatDistribution
        space = {"beta": FloatDistribution(0.5, 2.0), "latent_dim": CategoricalDistribution([16, 32])}
    """,
        )
    )
    for s in range(10):
        p = sample_params(space, s)
        assert 0.5 <= p["beta"] <= 2.0 and p["latent_dim"] in (16, 32)
    assert sample_params(space, 3) == sample_params(space, 3)
    (cfg,) = check_configs(space, {}, seed=3)
    assert cfg["beta"] == sample_params(space, 3)["beta"]


def test_sample_params_merges_returned_constants(tmp_path):
    space = load_space(
        write(
            tmp_path,
            HEADER,
            """
        def space(trial):
            trial.suggest_float("beta", 0.5, 2.0)
            return {"beta_schedule": "linear"}
    """,
        )
    )
    p = sample_params(space, 0)
    assert p["beta_schedule"] == "linear" and 0.5 <= p["beta"] <= 2.0


def test_no_search_samples_nothing(tmp_path):
    space = load_space(write(tmp_path, HEADER))
    assert space.search is None
    assert sample_params(space, 0) == {}
    (cfg,) = check_configs(space, {}, seed=0)
    assert cfg["family"] == "vae"


# ---- malformed space files -----------------------------------------------------------------------------
BAD = {
    "syntax-error": "family = 'vae'\nmetric = (\n",
    "missing-required": "num_samples = 3\n",
    "missing-mode": 'family = "vae"\nmetric = "val_mse_kl"\n',
    "unknown-name": HEADER + "lr = 1e-3\n",
    "unknown-helper-function": HEADER + "def helper():\n    return 1\n",
    "mode-maximize": 'family = "vae"\nmetric = "val_mse_kl"\nmode = "maximize"\n',
    "space-a-list": HEADER + "space = [1, 2]\n",
    "space-dict-of-lists": HEADER + 'space = {"beta": [0.5, 2.0]}\n',
    "distribution-low-gt-high": HEADER
    + ('from optuna.distributions import FloatDistribution\nspace = {"beta": FloatDistribution(low=5, high=1)}\n'),
    "num-samples-zero": HEADER + "num_samples = 0\n",
    "num-samples-float": HEADER + "num_samples = 2.5\n",
    "max-epochs-negative": HEADER + "max_epochs = -1\n",
    "runs-entry-without-family": 'runs = [{"max_epochs": 2}]\n',
    "import-time-error": HEADER + "x = 1 / 0\n",
    "family-list-repeated": 'family = ["vae", "vae"]\nmetric = "val_mse_kl"\nmode = "min"\n',
    "family-list-of-numbers": 'family = [1, 2]\nmetric = "val_mse_kl"\nmode = "min"\n',
    "per-family-space-not-a-space": (
        'family = ["vae", "dcgan"]\nmetric = "val_classifier_fd"\nmode = "min"\nspace = {"vae": 1, "dcgan": 2}\n'
    ),
}


@pytest.mark.parametrize("body", BAD.values(), ids=BAD.keys())
def test_bad_space_raises_space_error_naming_the_file(tmp_path, body):
    path = write(tmp_path, body)
    with pytest.raises(SpaceError) as e:
        load_space(path)
    assert str(path) in str(e.value)
    assert "\n" not in str(e.value).strip()  # the CLI prints it on one line


def test_missing_file(tmp_path):
    path = tmp_path / "nope.py"
    with pytest.raises(SpaceError, match="does not exist") as e:
        load_space(path)
    assert str(path) in str(e.value)


def test_missing_required_names_are_listed(tmp_path):
    with pytest.raises(SpaceError) as e:
        load_space(write(tmp_path, "num_samples = 3\n"))
    assert all(k in str(e.value) for k in ("family", "metric", "mode", "runs"))


def test_unknown_name_is_named(tmp_path):
    with pytest.raises(SpaceError, match="lr"):
        load_space(write(tmp_path, HEADER + "lr = 1e-3\n"))


def test_imports_and_private_names_are_allowed(tmp_path):
    space = load_space(
        write(
            tmp_path,
            HEADER,
            """
        import math
        from optuna.distributions import FloatDistribution
        _LOW = 0.5
        def space(trial):
            trial.suggest_float("beta", _LOW, math.e)
    """,
        )
    )
    assert callable(space.search)


def test_define_by_run_low_gt_high_raises_on_sampling(tmp_path):
    path = write(
        tmp_path,
        HEADER,
        """
        def space(trial):
            trial.suggest_float("beta", 5.0, 1.0)
    """,
    )
    space = load_space(path)  # a function is only checked when called
    with pytest.raises(SpaceError) as e:
        sample_params(space, 0)
    assert str(path) in str(e.value)
    with pytest.raises(SpaceError):
        check_configs(space, {}, seed=0)


def test_unknown_family_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="bogus"):
        load_space(write(tmp_path, 'family = "bogus"\nmetric = "m"\nmode = "min"\n'))
    with pytest.raises(ConfigError, match="bogus"):
        load_space(write(tmp_path, 'runs = [{"family": "bogus"}]\n', name="runs.py"))


def test_unknown_default_key_raises_config_error(tmp_path):
    space = load_space(write(tmp_path, HEADER + 'defaults = {"latnet_dim": 16}\n'))
    with pytest.raises(ConfigError, match="latnet_dim"):
        check_configs(space, {}, seed=0)


def test_unknown_key_in_runs_raises_config_error(tmp_path):
    space = load_space(write(tmp_path, 'runs = [{"family": "dcgan", "beta": 2.0}]\n'))
    with pytest.raises(ConfigError, match="beta"):
        check_configs(space, {}, seed=0)


def test_searched_key_out_of_range_raises_config_error(tmp_path):
    space = load_space(
        write(
            tmp_path,
            HEADER,
            """
        def space(trial):
            trial.suggest_float("beta", -2.0, -1.0)
    """,
        )
    )
    with pytest.raises(ConfigError, match="beta"):
        check_configs(space, {}, seed=0)


# Optional names that load_space accepts without checking; each one later fails with a traceback
# (TypeError, or an error from Ray after it started) instead of a one-line SpaceError.
UNCHECKED = {
    "defaults-a-list": HEADER + "defaults = [1]\n",
    "runs-of-non-dicts": "runs = [1]\n",
    "resources-a-list": HEADER + "resources = [1]\n",
    "resources-negative": HEADER + 'resources = {"cpu": -1}\n',
    "max-concurrent-negative": HEADER + "max_concurrent = -1\n",
    "scheduler-a-string": HEADER + 'scheduler = "asha"\n',
    "sampler-unknown": HEADER + 'sampler = "grid"\n',
    "resources-unknown-key": HEADER + 'resources = {"memory": 2000}\n',
    "pbt-no-mutations": HEADER + 'scheduler = {"kind": "pbt", "perturbation_interval": 2, "mutations": {}}\n',
    "pbt-log-from-zero": HEADER
    + 'scheduler = {"kind": "pbt", "perturbation_interval": 2, "mutations": {"lr": ("log", 0, 1)}}\n',
    "pb2-choices": HEADER
    + 'scheduler = {"kind": "pb2", "perturbation_interval": 2, "mutations": {"beta1": [0.0, 0.5]}}\n',
    "pb2-log-range": HEADER
    + 'scheduler = {"kind": "pb2", "perturbation_interval": 2, "mutations": {"lr": ("log", 1e-4, 1e-3)}}\n',
    "pbt-synch-not-a-bool": HEADER
    + 'scheduler = {"kind": "pbt", "perturbation_interval": 2, "synch": "yes", "mutations": {"lr": [1e-4]}}\n',
    "scheduler-unknown-kind": HEADER + 'scheduler = {"kind": "hyperband", "perturbation_interval": 2}\n',
}


@pytest.mark.parametrize("body", UNCHECKED.values(), ids=UNCHECKED.keys())
def test_malformed_optional_names_raise_space_error(tmp_path, body):
    with pytest.raises(SpaceError):
        load_space(write(tmp_path, body))


@pytest.mark.parametrize("kind", ["pbt", "pb2"])
def test_population_schedulers_load_and_their_mutations_must_be_config_fields(tmp_path, kind):
    ok = f'scheduler = {{"kind": "{kind}", "perturbation_interval": 2, "mutations": {{"lr": ("uniform", 1e-4, 1e-3)}}}}\n'
    assert load_space(write(tmp_path, HEADER + ok)).scheduler["kind"] == kind
    with pytest.raises(SpaceError, match="not config fields of vae"):
        load_space(write(tmp_path, HEADER + ok.replace('"lr"', '"lr_g"')))
    with pytest.raises(SpaceError, match="draws and mutates its own configs"):
        load_space(write(tmp_path, HEADER + ok + "def space(trial):\n    trial.suggest_float('beta', 1, 2)\n"))


def test_space_function_bug_raises_space_error(tmp_path):
    space = load_space(
        write(
            tmp_path,
            HEADER,
            """
        def space(trial):
            trial.suggest_float("beta", 0.5, undefined_name)
    """,
        )
    )
    with pytest.raises(SpaceError):
        sample_params(space, 0)


# ---- overrides -------------------------------------------------------------------------------------------
def test_overrides_win_over_defaults_and_search(tmp_path):
    space = load_space(
        write(
            tmp_path,
            HEADER,
            """
        defaults = {"latent_dim": 32, "probe_every": 2}
        def space(trial):
            trial.suggest_float("beta", 0.5, 2.0)
    """,
        )
    )
    (cfg,) = check_configs(space, {"latent_dim": "128", "beta": "3"}, seed=0)
    assert cfg["latent_dim"] == 128  # --set beats the space's default
    assert cfg["beta"] == 3.0  # ... and the sampled value
    assert cfg["probe_every"] == 2  # untouched defaults stay


def test_overrides_apply_to_every_run():
    space = load_space(SWEEPS / "slides.py")
    configs = check_configs(space, {"max_epochs": "1", "data": "synthetic"}, seed=42)
    assert [c["max_epochs"] for c in configs] == [1, 1]
    assert all(c["data"] == "synthetic" for c in configs)


def test_bad_override_raises_config_error():
    space = load_space(SWEEPS / "gan_ttur.py")
    with pytest.raises(ConfigError, match="lr_g"):
        check_configs(space, {"lr_g": "-1"}, seed=0)
    with pytest.raises(ConfigError, match="bogus"):
        check_configs(space, {"bogus": "1"}, seed=0)
