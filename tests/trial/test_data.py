"""common/base/data.py: the synthetic set, subset and split indices, tensor helpers, DeviceData (the
sources it reads are tests/trial/test_sources.py)."""

from __future__ import annotations

import pytest
import torch

from common.base.data import (
    DataError,
    Dataset,
    DeviceData,
    auto_val_size,
    load_dataset,
    split_indices,
    subset_indices,
    to_uint8,
    to_unit_range,
)


@pytest.fixture(autouse=True)
def _no_home_writes(tmp_path, monkeypatch):
    # a default cache dir must never land in the user's home during tests
    monkeypatch.setenv("VAEGAN_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.setenv("CIFAR10_ROOT", str(tmp_path / "env-cifar"))


def assert_same(a: Dataset, b: Dataset):
    for f in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert a.classes == b.classes


# ---- synthetic / helpers ------------------------------------------------------------------
def test_synthetic_shapes_and_determinism():
    a = load_dataset("synthetic")
    b = load_dataset("synthetic")
    assert a.train_x.shape == (512, 3, 32, 32) and a.train_x.dtype == torch.uint8
    assert a.test_x.shape == (256, 3, 32, 32) and a.test_y.dtype == torch.int64
    assert len(a.classes) == 10 and a.source == "synthetic"
    assert_same(a, b)
    assert a.content_hash == b.content_hash and len(a.content_hash) == 64
    assert torch.bincount(a.train_y).min() > 0


def test_synthetic_is_learnable():
    ds = load_dataset("synthetic")
    x, xt = ds.train_x.flatten(1).float(), ds.test_x.flatten(1).float()
    means = torch.stack([x[ds.train_y == k].mean(0) for k in range(10)])
    acc = (torch.cdist(xt, means).argmin(1) == ds.test_y).float().mean().item()
    assert acc > 0.5  # chance is 0.1


def test_subset_indices():
    a, b = subset_indices(1000, 100, seed=3), subset_indices(1000, 100, seed=3)
    assert torch.equal(a, b) and len(a) == 100 and len(a.unique()) == 100
    assert torch.all(a[1:] > a[:-1]) and a.max() < 1000
    assert not torch.equal(a, subset_indices(1000, 100, seed=4))
    assert torch.equal(subset_indices(50, 100, seed=0), torch.arange(50))


def test_split_indices_validation_is_outside_the_train_subset():
    train, val = split_indices(1000, 100, 200, seed=3, val_seed=0)
    assert torch.equal(train, subset_indices(1000, 100, seed=3))  # the slides' subset, unchanged by the split
    assert len(val) == 200 and len(val.unique()) == 200 and not set(val.tolist()) & set(train.tolist())
    again_train, again_val = split_indices(1000, 100, 200, seed=3, val_seed=0)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    assert not torch.equal(val, split_indices(1000, 100, 200, seed=3, val_seed=1)[1])
    # The subset takes the whole split: the validation images are held out of it.
    train, val = split_indices(500, 10_000, 100, seed=0, val_seed=0)
    assert len(train) == 400 and len(val) == 100 and not set(val.tolist()) & set(train.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(500))


def test_split_indices_that_do_not_fit_are_a_data_error():
    with pytest.raises(DataError, match="val_size=300 does not fit"):
        split_indices(1000, 800, 300, seed=0, val_seed=0)
    with pytest.raises(DataError, match="leaves no training images"):
        split_indices(100, 10_000, 100, seed=0, val_seed=0)


@pytest.mark.parametrize(
    "n_total,train_subset,expected",
    [(50_000, 10_000, 5_000), (512, 10_000, 51), (1_437, 10_000, 143), (10_500, 10_000, 500), (20_000, 1_000, 2_000)],
)
def test_the_automatic_validation_size_fits_the_data(n_total, train_subset, expected):
    assert auto_val_size(n_total, train_subset) == expected
    train, val = split_indices(n_total, train_subset, 0, seed=0, val_seed=0)
    assert len(val) == expected and len(train) == min(train_subset, n_total - expected) and len(train) > 0


def test_unit_range_round_trip():
    x = torch.arange(256, dtype=torch.uint8).repeat(12).reshape(1, 3, 32, 32)
    f = to_unit_range(x)
    assert f.dtype == torch.float32 and f.min() == -1 and f.max() == 1
    assert torch.equal(to_uint8(f), x)
    assert to_uint8(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]
    with pytest.raises(TypeError):
        to_unit_range(f)


def test_device_data_batches_cover_and_reproduce():
    ds = load_dataset("synthetic")
    dd = DeviceData(ds.train_x, ds.train_y, "cpu")
    batches = list(dd.batches(100, torch.Generator().manual_seed(0), with_labels=True))
    assert len(batches) == dd.num_batches(100) == 5 and all(xb.shape == (100, 3, 32, 32) for xb, _ in batches)
    assert batches[0][0].dtype == torch.float32 and batches[0][0].abs().max() <= 1
    full = list(dd.batches(100, shuffle=False, drop_last=False))
    assert sum(len(b) for b in full) == 512
    assert torch.equal(to_uint8(torch.cat(full)), ds.train_x)
    # shuffled, not dropped: every image exactly once, and labels stay with their images
    xs, ys = zip(*dd.batches(64, torch.Generator().manual_seed(1), drop_last=False, with_labels=True))
    xs, ys = to_uint8(torch.cat(xs)), torch.cat(ys)
    order = torch.randperm(512, generator=torch.Generator().manual_seed(1))
    assert torch.equal(xs, ds.train_x[order]) and torch.equal(ys, ds.train_y[order])
    again = list(dd.batches(100, torch.Generator().manual_seed(0), with_labels=True))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    other = next(iter(dd.batches(100, torch.Generator().manual_seed(1))))
    assert not torch.equal(other, batches[0][0])
    with pytest.raises(ValueError):
        dd.batches(10, None)
    idx = subset_indices(256, 10, 0)
    sub = DeviceData(ds.test_x[idx], ds.test_y[idx])
    assert len(sub) == 10 and torch.equal(sub.x, ds.test_x[idx])
    with pytest.raises(ValueError, match="uint8"):
        DeviceData(ds.test_x.float(), ds.test_y)
