"""common/report/flags.py: one trial's detector flags and their summary over many."""

from __future__ import annotations

from common.report.flags import flag_summary, trial_flags


def test_flags_and_summary():
    assert trial_flags({"posterior_collapse": 1.0}, {"trial_status": "diverged", "diverged_epoch": "3"}) == [
        "diverged@3",
        "posterior collapse",
    ]
    assert trial_flags({"mode_collapse": 1.0, "posterior_collapse": 0.0}, {"trial_status": "stopped"}) == [
        "stopped",
        "mode collapse",
    ]
    assert trial_flags({"mode_collapse": 0.0}, {"trial_status": "completed"}) == []
    assert trial_flags({}, {"trial_status": "completed", "metric_bias": "x"}) == ["randconv_fd biased"]
    collapsed = {"trial_status": "collapsed", "collapsed_epoch": "4", "detector.mode_collapse": "epoch 2"}
    assert trial_flags({"mode_collapse": 1.0}, collapsed) == ["collapsed@4", "mode collapse"]
    assert trial_flags(
        {"posterior_collapse": 0.0}, {"trial_status": "completed", "detector.posterior_collapse": "epoch 2"}
    ) == ["transient posterior collapse@2"]
    assert (
        flag_summary([["diverged@3"], [], ["diverged@1", "mode collapse"]]) == "2 of 3; diverged: 2; mode collapse: 1."
    )
