"""Model families from outside the package: plugins, imported by name or path, checked on arrival.

A plugin is a Python module that registers one or more families (``common.api.register``) when
it is imported. It is named by

* a space file's ``plugins = ["my_models.wae", "path/to/wae.py"]``: module names, or ``.py``
  paths relative to the space file;
* ``run_sweep.py --plugin X`` (repeatable): the same, paths relative to the working folder;
* an installed package's entry point in the group ``vaegan_sweeps.families`` (all of them, always).

``load_plugins`` imports each once and checks it registered a family that keeps the contract
(``check_family``); anything wrong is a ``PluginError`` (one ``error:`` line, exit 2, before Ray
starts). What it returns (module names, ``.py`` paths made absolute) is what the sweep records on
its parent run (tag ``plugins``), so ``--report``, ``--check``, ``--sample`` and ``--resume`` import
them again by themselves.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterable

from common.base.errors import UserError, first_line, raised_at
from common.trial.families import FAMILIES, check_family

ENTRY_POINTS = "vaegan_sweeps.families"
TAG = "plugins"  # the parent run's tag: a JSON list of what load_plugins returned
SHA_TAG = "plugins.sha256"  # the parent run's tag: a JSON {spec: SHA-256 of its file at the sweep}


class PluginError(UserError):
    """A plugin that is missing, fails to import, registers no family or breaks the contract."""


def load_plugins(specs: Iterable[str], base: Path | None = None) -> list[str]:
    """Import each plugin (module names; ``.py`` paths, relative to ``base`` or the working folder)
    and the installed entry points; return the specs as recorded (paths absolute)."""
    loaded = [_load(spec, base) for spec in specs]
    for entry in importlib.metadata.entry_points(group=ENTRY_POINTS):
        _checked(entry.value, lambda e=entry: _module_of(e.load()))
    return loaded


def modules(specs: Iterable[str]) -> list[ModuleType]:
    """The imported modules of recorded ``specs`` (what Ray ships to the workers)."""
    return [sys.modules[Path(s).stem if s.endswith(".py") else s] for s in specs]


def digests(specs: Iterable[str]) -> dict[str, str]:
    """{spec: SHA-256 of the imported module's file} of recorded ``specs``: what the sweep records, so
    a later import of a changed file can say so."""
    return {spec: _sha256(Path(module.__file__)) for spec, module in zip(specs, modules(specs))}


def entry_point_modules() -> set[str]:
    """The modules the installed entry points name: installed by the user, so trusted as ``--plugin``."""
    return {entry.module for entry in importlib.metadata.entry_points(group=ENTRY_POINTS)}


def changed_since(recorded: dict[str, str], specs: Iterable[str]) -> list[str]:
    """Of the imported ``specs``, those whose file's SHA-256 differs from the one ``recorded``."""
    return [s for s, sha in digests([s for s in specs if s in recorded]).items() if sha != recorded[s]]


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def ship_path(module: ModuleType) -> str:
    """What Ray's ``py_modules`` ships for ``module``: its top-level package's folder, or its .py file."""
    top = sys.modules[module.__name__.split(".")[0]]
    path = Path(top.__file__)
    return str(path.parent if path.name == "__init__.py" else path)


def _load(spec: str, base: Path | None) -> str:
    if not isinstance(spec, str) or not spec:
        raise PluginError(f"plugin {spec!r} must be a module name or a .py path, e.g. 'my_models.wae' or 'wae.py'")
    if not spec.endswith(".py"):
        _checked(spec, lambda: importlib.import_module(spec))
        return spec
    path = ((base or Path.cwd()) / spec).resolve()
    if not path.is_file():
        raise PluginError(f"plugin {spec}: there is no file {path}; give a .py path relative to the space file")
    _checked(spec, lambda: _import_file(path))
    return str(path)


def _import_file(path: Path) -> ModuleType:
    """Import ``path`` as the module named by its stem (as Ray's ``py_modules`` ships it), once."""
    loaded = sys.modules.get(path.stem)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(path.stem, None)
        raise
    return module


def _checked(spec: str, load) -> None:
    """Run ``load``; PluginError unless the module imports and registered >= 1 family that keeps the contract."""
    try:
        module = load()
    except ModuleNotFoundError as exc:
        if exc.name and spec.removesuffix(".py").replace("/", ".").startswith(exc.name):
            raise PluginError(
                f"plugin {spec!r} failed to import: {type(exc).__name__}: {first_line(exc)}; "
                "check the name (an importable module) or the path (a .py file)"
            ) from None
        raise PluginError(f"plugin {spec!r} raised while importing: {_where(exc)}") from None
    except Exception as exc:
        raise PluginError(f"plugin {spec!r} raised while importing: {_where(exc)}") from None
    mine = [f for f in FAMILIES.values() if module.__name__ in (f.config.__module__, f.task.__module__)]
    if not mine:
        raise PluginError(
            f"plugin {spec!r} registered no model family; call common.api.register(Family(...)) in it "
            "(see examples/wae_mmd.py)"
        )
    for family in mine:
        check_family(family)


def _where(exc: BaseException) -> str:
    """'FILE:LINE: Type: message' at the plugin's own line that raised."""
    return f"{raised_at(exc)}: {type(exc).__name__}: {first_line(exc)}"


def _module_of(obj) -> ModuleType:
    return obj if isinstance(obj, ModuleType) else sys.modules[obj.__module__]
