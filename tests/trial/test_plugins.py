"""common/trial/plugins.py and the family contract (common/trial/families.py): plugins imported by
name, by path and by entry point; each way a plugin can be wrong is one PluginError or ConfigError
naming the fix, before anything runs."""

from __future__ import annotations

import importlib.metadata
import textwrap
from pathlib import Path

import pytest

from common.base.errors import UserError
from common.trial.families import FAMILIES
from common.trial.plugins import ENTRY_POINTS, PluginError, load_plugins, ship_path

HEAD = """
from dataclasses import dataclass
from typing import ClassVar
from common.api import Family, TrialConfig, register
from common.trial.config import DCGANConfig
from common.trial.tasks.dcgan import DCGANTask
"""


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder for plugin files; the families they register are taken out again afterwards."""
    before = set(FAMILIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in set(FAMILIES) - before:
        FAMILIES.pop(name)


def _write(folder, name: str, body: str) -> Path:
    (folder / name).write_text(textwrap.dedent(HEAD) + textwrap.dedent(body))
    return folder / name


TINY = """
@dataclass(frozen=True)
class {cls}Config(DCGANConfig):
    family: ClassVar[str] = "{name}"
    g_channels: int = 8
    d_channels: int = 4
register(Family("{name}", {cls}Config, {task}, "{cls}", curve_metrics=(), decodes={decodes}))
"""


def test_a_py_path_is_imported_relative_to_its_base_and_recorded_absolute(plugin_dir):
    _write(plugin_dir, "tinygan.py", TINY.format(cls="Tiny", name="tiny", task="DCGANTask", decodes=False))
    assert load_plugins(["tinygan.py"], base=plugin_dir) == [str(plugin_dir / "tinygan.py")]
    assert "tiny" in FAMILIES and ship_path(__import__("tinygan")) == str(plugin_dir / "tinygan.py")
    assert load_plugins(["tinygan"]) == ["tinygan"]  # by module name: the same module, imported once


def test_a_plugin_that_raises_while_importing_names_its_own_file_and_line_not_the_name_or_path(plugin_dir):
    body = TINY.format(cls="Boom", name="boom", task="DCGANTask", decodes=False)
    body = body.replace(", decodes=False))", "))")  # Family(...) without decodes=: a TypeError at this line
    path = _write(plugin_dir, "boom.py", body)
    lines = path.read_text().splitlines()
    line = 1 + lines.index(next(x for x in lines if x.startswith("register(")))
    with pytest.raises(UserError) as err:
        load_plugins(["boom.py"], base=plugin_dir)
    said = str(err.value)
    assert f"{path}:{line}: TypeError: " in said and "decodes" in said
    assert "check the name" not in said  # the name and the path were fine
    _write(plugin_dir, "imports_missing.py", "import no_such_dependency_xyz\n")
    with pytest.raises(UserError, match=r"imports_missing\.py:\d+: ModuleNotFoundError: No module named"):
        load_plugins(["imports_missing.py"], base=plugin_dir)


@pytest.mark.parametrize(
    "spec,body,expect",
    [
        ("nope.py", None, "there is no file"),
        ("no_such_module_xyz", None, "failed to import: ModuleNotFoundError"),
        ("raises.py", "raise RuntimeError('boom')", r"raised while importing: .*raises\.py:\d+: RuntimeError: boom"),
        ("empty.py", "x = 1", "registered no model family"),
        (
            "undecorated.py",
            "class BadConfig(TrialConfig):\n    family: ClassVar[str] = 'bad'\n    default_metric: ClassVar[str] = "
            "'val_x'\n    lr: float = __import__('common.api').api.config_field(1.0)\n"
            "register(Family('bad', BadConfig, DCGANTask, 'Bad', curve_metrics=(), decodes=False))",
            "declares lr but is no dataclass",
        ),
        (
            "test_objective.py",
            TINY.format(cls="T", name="t", task="DCGANTask", decodes=False).replace(
                "g_channels: int = 8", 'default_metric: ClassVar[str] = "test_fd"\n    g_channels: int = 8'
            ),
            "must be a validation metric",
        ),
        (
            "no_encode.py",
            TINY.format(cls="NoEnc", name="noenc", task="DCGANTask", decodes=True),
            "breaks the family contract: AttributeError",
        ),
    ],
)
def test_each_broken_plugin_is_one_error_naming_the_fix(plugin_dir, spec, body, expect):
    if body is not None:
        _write(plugin_dir, spec, body)
    with pytest.raises(UserError, match=expect):
        load_plugins([spec], base=plugin_dir)


def test_an_encode_whose_code_does_not_decode_breaks_the_contract_at_load(plugin_dir):
    bad = TINY.format(cls="Enc", name="enc", task="EncTask", decodes=True)
    _write(
        plugin_dir,
        "bad_encode.py",
        textwrap.dedent(
            """
        import torch
        from common.trial.models import Generator
        class Flat(Generator):
            def encode(self, x):  # a feature map, not a (B, D) code
                return x[:, :, :4, :4].reshape(len(x), 3, 16)
            def decode(self, z):
                return self(z)
        class EncTask(DCGANTask):
            @staticmethod
            def build_sampler(cfg, models):
                g = Flat(cfg.latent_dim, cfg.g_channels, cfg.g_hidden)
                g.load_state_dict(models["g"])
                return g
        """
        )
        + bad,
    )
    with pytest.raises(UserError, match="'enc' breaks the family contract: RuntimeError"):
        load_plugins(["bad_encode.py"], base=plugin_dir)


def test_installed_entry_points_register_too(plugin_dir, monkeypatch):
    _write(plugin_dir, "entry_gan.py", TINY.format(cls="Entry", name="entry", task="DCGANTask", decodes=False))
    point = importlib.metadata.EntryPoint("entry", "entry_gan", ENTRY_POINTS)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [point] if group == ENTRY_POINTS else [])
    assert load_plugins([]) == [] and "entry" in FAMILIES


def test_the_example_family_keeps_the_contract():
    before = set(FAMILIES)
    try:
        assert load_plugins(["examples/wae_mmd.py"])[0].endswith("examples/wae_mmd.py")
        assert FAMILIES["wae"].decodes and FAMILIES["wae"].colour == "C4"
    finally:
        for name in set(FAMILIES) - before:
            FAMILIES.pop(name)


def test_a_plugin_error_is_a_user_error():
    assert issubclass(PluginError, UserError)
