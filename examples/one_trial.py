"""The public API in one trial: build a config, train it, evaluate its best checkpoint, print.

    python examples/one_trial.py                      # CIFAR-10 (torchvision's download), 1 epoch
    python examples/one_trial.py --data synthetic --n 64

No Ray: ``LocalSession`` stands in for Tune (what ``run_sweep.py --single-trial`` does). MLflow
logs to ./mlflow.db, one run per call; the final numbers are the test split's.
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the checkout

from mlflow.tracking import MlflowClient  # noqa: E402

from common.base import tracking  # noqa: E402
from common.base.data import load_dataset  # noqa: E402
from common.trial.checkpoint import BEST_FILE, load_checkpoint  # noqa: E402
from common.trial.config import DCGANConfig  # noqa: E402
from common.trial.contract import LocalSession, SweepContext  # noqa: E402
from common.trial.families import evaluate_checkpoint  # noqa: E402
from common.trial.loop import run_trial  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--data", default="cifar10")
p.add_argument("--n", type=int, default=1000, help="generated images for the Inception evaluation")
args = p.parse_args()

# 1. A validated config: an unknown key or an out-of-range value is a ConfigError.
cfg = DCGANConfig.from_dict({"data": args.data, "max_epochs": 1, "lr_ratio": 2.0, "val_size": 128, "eval_samples": 64})
# 2. Where it logs: an MLflow experiment in the embedded sqlite store.
uri = "sqlite:///mlflow.db"
tracking.prepare_store(uri)
exp = tracking.get_or_create_experiment(MlflowClient(uri), "example", tracking.default_artifact_location(uri))
ctx = SweepContext(tracking_uri=uri, experiment_id=exp, parent_run_id=None, metric="val_classifier_fd", mode="min")
# 3. One trial: epochs, validation, checkpoints, MLflow; the best epoch chosen on validation.
with tempfile.TemporaryDirectory() as out:
    session = LocalSession(out)
    run_trial(cfg, ctx, session)
    # 4. Its best.pt (the MLflow run's artifact, kept in the trial folder too) through the standard protocol.
    run_id = session.results[-1]["mlflow_run_id"]
    best = load_checkpoint(MlflowClient(uri).download_artifacts(run_id, f"checkpoints/{BEST_FILE}", out))
    scores = evaluate_checkpoint(best, load_dataset(args.data), n=args.n, metrics=("fid", "kid"))
print(
    f"run {run_id}, best epoch {best['epoch']}: Inception FID {scores['fid']:.2f}, KID {scores['kid']:.4f} "
    f"({args.n} generated vs all test images of {args.data})"
)
