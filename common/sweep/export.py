"""A finished trial run as one JSON file to commit: what outlives the machine and its MLflow store.

``bench/export_runs.py`` writes them for a whole experiment; ``run_sweep.py --export DIR`` writes
each trial's as it finishes, and every finished trial's again after the end stage (its Inception
numbers). A file ``DIR/<experiment>/<family>-<run id[:8]>.json`` per run whose ``trial_status`` is
``completed`` or ``stopped`` (ASHA), rewritten whenever it is exported again, holds:
``params`` (the resolved config), ``objective`` (its name, mode and the value per epoch, 1-based),
``validation`` (every ``val_*`` metric per epoch), ``test`` (the ``test_*`` metrics of the epoch
chosen on validation, ``test.epoch``; ``test_weights`` says they score that epoch's snapshot, and is
null for a run logged before the loop kept one, whose ``test`` scored its last epoch's weights) and ``final`` (the final stage's FID & co., with its
``eval.*`` tags), the image counts ``n`` of each split, ``preset`` (the ``sweep.preset`` tag, e.g.
"slides", or null), ``selected_by`` (the ``selected_by`` tag: which search chose this run as its
best, or null), ``data``, ``data_hash`` and ``git_commit`` (a data path keeps only its file name: no
folder of the machine is written), and where it ran: ``device``, ``precision_used``,
``deterministic_used``, ``threads``, ``machine`` (``common.base.device.describe_machine``: cores,
CPU model, native bf16) and ``cpu_flags`` (the CPU features that change numerics). Every field is
read from the run in the MLflow store, nothing from the exporting machine or a command line: an
export is a function of the store (a run logged before a tag existed gets null). ``bench/tables.py``
rebuilds BENCHMARKS.md's tables, and the report's "Best within the slides' budget" table, from
these files alone.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from common.base.names import (
    CPU_FLAGS,
    MACHINE_TAG,
    PER_FAMILY,
    PRESET_TAG,
    SELECTED_BY,
    SWEEP_ROLE,
    TEST_WEIGHTS_TAG,
    TRIAL_STATUS,
)
from common.trial.families import config_class

FINISHED = ("completed", "stopped")
FINAL = ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "is10")
WHERE = ("device", "precision_used", "deterministic_used", "threads", MACHINE_TAG, CPU_FLAGS)  # run tags, verbatim
SIZES = {"train": "n_train_images", "val": "n_val_images", "test": "n_test_images"}


def run_record(client, run, experiment: str) -> dict:
    """One finished trial run (an ``mlflow.entities.Run``) as a JSON-able dict (the module docstring
    lists its keys)."""
    # 1. What it was: the config as logged, and the objective its sweep selected on.
    tags, metrics = run.data.tags, run.data.metrics
    parent = client.get_run(tags["mlflow.parentRunId"]) if "mlflow.parentRunId" in tags else None
    family = tags.get("family", run.data.params.get("family"))
    metric, mode = (parent.data.params.get("metric"), parent.data.params.get("mode")) if parent else (None, None)
    if metric in (None, PER_FAMILY):  # fixed runs of several families: each selected on its own default
        metric, mode = config_class(family).default_metric, "min"
    if "," in metric:  # multi-objective: the first is primary
        metric, mode = metric.split(",")[0], mode.split(",")[0]
    # 2. Its curves: every validation metric, per epoch.
    history = lambda key: {int(m.step): m.value for m in client.get_metric_history(run.info.run_id, key)}
    validation = {k: history(k) for k in sorted(metrics) if k.startswith("val_")}
    return {
        "experiment": experiment,
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "family": family,
        "status": tags.get(TRIAL_STATUS),
        "preset": tags.get(PRESET_TAG),
        "selected_by": tags.get(SELECTED_BY),
        "params": {k: _no_path(v) if k == "data" else v for k, v in run.data.params.items()},
        "objective": {"metric": metric, "mode": mode, "per_epoch": validation.get(metric) or history(metric)},
        "validation": validation,
        "test": {"epoch": _int(tags.get("test.epoch")), **{k: v for k, v in metrics.items() if k.startswith("test_")}},
        "test_weights": tags.get(TEST_WEIGHTS_TAG),  # "snapshot": the selected epoch's own weights
        "final": {
            **{k: metrics[k] for k in FINAL if k in metrics},
            **{k: v for k, v in tags.items() if k.startswith("eval.")},
        },
        "pbt": {k: v for k, v in tags.items() if k.startswith("pbt.")},  # a clone's switches (params: its start)
        "n": {split: _int(metrics.get(key)) for split, key in SIZES.items()},
        "n_params": {k: int(v) for k, v in metrics.items() if k.startswith("n_params")},
        "train_time_s": metrics.get("train_time_s"),
        "data": _no_path(tags.get("data")),
        "data_hash": tags.get("data_hash"),
        "git_commit": tags.get("git_commit"),
        **{k: tags.get(k) for k in WHERE},
    }


def export_run(client, run, experiment: str, out: str | Path) -> Path | None:
    """Write trial ``run``'s file (an ``mlflow.entities.Run``) under ``out/experiment/`` if it finished;
    its path, else None."""
    if run.data.tags.get(TRIAL_STATUS) not in FINISHED:
        return None
    family = run.data.tags.get("family", run.data.params.get("family"))
    path = Path(out) / experiment / f"{family}-{run.info.run_id[:8]}.json"
    record = run_record(client, run, experiment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def export(uri: str, experiment: str, out: str | Path) -> list[Path]:
    """Write one file per finished trial run of ``experiment``; the paths written."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"no experiment {experiment!r} in {uri}; list them in the MLflow UI")
    runs = client.search_runs([exp.experiment_id], f"tags.`{SWEEP_ROLE}` = 'trial'", max_results=5000)
    written = [export_run(client, r, experiment, out) for r in runs]  # searched once
    return [p for p in written if p]


@dataclass(frozen=True)
class Exporter:
    """Where a sweep exports its finished trials (``--export``): ``out/experiment/``."""

    out: str
    experiment: str

    @classmethod
    def into(cls, folder: str, experiment: str) -> "Exporter":
        """``--export folder``, expanded and absolute (the folder ``check_folders`` checked)."""
        return cls(str(Path(folder).expanduser().resolve()), experiment)

    def trial(self, client, run_id: str) -> None:
        """Export one trial run that just ended; a failure warns: the sweep goes on without the file."""
        try:
            export_run(client, client.get_run(run_id), self.experiment, self.out)
        except Exception as e:
            warnings.warn(f"could not export trial run {run_id} under {self.out}: {e}")

    def experiment_runs(self, uri: str) -> None:
        """Export every finished trial run of the experiment again (after the end stage: its FID &
        co.); a failure warns: the sweep is done."""
        try:
            export(uri, self.experiment, self.out)
        except Exception as e:
            warnings.warn(f"could not export the runs of {self.experiment} under {self.out}: {e}")


def load_records(folder: str | Path) -> list[dict]:
    """Every run file under ``folder`` and its subfolders (one per experiment), in path order;
    other JSON files there (a bench script's results) are not run files and are passed over."""
    records = [json.loads(p.read_text()) for p in sorted(Path(folder).rglob("*.json"))]
    return [r for r in records if isinstance(r, dict) and "objective" in r and "run_id" in r]


def _no_path(data: str | None) -> str | None:
    """A data source without the machine's folders (its file name; ``data_hash`` names the content)."""
    return Path(data).name if data and "/" in data else data


def _int(value) -> int | None:
    return None if value is None else int(float(value))
