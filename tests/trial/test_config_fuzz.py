"""Property-based fuzzing of config parsing (hypothesis), on top of the bad-input table in test_cli.

Whatever a space file, ``--set`` or a checkpoint hands ``from_dict``, it either builds a config
whose every field is in range, or raises ``ConfigError`` with a one-line message: never another
exception, never a silently out-of-range value.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.trial.config import ConfigError
from common.trial.families import FAMILIES, config_class, for_family

FAMILY = st.sampled_from(sorted(FAMILIES))
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["1e-3", "-1", "0", "nan", "inf", "true", "4", "64", "", " 7 "]),
    st.lists(st.integers(), max_size=2),
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _keys(family: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(sorted(config_class(family).fields())), st.text(min_size=1, max_size=10))


def _in_range(cfg) -> bool:
    for name, f in cfg.fields().items():
        value, meta = getattr(cfg, name), f.metadata
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if meta.get("choices") is not None and value not in meta["choices"]:
            return False
        if meta.get("lo") is not None and (value < meta["lo"] or (meta.get("lo_open") and value == meta["lo"])):
            return False
        if meta.get("hi") is not None and value > meta["hi"]:
            return False
    return True


@SETTINGS
@given(data=st.data(), family=FAMILY)
def test_from_dict_builds_an_in_range_config_or_raises_config_error(data, family):
    values = data.draw(st.dictionaries(_keys(family), ANY_VALUE, max_size=6))
    cls = config_class(family)
    try:
        cfg = cls.from_dict(values)
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)  # one line for the CLI
        return
    assert _in_range(cfg)
    assert cls.from_dict(cfg.to_dict()) == cfg  # and it round-trips


@SETTINGS
@given(data=st.data(), family=FAMILY)
def test_set_strings_parse_like_the_values_they_spell(data, family):
    """``--set key=VALUE`` hands strings: a valid config's values, printed, parse back to it."""
    cls = config_class(family)
    values = data.draw(st.dictionaries(st.sampled_from(sorted(cls.fields())), ANY_VALUE, max_size=4))
    try:
        cfg = cls.from_dict(values)
    except ConfigError:
        return
    as_strings = {k: (repr(v) if isinstance(v, float) else str(v)) for k, v in cfg.to_dict().items()}
    assert cls.from_dict(as_strings) == cfg


@SETTINGS
@given(key=st.text(max_size=20), family=FAMILY)
def test_family_scoped_set_keys_resolve_or_raise_config_error(key, family):
    try:
        out = for_family({key: "1"}, family)
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    assert set(out) <= {key, key.rpartition(".")[2]}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fuzz_finds_the_known_bad_values(family):
    """The fuzz above is not vacuous: the values it draws do hit ConfigError."""
    for bad in ({"batch_size": 0}, {"seed": "abc"}, {"max_epochs": float("nan")}, {"bogus": 1}):
        with pytest.raises(ConfigError):
            config_class(family).from_dict(bad)
