"""Multi-node sweeps on a simulated cluster, the way Ray tests itself: ``ray.cluster_utils.Cluster``
starts a head and two worker nodes (separate raylets) on this machine. One worker declares a
GPU, the other the custom resource ``mps`` (an Apple node); ``tests/fake_accelerators.py`` keeps
the tensors on the CPU while each trial's device choice stays real. Tune's state and
checkpoints go to a real S3-compatible server (moto, on 127.0.0.1), so a trial that loses its
node continues from its checkpoint on another one.

Marked ``cluster``: run by ``make test-cluster``, which .ci/run calls after ``make test``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from common.sweep.driver import SweepOptions
from trainables.sweep import run

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
VAE = str(ROOT / "sweeps" / "vae_beta.py")
SMALL = (("eval_samples", "64"), ("batch_size", "64"), ("probe_every", "0"), ("val_size", "128"))


@pytest.fixture(scope="module")
def cluster(s3):
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    gpu = c.add_node(num_cpus=1, num_gpus=1)
    mac = c.add_node(num_cpus=1, resources={"mps": 1})
    c.wait_for_nodes()
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    ray.init(
        address=c.address,
        runtime_env={"env_vars": {"PYTHONPATH": path, **s3}, "worker_process_setup_hook": "fake_accelerators.install"},
    )
    yield SimpleNamespace(cluster=c, gpu=gpu.node_id[:12], mac=mac.node_id[:12])
    ray.shutdown()
    c.shutdown()


def trial_runs(uri: str, experiment: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], "tags.`sweep.role` = 'trial'")


def test_trials_spread_over_the_nodes_and_pin_to_what_each_node_has(cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # "Anywhere" (--gpus-per-trial 0): trials ask for a CPU only. On the GPU node they get no GPU
    # share, so they use its CPU (the GPU is for trials that reserved it); on the Apple node MPS.
    run(
        SweepOptions(
            space=VAE,
            data="synthetic",
            num_samples=4,
            max_epochs=1,
            tracking_uri=uri,
            experiment="anywhere",
            storage=str(tmp_path / "rr"),
            report=False,
            eval_n=0,
            cpus_per_trial=1,
            gpus_per_trial=0,
            memory_per_trial=100,
            overrides=SMALL,
        )
    )
    _, runs = trial_runs(uri, "anywhere")
    seen = {(r.data.tags["node"], r.data.tags["device"]) for r in runs}
    assert len(runs) == 4 and seen == {(cluster.gpu, "cpu"), (cluster.mac, "mps")}
    assert all(r.data.tags["trial_status"] == "completed" and r.data.tags["node_ip"] for r in runs)
    # The default, gpu="auto", on a cluster with a GPU: a share per trial, sized by the GPU's
    # memory (80 GB here) and its node's CPUs (1 GPU node CPU / 0.25 per trial = 4 trials a GPU).
    run(
        SweepOptions(
            space=VAE,
            data="synthetic",
            num_samples=4,
            max_epochs=1,
            tracking_uri=uri,
            experiment="gpu_auto",
            storage=str(tmp_path / "rr"),
            report=False,
            eval_n=0,
            cpus_per_trial=0.25,
            memory_per_trial=100,
            overrides=SMALL,
        )
    )
    _, runs = trial_runs(uri, "gpu_auto")
    assert {(r.data.tags["node"], r.data.tags["device"]) for r in runs} == {(cluster.gpu, "cuda")}
    assert {r.data.tags["placement"] for r in runs} == {"4 trials at once, 1/4 GPU each (cuda)"}


def test_a_node_removed_mid_sweep_its_trial_continues_elsewhere_from_s3(cluster, s3, tmp_path, monkeypatch):
    import threading

    monkeypatch.chdir(tmp_path)
    doomed = cluster.cluster.add_node(num_cpus=1)
    cluster.cluster.wait_for_nodes()
    doomed_id = doomed.node_id[:12]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    epochs = 6
    removed = threading.Event()

    def remove_when_a_trial_there_has_a_checkpoint():
        # Epoch 2 in MLflow means epoch 1 was reported, i.e. its checkpoint is in S3.
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                client, runs = trial_runs(uri, "moved")
                if any(
                    r.data.tags.get("node") == doomed_id
                    and len(client.get_metric_history(r.info.run_id, "epoch_time_s")) >= 2
                    for r in runs
                ):
                    cluster.cluster.remove_node(doomed, allow_graceful=False)
                    removed.set()
                    return
            except Exception:  # the store or the experiment does not exist yet
                pass
            time.sleep(0.2)

    space = tmp_path / "vae_beta.py"  # without ASHA: every trial must run all its epochs
    space.write_text(Path(VAE).read_text() + "\nscheduler = None\n")
    watcher = threading.Thread(target=remove_when_a_trial_there_has_a_checkpoint, daemon=True)
    watcher.start()
    run(
        SweepOptions(
            space=str(space),
            data="synthetic",
            num_samples=3,
            max_epochs=epochs,
            tracking_uri=uri,
            experiment="moved",
            storage="s3://sweeps/moved",
            report=False,
            eval_n=0,
            cpus_per_trial=1,
            gpus_per_trial=0,
            memory_per_trial=100,
            max_failures=2,
            overrides=SMALL,
        )
    )
    watcher.join()
    assert removed.is_set(), "no trial ran on the node to remove"
    client, runs = trial_runs(uri, "moved")
    # Nothing lost, nothing doubled: one MLflow run per trial (a restart that found no
    # checkpoint would have opened a second run), every epoch logged once, all completed.
    assert len(runs) == 3
    for r in runs:
        assert [m.step for m in client.get_metric_history(r.info.run_id, "epoch_time_s")] == list(range(1, epochs + 1))
        assert r.data.tags["trial_status"] == "completed"
    moved = [r for r in runs if r.data.tags.get("restored") == "true"]
    assert len(moved) == 1 and moved[0].data.tags["node"] != doomed_id  # finished on a surviving node
    # Tune's experiment state and checkpoints are in the bucket, not on any node's disk.
    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri("s3://sweeps/moved")
    names = [i.path for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))]
    assert any(n.endswith("sweep.json") for n in names) and any("/checkpoint_" in n for n in names)
