"""Detector flags: what went wrong in one trial (``trial_flags``) and how often over many (``flag_summary``).
Pure: reads a trial's final metrics and tags."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from common.base.names import TRIAL_STATUS


def trial_flags(metrics: dict, tags: dict) -> list[str]:
    """Detector flags of one trial: ``diverged@E`` / ``collapsed@E`` (pruned by collapse_patience) at epoch E,
    ``stopped`` (ASHA), ``failed``; ``posterior collapse`` / ``mode collapse`` when the final metric is 1, or
    ``transient ... collapse@E`` when only the tag ``detector.<name>`` (first epoch fired) says it did; and
    ``randconv_fd biased`` (tag metric_bias)."""
    status, flags = tags.get(TRIAL_STATUS), []
    if status in ("diverged", "collapsed"):
        flags.append(f"{status}@{tags.get(status + '_epoch', '?')}")
    elif status in ("stopped", "failed"):
        flags.append(status)
    for key in ("posterior_collapse", "mode_collapse"):
        label = key.replace("_", " ")
        if metrics.get(key) == 1:
            flags.append(label)
        elif fired := tags.get(f"detector.{key}"):
            flags.append(f"transient {label}@{str(fired).removeprefix('epoch ')}")
    return flags + (["randconv_fd biased"] if "metric_bias" in tags else [])


def flag_kinds(flags: Sequence[list[str]], only: Sequence[str] | None = None) -> Counter:
    """How many flags of each kind ('diverged@3' is 'diverged') over trials' ``trial_flags``,
    counting only the kinds in ``only`` when given."""
    kinds = (f.split("@")[0] for fs in flags for f in fs)
    return Counter(k for k in kinds if only is None or k in only)


def flag_summary(flags: Sequence[list[str]]) -> str:
    """'2 of 5; diverged: 1; stopped: 1.' from each trial's ``trial_flags``."""
    kinds = flag_kinds(flags)
    return f"{sum(map(bool, flags))} of {len(flags)}" + "".join(f"; {k}: {n}" for k, n in sorted(kinds.items())) + "."
