"""Trial checkpoints: the two files, what each holds, and loading them with ``weights_only=True``.

- ``state.pt`` (one per epoch, in Tune's ``checkpoint_<n>`` folder): everything a restarted trial
  needs: the task's models and optimizers, the RNG states, its MLflow run id, the best value and
  weights so far, the metric history, MLflow writes still pending.
- ``best.pt`` (an MLflow artifact, ``checkpoints/best.pt``, of each trial run): the trial config,
  the best epoch and ``Task.export_state()`` of that epoch; what the final stage, ``--sample`` and
  ``--check`` read.

Both hold tensors and plain containers only, so loading refuses a file that carries pickled code.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from common.base.errors import UserError, first_line

STATE_FILE = "state.pt"
BEST_FILE = "best.pt"
CHECKPOINT_PREFIX = "checkpoint_"  # Tune's checkpoint folder names (LocalSession uses the same)


def snapshot(state: Any) -> Any:
    """A copy of ``state`` (nested dicts, lists and tuples of tensors, as ``Task.export_state()``
    returns) on the CPU that no later optimiser step can touch: a module's ``state_dict()``
    shares storage with the live weights, so keeping it as the best epoch's would keep the last."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return type(state)((k, snapshot(v)) for k, v in state.items())
    if isinstance(state, (list, tuple)):
        return type(state)(snapshot(v) for v in state)
    return state


def save_best(path: Path, cfg, best_model: dict) -> None:
    """best.pt: ``{"config": cfg.to_dict(), "epoch": n, "model": name -> state_dict}``."""
    torch.save({"config": cfg.to_dict(), **best_model}, path)


def save_state(folder: Path, epoch: int, task, generator: torch.Generator, **trial: Any) -> None:
    """state.pt in ``folder`` after ``epoch`` (1-based): the task, the RNGs and ``trial``'s entries
    (run_id, trial_id, best, history, train_time_s, mlflow_pending, best_model)."""
    cuda = torch.cuda.get_rng_state_all() if task.device.type == "cuda" else None
    torch.save(
        {
            "epoch": epoch,
            **trial,
            "task": task.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "data_rng": generator.get_state(),
            "cuda_rng": cuda,
        },
        folder / STATE_FILE,
    )


class CheckpointError(UserError):
    """A checkpoint file that cannot be used: missing, truncated, corrupt or not plain tensors."""


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint (``state.pt`` or ``best.pt``) with ``weights_only=True``: they hold
    tensors and plain containers only, so a file carrying pickled code is refused, never run."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} is missing") from None
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and plain containers "
            "(refused: weights_only=True); it was not written by this project"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({first_line(e, 160)})") from None


def candidates(ckpt_dir: Path) -> list[Path]:
    """``ckpt_dir`` first, then the older checkpoints beside it (Tune keeps the last two), newest first."""
    if not ckpt_dir.name.startswith(CHECKPOINT_PREFIX):
        return [ckpt_dir]
    older = [p for p in ckpt_dir.parent.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name < ckpt_dir.name]
    return [ckpt_dir, *sorted(older, reverse=True)]


def restore(ckpt_dir: str | None, task, generator: torch.Generator, trial_id: str) -> dict[str, Any]:
    """Load the newest usable checkpoint into ``task`` and the RNGs; {} to start from scratch.
    A corrupt one is refused with a warning naming it, and the previous one is tried. Another
    trial's checkpoint (PBT's exploit) keeps this trial's lr and betas: the state says
    ``cloned_from`` = that trial's id."""
    if not ckpt_dir:
        return {}
    for candidate in candidates(Path(ckpt_dir)):
        try:
            state = load_checkpoint(candidate / STATE_FILE)
        except CheckpointError as e:
            warnings.warn(f"{e}; falling back to the previous checkpoint")
            continue
        donor = state.get("trial_id")
        cloned = donor is not None and donor != trial_id
        task.load_state_dict(state["task"], keep_hyperparams=cloned)
        if cloned:
            state = {**state, "cloned_from": donor}
        torch.set_rng_state(state["torch_rng"])
        generator.set_state(state["data_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        return state
    warnings.warn(f"no usable checkpoint in or before {ckpt_dir}; the trial starts again from epoch 0")
    return {}
