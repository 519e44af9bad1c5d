"""A simulated MPS device for CI: tensors "on MPS" are CPU tensors with a tag, and float64 on them
raises as Apple's MPS backend does.

``FakeMPS`` is a ``TorchFunctionMode``. While it is active:

- ``x.to("mps")``, ``module.to("mps")`` and factories with ``device="mps"`` give CPU tensors
  tagged as device tensors (a Parameter is tagged in place, as ``Module.to`` keeps its identity);
- every op with a tagged input tags its outputs;
- ``.cpu()`` / ``.to("cpu")`` of a tagged tensor gives an untagged copy;
- float64 in or out of an op on a tagged tensor raises MPS's own ``TypeError``, naming the op;
- ``.numpy()`` of a tagged tensor raises, as it does on a real device.

TorchScript runs outside the mode: a scripted module's outputs are tagged by a global forward
hook when its inputs are, and ``opaque(fn)`` does the same for a scripted function.

The code under test sees ``torch.device("mps")`` wherever it passes its device around, so every
path that moves data to the device is covered without Apple hardware.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

_TAG = "_on_fake_mps"
_MOVES = {torch.Tensor.to, torch.Tensor.cpu}


def _is_mps(device) -> bool:
    if isinstance(device, str):  # only a device string: other str arguments (reduction="mean") pass
        return device == "mps" or device.startswith("mps:")
    return isinstance(device, torch.device) and device.type == "mps"


def _tagged(t) -> bool:
    return isinstance(t, torch.Tensor) and getattr(t, _TAG, False)


def _target(func, args, kwargs):
    """The device a ``Tensor.to`` / ``.cpu`` call moves to, or None when it moves nowhere."""
    if func is torch.Tensor.cpu:
        return torch.device("cpu")
    for a in (*args[1:], kwargs.get("device")):
        if isinstance(a, torch.device) or (isinstance(a, str) and a.split(":")[0] in ("cpu", "mps", "cuda")):
            return torch.device(a)
    return None


def _tag_like(inputs, out):
    """Tag ``out``'s tensors when any tensor in ``inputs`` is tagged; return ``out``."""
    if any(_tagged(t) for t in tree_flatten(inputs)[0]):
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                setattr(t, _TAG, True)
    return out


def opaque(fn):
    """``fn`` (e.g. a TorchScript function) with its outputs on the device its inputs are on."""
    return lambda *args, **kwargs: _tag_like((args, kwargs), fn(*args, **kwargs))


class FakeMPS(TorchFunctionMode):
    def __enter__(self):
        self._hook = nn.modules.module.register_module_forward_hook(lambda m, args, out: _tag_like(args, out))
        return super().__enter__()

    def __exit__(self, *exc):
        self._hook.remove()
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        target = _target(func, args, kwargs) if func in _MOVES else None
        to_mps = _is_mps(target) or _is_mps(kwargs.get("device"))
        cpu = torch.device("cpu")
        if to_mps:  # only moves and factories: torch._C._nn._parse_to must still see "mps"
            args, kwargs = tree_map(lambda a: cpu if _is_mps(a) else a, (args, kwargs))
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        on_device = to_mps or any(_tagged(t) for t in inputs)
        if func is torch.Tensor.numpy and on_device:
            raise TypeError(
                "can't convert mps:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
                "to host memory first."
            )
        out = func(*args, **kwargs)
        leaving = target is not None and target.type == "cpu" and _tagged(args[0])
        if leaving:  # a copy: the device tensor stays tagged
            return out.clone() if out is args[0] else out
        if on_device:
            outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            if any(t.dtype == torch.float64 for t in (*inputs, *outputs)):
                raise TypeError(
                    f"Cannot convert a MPS Tensor to float64 dtype as the MPS framework doesn't support "
                    f"float64. Please use float32 instead. (op {getattr(func, '__name__', func)})"
                )
            if to_mps and out is args[0] and not isinstance(out, nn.Parameter):
                out = out.clone()  # moving a CPU tensor must not tag the caller's CPU original
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    setattr(t, _TAG, True)
        return out
