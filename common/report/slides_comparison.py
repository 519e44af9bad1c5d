"""The report's 'Comparison with the slides': the slides' published numbers beside each family's best trial, what
each was measured on, the seed-to-seed spread (common/report/seeds.py) and the models' sizes."""

from __future__ import annotations

from mlflow import MlflowClient

from common.base import slides
from common.report.runs import FAMILY_LABEL, FamilyTrials, Trial, epochs_run, measured_on_run
from common.report.seeds import spread_blocks
from common.report.values import fmt_value
from common.trial.families import FAMILIES

# (label, metric key, published value). Source: ../shared/seed/vae_vs_dcgan_slides.md. test_* keys
# are the best epoch's weights (chosen on validation) scored once on the test split (common/trial/loop.py).
SEED_ROWS = [
    (
        "Negative ELBO, the slides' convention: MSE-sum + KL (nats/image, lower is better)",
        "test_mse_kl",
        f"{slides.NEG_ELBO:.2f}",
    ),
    ("Reconstruction: squared error summed over the 3,072 values in [-1, 1]", "test_recon", f"{slides.RECON:.2f}"),
    ("KL (nats/image)", "test_kl", f"{slides.KL:.2f}"),
    ("Negative ELBO in bits/dim (discretised decoder likelihood, constants included)", "test_bpd", "not reported"),
    ("Linear probe accuracy", "test_probe_acc", f"{slides.PROBE_ACC:.2%}"),
    ("Probe baseline: raw pixels, same protocol", "test_probe_acc_pixels", "not reported"),
    ("Probe baseline: the same net randomly initialised, same protocol", "test_probe_acc_random_init", "not reported"),
    ("G loss", "g_loss", f"{slides.G_LOSS:g}"),
    ("D loss", "d_loss", f"{slides.D_LOSS:g}"),
    ("G/D loss ratio", "loss_ratio", f"{slides.LOSS_RATIO:g}"),
    ("Train time", "train_time_s", "VAE 22 min (20 epochs, M1 Pro MPS); DCGAN 45 min (40 epochs)"),
    (
        "Sample score: domain-classifier FD, 1,000 fixed-z samples (lower is better)",
        "test_classifier_fd",
        "not measured",
    ),
]
SEED_CONTEXT = "Seed: CIFAR-10, 10k train subset, 10k test images, seed 42, M1 Pro (MPS), per the slides."
NOTES = [
    SEED_CONTEXT,
    "Ours: test_* rows are the best trial's best epoch (the one its best.pt holds, chosen on the "
    "validation objective) scored once on the test split; training rows (losses, time) are final-epoch.",
    "The slides' 'ELBO' is MSE-sum + KL: a negative ELBO only up to the constants of a Gaussian decoder with "
    "sigma^2 = 1/2 on [-1, 1]. The bits/dim row is the negative ELBO under the decoder's likelihood "
    "discretised to the 8-bit data, constants included: (nll + KL) / (3,072 ln 2).",
    "A probe accuracy means something only beside its baselines: the same logistic-regression protocol on "
    "raw pixels, and on the same architecture randomly initialised (rows below it).",
]


def slides_comparison_blocks(client: MlflowClient, families: dict[str, FamilyTrials]) -> list[tuple]:
    """The section: one row per ``SEED_ROWS`` entry, a column per family's best trial."""
    ran = [n for n in FAMILY_LABEL if n in families and families[n].trials]  # a column only for what ran
    best = {name: families[name].best for name in ran if families[name].best is not None}
    cols = [f"ours: best {FAMILY_LABEL[n]} trial ({best[n].trial_id if n in best else 'none'})" for n in ran]
    return [
        ("h2", "Comparison with the slides"),
        ("table", ["metric", "the slides (published)", *cols, "measured on"], _rows(client, best, ran)),
        ("ul", NOTES + _best_notes(client, families)),
        *spread_blocks({n: [t.as_dict() for t in f.trials] for n, f in families.items()}),
        ("h3", "Model sizes (parameters)"),
        ("table", ["model", "the slides (published)", "ours (best trial)", "trial"], _sizes(best, ran)),
    ]


def _cell(best: dict[str, Trial], name: str, key: str) -> str:
    return fmt_value(key, best[name].metric(key)) if name in best else "—"


def _rows(client: MlflowClient, best: dict[str, Trial], ran: list[str]) -> list[list[str]]:
    rows = []
    for label, key, seed in SEED_ROWS:
        on = {n: measured_on_run(client, key, t) for n, t in best.items() if t.metric(key) is not None}
        if len(set(on.values())) > 1:  # the families were measured differently: say each
            text = "; ".join(f"{FAMILY_LABEL[n]}: {c}" for n, c in on.items())
        else:
            text = next(iter(on.values()), "not logged by the best trials")
        rows.append([label, seed, *[_cell(best, n, key) for n in ran], text])
    return rows


def _best_notes(client: MlflowClient, families: dict[str, FamilyTrials]) -> list[str]:
    """How each family's best trial was chosen, and what it ran."""
    notes = []
    for name, fam in families.items():
        if (t := fam.best) is None:
            notes.append(f"{FAMILY_LABEL[name]}: no trial logged {fam.objective.metric}, so there is no best trial.")
            continue
        notes.append(
            f"Best {FAMILY_LABEL[name]} trial {t.trial_id} (run {t.run_id}, parent {fam.parent.info.run_id}): "
            f"chosen by its best {fam.objective.metric} ({fam.objective.mode}, validation) among {len(fam.ranked)} trials that "
            "logged it; "
            f"{epochs_run(client, t) or '?'} epochs on {t.tags.get('device', '?')}, "
            f"status {t.tags.get('trial_status', '?')}."
        )
    return notes


def _sizes(best: dict[str, Trial], ran: list[str]) -> list[list[str]]:
    """Each family that ran, its nets: the registry entry's ``param_rows`` (the slides' size beside the
    best trial's), or for a family without them (a plugin's) every ``n_params_*`` its best trial logged."""
    rows = []
    for n in ran:
        trial = best[n].trial_id if n in best else "none"
        declared = FAMILIES[n].param_rows
        logged = sorted(k for k in (best[n].run.data.metrics if n in best else {}) if k.startswith("n_params_"))
        for label, key, published in declared or [
            (f"{FAMILY_LABEL[n]} {k[len('n_params_') :]}", k, "—") for k in logged
        ]:
            rows.append([f"{label} ({key})", published, _cell(best, n, key), trial])
    return rows
