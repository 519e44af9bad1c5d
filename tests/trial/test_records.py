"""common/trial/records.py: PBT lineage tags, pending writes, run names and image epochs."""

from __future__ import annotations

from types import SimpleNamespace

from common.trial.records import image_epoch, run_label, still_pending, tag_lineage


class FakeRun:
    """TrialRun's tag/set_tags/log_metrics, in memory."""

    def __init__(self):
        self.tags, self.points = {}, []

    def tag(self, key):
        return self.tags.get(key)

    def set_tags(self, tags):
        self.tags.update(tags)

    def log_metrics(self, metrics, step):
        self.points.append((step, dict(metrics)))


CFG = SimpleNamespace(to_dict=lambda: {"family": "dcgan", "lr_g": 2e-4, "lr_ratio": 4.0, "latent_dim": 100})
HISTORY = {"val_classifier_fd": [(1, 9.0), (2, 8.0), (3, 7.0), (4, 6.0)]}  # the donor's checkpoint


def test_a_clone_from_a_donor_ahead_gets_the_donors_points_for_the_epochs_it_lacks():
    run = FakeRun()
    tag_lineage(run, "t7", epoch=3, cfg=CFG, held=1, history=HISTORY)
    assert run.tags == {
        "pbt.clone.1": "from trial t7 at epoch 3; config now lr_g=0.0002, lr_ratio=4",
        "pbt.clones": "1",
        "pbt.clone.1.copied": "epochs 2-3 are trial t7's points",
    }
    assert run.points == [(2, {"val_classifier_fd": 8.0}), (3, {"val_classifier_fd": 7.0})]


def test_the_same_clone_restored_again_is_not_tagged_twice():
    run = FakeRun()
    tag_lineage(run, "t7", epoch=3, cfg=CFG, held=1, history=HISTORY)
    tag_lineage(run, "t7", epoch=3, cfg=CFG, held=3, history=HISTORY)
    assert run.tags["pbt.clones"] == "1" and "pbt.clone.2" not in run.tags


def test_a_clone_from_a_donor_behind_keeps_the_runs_earlier_line_and_says_where_the_new_one_starts():
    run = FakeRun()
    tag_lineage(run, "t2", epoch=2, cfg=CFG, held=4, history=HISTORY)
    assert run.tags["pbt.clone.1.logged_from"] == "epoch 5 (epochs 3-4 keep the earlier line)"
    assert "pbt.clone.1.copied" not in run.tags and run.points == []
    tag_lineage(run, "t3", epoch=4, cfg=CFG, held=5, history=HISTORY)  # a second clone: numbered on
    assert run.tags["pbt.clones"] == "2" and run.tags["pbt.clone.2"].startswith("from trial t3 at epoch 4")


def test_pending_writes_drop_the_artifacts_uploaded_since_and_keep_the_rest(tmp_path):
    kept = tmp_path / "samples.png"
    kept.write_bytes(b"png")
    records = [
        {"kind": "metrics", "values": {"x": 1.0}, "step": 1},
        {"kind": "artifact", "path": str(kept), "artifact_path": "figures"},
        {"kind": "artifact", "path": str(tmp_path / "gone.png"), "artifact_path": "figures"},
        {"kind": "tags", "values": {"a": "b"}},
    ]
    assert still_pending(records) == [records[0], records[1], records[3]]


def test_a_run_is_named_after_the_searchers_first_two_params():
    assert run_label({"lr": 0.000653, "batch_size": 32, "beta": 2.0}) == "lr=0.000653 batch_size=32"
    assert run_label({}) == ""


def test_images_are_logged_every_epoch_up_to_50_then_on_a_stride_and_always_the_last():
    assert all(image_epoch(e, 40) for e in range(40))
    logged = [e for e in range(120) if image_epoch(e, 120)]  # stride 3
    assert logged[:3] == [2, 5, 8] and logged[-1] == 119 and len(logged) == 40
    assert [e for e in range(101) if image_epoch(e, 101)][-2:] == [98, 100]  # stride 3, and the last


def test_every_figure_a_task_draws_is_an_image_at_the_step_whatever_its_name(tmp_path):
    from common.trial.records import log_figures

    class Task:  # a plugin's: its grid is not called samples.png
        def figures(self, folder):
            (folder / "rae_samples.png").write_bytes(b"png")
            return [folder / "rae_samples.png"]

    class Run:
        images: list = []

        def log_artifact(self, path, folder, keep_dir=None):
            pass

        def log_image(self, path, key, step):
            self.images.append((key, step))

    run = Run()
    for step in (1, 2):
        log_figures(Task(), tmp_path / f"f{step}", run, keep_dir=None, step=step)
    assert run.images == [("rae_samples", 1), ("rae_samples", 2)]
