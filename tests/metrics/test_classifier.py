"""common/metrics/classifier.py: the domain classifier is seeded, cached by data and config, refuses data it
cannot learn from, and leaves the caller's RNG alone."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from common.base.data import DataError, Dataset, load_dataset
from common.metrics.classifier import (
    MIN_PER_CLASS,
    ClassifierConfig,
    cache_path,
    chance_warning,
    get_classifier,
    load_classifier,
    train_classifier,
)

FAST = ClassifierConfig(epochs=1, min_steps=20)


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic")


def test_training_is_seeded_and_learns_the_classes(data):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, info = train_classifier(data, FAST, log=lambda *_: None)
    assert torch.equal(torch.get_rng_state(), before)  # private generators: the caller's stream is untouched
    b, _ = train_classifier(data, FAST, log=lambda *_: None)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert info["test_acc"] > 0.5 and info["n_train"] == 512 and info["n_test"] == 256  # 10 classes: chance 0.1
    feats, logits = a.features_and_logits(data.test_x[:7])
    assert feats.shape == (7, FAST.widths[2]) and logits.shape == (7, 10)


def test_cached_by_data_and_config(data, tmp_path, monkeypatch):
    monkeypatch.setenv("VAEGAN_CACHE", str(tmp_path))
    lines = []
    state, info = get_classifier(data, FAST, log=lines.append)
    assert cache_path(data, FAST).is_file() and any("training the domain classifier" in x for x in lines)
    lines.clear()
    again, info2 = get_classifier(data, FAST, log=lines.append)
    assert not lines and info2 == info and again["name"] == state["name"]  # loaded, not retrained
    other = dataclasses.replace(FAST, seed=1)
    assert cache_path(data, other) != cache_path(data, FAST)
    net = load_classifier(state)
    assert net.name == state["name"] and not net.training


def _tiny(counts: list[int]) -> Dataset:
    y = torch.cat([torch.full((n,), k) for k, n in enumerate(counts)])
    x = torch.zeros(len(y), 3, 32, 32, dtype=torch.uint8)
    return Dataset(x, y, x[:4], y[:4], tuple(f"c{k}" for k in range(len(counts))), "tiny", "h")


def test_data_it_cannot_learn_from_is_refused_not_silently_replaced():
    with pytest.raises(DataError, match=r"needs >= 2 classes"):
        train_classifier(_tiny([50]), FAST)
    with pytest.raises(DataError, match=rf"class 'c1' has {MIN_PER_CLASS - 1}"):
        train_classifier(_tiny([50, MIN_PER_CLASS - 1]), FAST)


def test_a_classifier_near_chance_is_warned_about():
    assert chance_warning({"test_acc": 0.12}, 10) and "12.0%" in chance_warning({"test_acc": 0.12}, 10)
    assert chance_warning({"test_acc": 0.7}, 10) is None
