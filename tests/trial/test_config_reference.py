"""common/trial/config/reference.py: docs/config.md is what ``markdown()`` prints today, and its
tables carry what ``config_field`` declares."""

from __future__ import annotations

from pathlib import Path

from common.trial.config import DCGANConfig
from common.trial.config.reference import COMMAND, markdown
from common.trial.families import FAMILIES

ROOT = Path(__file__).resolve().parents[2]


def _shipped() -> list[str]:
    """The families this package registers. Other tests register toy families in this process
    (tests/toy_family.py, ...); ``python -m common.trial.config.reference`` sees only these."""
    return [name for name, family in FAMILIES.items() if family.config.__module__.startswith("common.")]


def test_docs_config_md_is_what_the_generator_prints():
    page = (ROOT / "docs" / "config.md").read_text()
    assert page == markdown(_shipped()), f"docs/config.md is stale: regenerate it with `{COMMAND}`"
    assert COMMAND in page.splitlines()[0]  # the page says how it is made


def test_a_field_shows_its_default_and_range():
    f = DCGANConfig.fields()["lr_ratio"]  # config_field(1.0, lo=0.0, lo_open=True, hi=100.0, doc=...)
    assert (f.default, f.metadata["lo"], f.metadata["lo_open"], f.metadata["hi"]) == (1.0, 0.0, True, 100.0)
    dcgan = markdown(["dcgan"]).split("\n## dcgan\n", 1)[1]
    assert "| `lr_ratio` | float | `1.0` | (0.0, 100.0] | TTUR: lr_D = lr_ratio \\* lr_g |" in dcgan.splitlines()


def test_every_family_has_a_section_and_every_key_a_row():
    text = markdown(_shipped())
    for name in _shipped():
        assert f"\n## {name}\n" in text
        for key in FAMILIES[name].config.fields():
            assert f"| `{key}` |" in text, (name, key)
    assert "\n## common to every family\n" in text
