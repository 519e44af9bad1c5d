"""Calibrating the mode-collapse detector: how diverse a set of samples is, against real images.

The detector reads ``diversity``: the median distance from each sample to its nearest other
sample in the domain classifier's features, over the same for as many validation images
(common.metrics.maths.nearest_neighbour_distance): near 0 when most samples have a near-duplicate. This prints it,
with class coverage (the earlier detector's number), for: two disjoint draws of real validation
images; the fixed-z samples of every completed trial of the given experiments (their best.pt);
and each GAN checkpoint forced to collapse, its generator fed only k distinct z, each repeated
to n samples, exactly or with a little noise added to z (near-duplicates).

    python bench/collapse.py --tracking-uri sqlite:///$E/mlflow.db --experiments dcgan_winners_s42 \\
        vae_winners --data ../shared/data/cifar10-jpeg.tar.gz --n 1000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.base.data import load_dataset, split_indices  # noqa: E402
from common.metrics.classifier import get_classifier, load_classifier  # noqa: E402
from common.metrics.maths import class_balance, nearest_neighbour_distance  # noqa: E402
from common.trial.families import (
    FAMILIES,  # noqa: E402
    from_checkpoint,  # noqa: E402
)


def scores(classifier, images: torch.Tensor, real_nn: float) -> tuple[float, float]:
    """(diversity: the nearest-neighbour distance over the real images', class coverage) of
    images (N,3,32,32), uint8 or [-1, 1]."""
    feats, logits = classifier.features_and_logits(images)
    return nearest_neighbour_distance(feats) / real_nn, class_balance(logits.argmax(1), classifier.num_classes)[0]


def checkpoints(uri: str, experiments: list[str]):
    """(label, best.pt contents) of every completed trial of ``experiments``."""
    from mlflow.tracking import MlflowClient

    from common.sweep.best import best_checkpoint

    client = MlflowClient(uri)
    for name in experiments:
        exp = client.get_experiment_by_name(name)
        query = "tags.`sweep.role` = 'trial' and tags.trial_status = 'completed'"
        for run in client.search_runs([exp.experiment_id], query):
            yield f"{name}/{run.info.run_id[:8]}", best_checkpoint(uri, run.info.run_id)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--experiments", nargs="+", default=[])
    p.add_argument("--data", required=True)
    p.add_argument("--n", type=int, default=1000)
    args = p.parse_args()
    data = load_dataset(args.data if args.data == "synthetic" else str(Path(args.data).resolve()))
    classifier = load_classifier(get_classifier(data, log=lambda *a: None)[0])
    _, val = split_indices(len(data.train_x), 10_000, 5_000, seed=42, val_seed=0)
    real = data.train_x[val[torch.randperm(len(val), generator=torch.Generator().manual_seed(0))]]  # classes mixed
    real_nn = nearest_neighbour_distance(classifier.features_and_logits(real[: args.n])[0])
    rows = [("real validation images, a second draw", "real", *scores(classifier, real[args.n : 2 * args.n], real_nn))]
    for label, ckpt in checkpoints(args.tracking_uri, args.experiments):
        family, model = ckpt["config"]["family"], from_checkpoint(ckpt["config"], ckpt["model"])
        z = torch.randn(args.n, ckpt["config"]["latent_dim"], generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            rows.append(
                (f"{label} (epoch {ckpt['epoch']})", family, *scores(classifier, model.from_latent(z), real_nn))
            )
            if FAMILIES[family].decodes:
                continue
            for k, jitter in ((1, 0.0), (4, 0.0), (10, 0.0), (10, 0.1), (50, 0.1), (50, 0.3)):  # forced collapse
                near = z[:k].repeat_interleave(-(-args.n // k), 0)[: args.n]  # k distinct z, each repeated,
                near = near + jitter * torch.randn(near.shape, generator=torch.Generator().manual_seed(1))  # ± jitter
                what = f"{label}, forced: {k} distinct z" + (f" ± {jitter}" if jitter else "")
                rows.append((what, family, *scores(classifier, model.from_latent(near), real_nn)))
    print(
        f"data {data.source}, n = {args.n} per set, domain classifier features; reference: {args.n} validation images"
    )
    print("| set | family | diversity (÷ real) | class coverage |\n|---|---|---|---|")
    for label, family, div, cov in rows:
        print(f"| {label} | {family} | {div:.3f} | {cov:.2f} |")


if __name__ == "__main__":
    main()
