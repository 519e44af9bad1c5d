"""common/base/errors.py: one ``UserError`` type for bad input (exit 2) and ``first_line``."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import common
import run_sweep
from common.base.errors import UserError, first_line

# Every bad-input error the project raises; each must reach exit 2 by being a UserError.
USER_ERRORS = {
    "ConfigError",
    "SpaceError",
    "DataError",
    "TrackingError",
    "ReportError",
    "EvaluationError",
    "StorageError",
    "CheckpointError",
    "ClusterError",
}


def _error_classes() -> dict[str, type]:
    found = {}
    for info in pkgutil.walk_packages(common.__path__, "common."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, Exception) and obj.__module__ == info.name:
                found[name] = obj
    return found


def test_every_bad_input_error_is_a_user_error():
    classes = _error_classes()
    assert USER_ERRORS <= set(classes), USER_ERRORS - set(classes)
    assert {n for n in USER_ERRORS if not issubclass(classes[n], UserError)} == set()
    # the trial's own failures are not the user's input: they keep their traceback
    assert not issubclass(classes["DeviceError"], UserError)


def test_the_cli_exits_2_on_any_user_error_subclass_even_a_new_one(monkeypatch, capsys):
    class RenamedLater(UserError):
        pass

    def dispatch(_args):
        raise RenamedLater("--space: nope.py does not exist; pass a sweeps/*.py file")

    monkeypatch.setattr(run_sweep, "_dispatch", dispatch)
    with pytest.raises(SystemExit) as exc:
        run_sweep.main(["--space", "nope.py"])
    assert exc.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert err == ["error: --space: nope.py does not exist; pass a sweeps/*.py file"]


def test_the_cli_lets_other_errors_raise(monkeypatch):
    class NotTheUsers(ValueError):
        pass

    monkeypatch.setattr(run_sweep, "_dispatch", lambda _args: (_ for _ in ()).throw(NotTheUsers("bug")))
    with pytest.raises(NotTheUsers):
        run_sweep.main(["--space", "x.py"])


class Quiet(Exception):
    pass


@pytest.mark.parametrize(
    "message, limit, expected",
    [
        ("first\nsecond", 200, "first"),
        ("\n\n  padded   words \t here \nnext", 200, "padded words here"),
        ("x" * 300, 120, "x" * 120),
        ("", 200, "Quiet"),
        ("   \n  ", 200, "Quiet"),
    ],
)
def test_first_line(message, limit, expected):
    assert first_line(Quiet(message), limit) == expected


def test_a_restart_is_kept_for_the_machines_troubles_not_the_codes():
    from common.base.errors import raised_at, retryable

    assert not retryable(RuntimeError("a bug")) and not retryable(TypeError("missing argument"))
    assert retryable(OSError(28, "No space left on device")) and retryable(MemoryError())
    try:
        try:
            raise ConnectionResetError("the tracking server went away")
        except OSError as e:
            raise RuntimeError("logging failed") from e
    except RuntimeError as wrapped:
        assert retryable(wrapped)  # raised from an OS error: the machine's
        assert raised_at(wrapped).startswith(f"{__file__}:")  # this test's own line, the user's code
