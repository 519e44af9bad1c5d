"""common/trial/families.py: one record per family, and everything built from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from common.report.runs import FAMILY_LABEL
from common.trial.config import ConfigError, VAEConfig
from common.trial.families import FAMILIES, Family, config_class, for_family, from_checkpoint, get, register
from common.trial.models import ConvVAE, Generator
from common.trial.tasks.vae import VAETask


def test_the_built_in_families_in_report_order():
    assert list(FAMILIES)[:3] == ["vae", "dcgan", "vaegan"]
    assert [FAMILIES[n].config().family for n in ("vae", "dcgan", "vaegan")] == ["vae", "dcgan", "vaegan"]
    assert {n: f.decodes for n, f in FAMILIES.items() if n in ("vae", "dcgan", "vaegan")} == {
        "vae": True,
        "dcgan": False,
        "vaegan": True,
    }


def test_an_unknown_family_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="unknown model family 'gpt'; choose one of vae, dcgan, vaegan"):
        get("gpt")
    with pytest.raises(ConfigError, match="prefix 'gpt' is not a model family"):
        for_family({"gpt.lr": 1}, "vae")


def test_a_record_whose_config_names_another_family_is_refused():
    with pytest.raises(ValueError, match="VAEConfig.family is 'vae', not 'other'"):
        register(Family("other", VAEConfig, VAETask, "Other", curve_metrics=(), decodes=True))
    assert "other" not in FAMILIES


def test_from_checkpoint_builds_each_familys_sampler():
    vae = ConvVAE(8, 8, 16)
    assert isinstance(
        from_checkpoint(
            {"family": "vae", "latent_dim": 8, "base_channels": 8, "hidden_dim": 16}, {"vae": vae.state_dict()}
        ),
        ConvVAE,
    )
    g = Generator(8, 8, 16)
    got = from_checkpoint({"family": "dcgan", "latent_dim": 8, "g_channels": 8, "g_hidden": 16}, {"g": g.state_dict()})
    assert isinstance(got, Generator) and not got.training
    assert all(torch.equal(a, b) for a, b in zip(got.state_dict().values(), g.state_dict().values()))


def test_a_toy_family_registered_in_one_place_runs_a_one_epoch_sweep(ray_session, workdir, tracking_uri):
    import toy_family
    from ray import cloudpickle

    from common.sweep.driver import SweepOptions
    from trainables.sweep import run

    cloudpickle.register_pickle_by_value(toy_family)  # the workers' PYTHONPATH lacks tests/
    TOY = toy_family.TOY

    assert config_class("toy") is TOY.config and FAMILY_LABEL["toy"] == "Toy GAN"
    space = Path("toy.py")
    space.write_text(
        'family = "toy"\nmetric = "val_classifier_fd"\nmode = "min"\nnum_samples = 1\nmax_epochs = 1\n'
        'defaults = {"g_channels": 16, "d_channels": 16, "eval_samples": 64, "val_size": 128}\n'
        'resources = {"cpu": 1, "gpu": 0}\n'
    )
    summary = run(
        SweepOptions(
            space=str(space),
            data="synthetic",
            tracking_uri=tracking_uri,
            eval_n=0,
            storage=str(workdir / "ray_results"),
        )
    )
    client = MlflowClient(tracking_uri)
    trial = client.get_run(summary.best["toy"].mlflow_run_id)
    assert trial.data.tags["family"] == "toy" and trial.data.tags["trial_status"] == "completed"
    assert trial.data.metrics["toy_epochs"] == 1.0  # the toy task's own hook ran in the Ray worker
    assert list((workdir / "ray_results").rglob("train_toy_*")), "Tune names the trial after the family"
    assert Path(summary.report).resolve() == (workdir / "report" / "index.html").resolve()
    report = (workdir / "report" / "report.md").read_text()
    assert "Toy GAN" in report and "Toy generator" in report


def test_a_family_registered_anywhere_reaches_the_reports_words():
    from dataclasses import dataclass
    from typing import ClassVar

    from common.report.mitigations import catalogue
    from common.report.quality import _probe_note
    from common.report.seeds import budget, budget_blocks
    from common.trial.claims import Goal, Mitigation
    from common.trial.config import DCGANConfig
    from common.trial.tasks.dcgan import DCGANTask

    @dataclass(frozen=True)
    class ThrowConfig(DCGANConfig):
        family: ClassVar[str] = "throw"

    register(
        Family(
            "throw",
            ThrowConfig,
            DCGANTask,
            "Throwaway",
            curve_metrics=(),
            decodes=False,
            probe_on="its own codes",
            param_rows=(("Throwaway generator", "n_params_g", "1.24M"),),
            mitigations=(
                Mitigation("throwing", ("gan_loss",), lambda p: p.get("gan_loss") == "hinge", "on: hinge", ()),
            ),
            goals=(Goal("throws (higher is better)", "test_throws", "none", ">=", 2.9),),
            budget_epochs=7,
        )
    )
    try:
        assert FAMILY_LABEL["throw"] == "Throwaway" and config_class("throw") is ThrowConfig
        note = _probe_note({"vae": None, "throw": None})
        assert "VAE on μ, the posterior mean; Throwaway on its own codes;" in note
        assert [m.family for m in catalogue() if m.name == "throwing"] == ["throw"]
        assert budget(FAMILIES["throw"]) == (7, {"n_params_g": 1.24e6})
        trials = [
            {
                "params": {"family": "throw", "seed": str(s), "train_subset": "10000", "max_epochs": "7"},
                "metrics": {"n_params_g": 1.24e6, "test_throws": 3.0 + s / 100},
                "tags": {"trial_status": "completed"},
            }
            for s in (1, 2, 3)
        ]
        blocks = budget_blocks(trials, lambda t, m: [1.0])
        rows = next(b[2] for b in blocks if b[0] == "table")
        row = next(r for r in rows if r[0] == "Throwaway: throws (higher is better) (`test_throws`)")
        assert row[3].startswith("3.02 ± 0.01") and row[-1] == "met"  # the winners' column, judged on its interval
        assert "Throwaway <= 7 epochs" in blocks[1][1]
    finally:
        FAMILIES.pop("throw")
