"""common/base/objective.py: which of two values is better, the best of many, in both modes."""

import math

import pytest

from common.base.objective import Objective, non_dominated

LOSS, ACC = Objective("val_loss", "min"), Objective("val_acc", "max")


def test_better_is_strict_and_follows_the_mode():
    assert LOSS.better(1.0, 2.0) and not LOSS.better(2.0, 1.0) and not LOSS.better(1.0, 1.0)
    assert ACC.better(2.0, 1.0) and not ACC.better(1.0, 2.0) and not ACC.better(1.0, 1.0)
    assert LOSS.better(5.0, None) and ACC.better(-5.0, None)  # anything finite beats no value yet


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_value_never_wins(bad):
    assert not LOSS.better(bad, 1.0) and not ACC.better(bad, 1.0) and not LOSS.better(bad, None)


def test_best_skips_non_finite_values_and_is_none_without_any():
    values = [3.0, math.nan, 1.0, -math.inf, 2.0]
    assert LOSS.best(values) == 1.0 and ACC.best(values) == 3.0
    assert LOSS.best([]) is None and ACC.best([math.nan]) is None


def test_ranked_pick_and_running_best():
    rows = [("a", 2.0), ("b", 1.0), ("c", 3.0), ("d", 1.0)]
    assert [r for r, _ in LOSS.ranked(rows, key=lambda r: r[1])] == ["b", "d", "a", "c"]  # ties keep order
    assert [r for r, _ in ACC.ranked(rows, key=lambda r: r[1])] == ["c", "a", "b", "d"]
    assert LOSS.pick(rows, key=lambda r: r[1])[0] == "b" and ACC.pick(rows, key=lambda r: r[1])[0] == "c"
    assert LOSS.running_best([math.nan, 3.0, 4.0, 1.0]) == [None, 3.0, 3.0, 1.0]
    assert ACC.running_best([3.0, 4.0, 1.0]) == [3.0, 4.0, 4.0]


def test_sign_direction_and_a_bad_mode():
    assert (LOSS.sign, LOSS.direction, ACC.sign, ACC.direction) == (1.0, "minimize", -1.0, "maximize")
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'lowest'"):
        Objective("val_loss", "lowest")


def test_non_dominated_mixed_directions():
    # (val_probe_acc max, val_classifier_fd min)
    points = [(0.40, 50.0), (0.35, 40.0), (0.30, 45.0), (0.38, 60.0), (0.20, 35.0), (0.40, 50.0)]
    goals = lambda *modes: [Objective(f"m{j}", m) for j, m in enumerate(modes)]
    assert non_dominated(points, goals("max", "min")) == [0, 1, 4, 5]  # equal points both stay
    assert non_dominated(points, goals("min", "max")) == [2, 3, 4]
    assert non_dominated(points, goals("max", "max")) == [0, 3, 5]
    assert non_dominated([(1.0, 2.0, 3.0), (1.0, 2.0, 4.0)], goals("min", "min", "min")) == [0]
    assert non_dominated([], goals("max", "min")) == []
    with pytest.raises(ValueError, match="2 objective values"):
        non_dominated([(1.0,)], goals("max", "min"))
