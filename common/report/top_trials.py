"""The report's 'Top trials': per family, its best ``TOP_K`` trials by the (validation) objective with
the params that vary and their detector flags, how many were flagged, and which logged no objective."""

from __future__ import annotations

from mlflow import MlflowClient

from common.base.names import TRIAL_STATUS
from common.report.flags import flag_summary
from common.report.runs import FAMILY_LABEL, FamilyTrials, epochs_run, measured_on_run
from common.report.values import fmt_value

TOP_K = 10


def top_trials_blocks(client: MlflowClient, families: dict[str, FamilyTrials]) -> list[tuple]:
    """The section: a table per family, best first."""
    blocks: list[tuple] = [("h2", "Top trials")]
    for name, fam in families.items():
        top = fam.ranked[:TOP_K]
        blocks.append(
            (
                "h3",
                f"{FAMILY_LABEL[name]}: top {len(top)} of {len(fam.trials)} trials "
                f"by best {fam.objective.metric} ({fam.objective.mode}, validation)",
            )
        )
        if fam.best is not None:
            blocks += _table(client, fam)
        blocks.append(("p", f"Flagged {FAMILY_LABEL[name]} trials: {flag_summary([t.flags for t in fam.trials])}"))
        if missing := [t for t in fam.trials if t.objective is None]:
            desc = ", ".join(f"{t.trial_id} ({t.tags.get('trial_status', '?')})" for t in missing[:TOP_K])
            more = " ..." if len(missing) > TOP_K else ""
            blocks.append(("p", f"{len(missing)} trial(s) logged no {fam.objective.metric}: {desc}{more}"))
    if not families:
        blocks.append(("p", "No trials."))
    return blocks


def _table(client: MlflowClient, fam: FamilyTrials) -> list[tuple]:
    """What the objective was measured on, the params that vary, and the top trials' table."""
    rows = [
        [
            str(i),
            t.trial_id,
            t.tags.get(TRIAL_STATUS, "?"),
            *[t.params.get(k, "—") for k in fam.varying],
            fmt_value(fam.objective.metric, t.objective),
            str(epochs_run(client, t) or "—"),
            ", ".join(t.flags) or "—",
        ]
        for i, t in enumerate(fam.ranked[:TOP_K], 1)
    ]
    return [
        (
            "p",
            f"{fam.objective.metric} measured on: {measured_on_run(client, fam.objective.metric, fam.best)}. "
            f"Varying params: {', '.join(fam.varying) or 'none'}.",
        ),
        (
            "table",
            ["rank", "trial_id", TRIAL_STATUS, *fam.varying, f"best {fam.objective.metric}", "epochs", "flags"],
            rows,
        ),
    ]
