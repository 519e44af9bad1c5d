"""common/report/top_trials.py: each family's best trials by the validation objective, the params that
vary, the flags column and its counts."""

from __future__ import annotations

import re

from fake_sweep import section


def test_top_trials_and_importances(report):
    _, _, md, _ = report
    top = md.split("## Top trials")[1].split("## Parameter importances")[0]
    for i in range(3):
        assert f"vae_{i:05d}" in top and f"dcgan_{i:05d}" in top
    assert "latent_dim" in top and "lr_ratio" in top  # varying params detected
    assert "stopped" in top
    # ranked best first by the best validation value: vae_00001 before vae_00000 before vae_00002
    assert top.index("vae_00001") < top.index("vae_00000") < top.index("vae_00002")
    imp = md.split("## Parameter importances")[1]
    assert re.search(r"VAE: .*replayed .* of 3 completed trials", imp) and "noisy" in imp
    assert "latent_dim" in imp
    assert "DCGAN: only 2 completed" in imp  # one DCGAN trial was stopped


def test_flags_column_and_counts(mitigations_report):
    _, md, _ = mitigations_report
    top = section(md, "Top trials")
    head = next(line for line in top.splitlines() if line.startswith("| rank"))
    assert head.endswith("| flags |") and "best val_probe_acc" in head  # multi-objective: ranked by the first
    assert "diverged@3" in next(line for line in top.splitlines() if "dcgan_00002" in line)
    assert "collapsed@2, mode collapse" in next(line for line in top.splitlines() if "dcgan_00003" in line)
    assert "posterior collapse" in next(line for line in top.splitlines() if "vae_00015" in line)
    assert "stopped" in next(line for line in top.splitlines() if "vae_00016" in line)
    assert "Flagged VAE trials: 2 of 7; posterior collapse: 1; stopped: 1." in top
    assert "Flagged DCGAN trials: 2 of 4; collapsed: 1; diverged: 1; mode collapse: 1." in top
