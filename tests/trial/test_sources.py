"""common/base/sources.py through ``load_dataset``: image-folder trees, tarballs and CIFAR batches read
once, decoded, hashed and cached; every bad input is one ``DataError`` line naming the file."""

from __future__ import annotations

import io
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.base import sources
from common.base.data import DataError, Dataset, load_dataset

REAL_TARBALL = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-jpeg.tar.gz"
)  # ../shared beside the checkout


@pytest.fixture(autouse=True)
def _no_home_writes(tmp_path, monkeypatch):
    # a default cache dir must never land in the user's home during tests
    monkeypatch.setenv("VAEGAN_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.setenv("CIFAR10_ROOT", str(tmp_path / "env-cifar"))


CLASSES = ("cat", "dog", "frog")


def _png(arr: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, fmt)
    return buf.getvalue()


def _rgb(seed: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def make_tree(root: Path, per_class=(3, 2), classes=CLASSES) -> Path:
    """train/<class>/*.png and test/<class>/*.png with distinct random RGB images."""
    seed = 0
    for split, n in zip(("train", "test"), per_class):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                seed += 1
                (root / split / c / f"{i:03d}.png").write_bytes(_png(_rgb(seed)))
    return root


def assert_same(a: Dataset, b: Dataset):
    for f in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert a.classes == b.classes


def make_tgz(src: Path, dest: Path, arcname: str = ".") -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        tf.add(src, arcname=arcname)
    return dest


# ---- image-folder trees, tarballs, cache --------------------------------------------------
def test_tree_and_tarball_load_same_content(tmp_path):
    tree = make_tree(tmp_path / "tree")
    ds = load_dataset(str(tree), cache_dir=tmp_path / "c")
    assert ds.classes == CLASSES and ds.source == "tree"
    assert ds.train_x.shape == (9, 3, 32, 32) and ds.test_x.shape == (6, 3, 32, 32)
    assert ds.train_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and ds.train_y.dtype == torch.int64
    first = np.array(Image.open(tree / "train" / "cat" / "000.png"))
    assert torch.equal(ds.train_x[0], torch.from_numpy(first).permute(2, 0, 1))
    flat = load_dataset(str(make_tgz(tree, tmp_path / "flat.tar.gz")), cache_dir=tmp_path / "c")
    wrapped = load_dataset(str(make_tgz(tree, tmp_path / "wrapped.tgz", "cifar")), cache_dir=tmp_path / "c")
    for other in (flat, wrapped):
        assert_same(ds, other)
        assert other.content_hash == ds.content_hash  # hash of the images, not of the packaging
    assert flat.source == "flat.tar.gz"


def test_jpeg_tree_uses_batched_decoder(tmp_path):
    root = tmp_path / "jpg"
    for split in ("train", "test"):
        for c in CLASSES:
            (root / split / c).mkdir(parents=True)
            (root / split / c / "a.jpg").write_bytes(_png(_rgb(len(c)), fmt="JPEG"))
    ds = load_dataset(str(root), cache_dir=tmp_path / "c")
    ref = np.array(Image.open(root / "train" / "cat" / "a.jpg"))
    assert torch.equal(ds.train_x[0], torch.from_numpy(ref).permute(2, 0, 1))


def test_cache_hit_skips_decoding(tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "tree")
    tgz = make_tgz(tree, tmp_path / "t.tar.gz")
    a, b = load_dataset(str(tree), tmp_path / "c"), load_dataset(str(tgz), tmp_path / "c")
    assert len(list((tmp_path / "c").glob("*.pt"))) == 2
    assert not list((tmp_path / "c").glob("*.tmp"))

    def boom(*a, **k):
        raise AssertionError("decoded again despite a cache hit")

    monkeypatch.setattr(sources, "_decode_images", boom)
    assert_same(load_dataset(str(tree), tmp_path / "c"), a)
    assert_same(load_dataset(str(tgz), tmp_path / "c"), b)
    # a changed file changes the folder key: it must be decoded again
    (tree / "train" / "cat" / "000.png").write_bytes(_png(_rgb(999)))
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset(str(tree), tmp_path / "c")


def test_corrupt_cache_file_is_rebuilt(tmp_path):
    tree = make_tree(tmp_path / "tree")
    a = load_dataset(str(tree), tmp_path / "c")
    (cache,) = (tmp_path / "c").glob("*.pt")
    cache.write_bytes(b"not a torch file")
    assert_same(load_dataset(str(tree), tmp_path / "c"), a)


def test_default_cache_dir_from_env(tmp_path):
    load_dataset(str(make_tree(tmp_path / "tree")))
    assert list((tmp_path / "env-cache").glob("tree-*.pt"))


# ---- bad inputs ---------------------------------------------------------------------------
def _assert_error(spec, *needles, cache=None):
    with pytest.raises(DataError) as info:
        load_dataset(str(spec), cache_dir=cache)
    msg = str(info.value)
    assert "\n" not in msg
    for n in needles:
        assert str(n) in msg, msg
    return msg


def test_missing_path(tmp_path):
    _assert_error(tmp_path / "nope", tmp_path / "nope", "does not exist")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    _assert_error(tmp_path / "empty", "empty", tmp_path / "empty")


def test_wrong_layouts(tmp_path):
    flat = tmp_path / "flat"
    (flat / "cat").mkdir(parents=True)
    (flat / "cat" / "a.png").write_bytes(_png(_rgb(1)))
    _assert_error(flat, "no train/ or test/", flat)
    no_test = make_tree(tmp_path / "nt")
    for f in (no_test / "test").rglob("*.png"):
        f.unlink()
    _assert_error(no_test, "no test/<class>/", no_test)
    no_class = make_tree(tmp_path / "nc")
    (no_class / "train" / "loose.png").write_bytes(_png(_rgb(1)))
    _assert_error(no_class, "train/loose.png", "class folder")


def test_class_mismatch(tmp_path):
    tree = make_tree(tmp_path / "tree")
    (tree / "test" / "frog").rename(tree / "test" / "toad")
    _assert_error(tree, "only in train: frog", "only in test: toad")


@pytest.mark.parametrize(
    "name, content, needles",
    [
        ("notes.txt", b"hello", ["notes.txt", "not an image"]),
        ("big.png", _png(_rgb(1, 64)), ["big.png", "64x64"]),
        ("gray.png", _png(np.zeros((32, 32), np.uint8), "L"), ["gray.png", "32x32 L", "RGB"]),
        ("rgba.png", _png(np.zeros((32, 32, 4), np.uint8), "RGBA"), ["rgba.png", "RGBA"]),
        ("bad.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, ["bad.png", "cannot decode"]),
        ("bad.jpg", b"\xff\xd8\xff\xe0" + b"junk" * 20, ["bad.jpg", "cannot decode"]),
        ("short.jpg", _png(_rgb(2), fmt="JPEG")[:300], ["short.jpg", "cannot decode"]),
        ("gray.jpg", _png(np.zeros((32, 32), np.uint8), "L", "JPEG"), ["gray.jpg", "32x32 L"]),
    ],
)
def test_bad_image_files(tmp_path, name, content, needles):
    tree = make_tree(tmp_path / "tree")
    (tree / "train" / "dog" / name).write_bytes(content)
    _assert_error(tree, tree / "train" / "dog" / name, *needles, cache=tmp_path / "c")
    # inside a tarball the member is named
    tgz = make_tgz(tree, tmp_path / "t.tar.gz", "wrap")
    _assert_error(tgz, tgz, f"wrap/train/dog/{name}", *needles[1:], cache=tmp_path / "c")


def test_bad_tarballs(tmp_path):
    (tmp_path / "plain.tar.gz").write_bytes(b"this is not gzip at all")
    _assert_error(tmp_path / "plain.tar.gz", tmp_path / "plain.tar.gz", "not gzip")
    import gzip

    (tmp_path / "gz.tgz").write_bytes(gzip.compress(b"gzip but no tar inside" * 30))
    _assert_error(tmp_path / "gz.tgz", tmp_path / "gz.tgz", "not a tar")
    good = make_tgz(make_tree(tmp_path / "tree"), tmp_path / "good.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(good[: len(good) // 2])
    _assert_error(tmp_path / "cut.tar.gz", tmp_path / "cut.tar.gz", "damaged gzip")
    (tmp_path / "x.zip").write_bytes(b"PK")
    _assert_error(tmp_path / "x.zip", tmp_path / "x.zip", ".tar.gz")


# ---- cifar-10-batches-py ------------------------------------------------------------------
def make_batches(root: Path, n: int = 4) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(range(n))}
        (root / name).write_bytes(pickle.dumps(batch))
    (root / "batches.meta").write_bytes(pickle.dumps({"label_names": ["a", "b", "c", "d"]}))
    return root


def test_cifar_batches_folder(tmp_path):
    folder = make_batches(tmp_path / "cifar-10-batches-py")
    ds = load_dataset(str(folder), tmp_path / "c")
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.test_x.shape == (4, 3, 32, 32)
    assert ds.classes == ("a", "b", "c", "d") and ds.train_y.dtype == torch.int64
    raw = pickle.loads((folder / "data_batch_1").read_bytes())[b"data"]
    assert torch.equal(ds.train_x[1, 2].flatten(), torch.from_numpy(raw[1, 2048:]))  # blue plane
    # the torchvision root (parent folder) works too, and hits the same cache
    assert_same(load_dataset(str(tmp_path), tmp_path / "c"), ds)
    assert len(list((tmp_path / "c").glob("*.pt"))) == 1
    # the official cifar-10-python.tar.gz layout (one wrapping folder) loads without extracting
    tgz = make_tgz(folder, tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py")
    packed = load_dataset(str(tgz), tmp_path / "c")
    assert_same(packed, ds)
    assert packed.content_hash == ds.content_hash


def test_cifar_batches_errors(tmp_path):
    folder = make_batches(tmp_path / "b1")
    (folder / "test_batch").unlink()
    _assert_error(folder, folder / "test_batch", "missing")
    folder = make_batches(tmp_path / "b2")
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    _assert_error(folder, folder / "data_batch_3", "(2, 100)", cache=tmp_path / "c")
    folder = make_batches(tmp_path / "b3")
    (folder / "data_batch_2").write_bytes(b"not a pickle")
    _assert_error(folder, folder / "data_batch_2", "cannot unpickle", cache=tmp_path / "c")
    (folder / "data_batch_2").unlink()
    tgz = make_tgz(folder, tmp_path / "b3.tar.gz")
    _assert_error(tgz, tgz, "member 'data_batch_2'", "missing", cache=tmp_path / "c")


def test_cifar10_download_failure_says_use_data(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    _assert_error("cifar10", "--data PATH", tmp_path / "env-cifar", "network is unreachable")


# ---- the real CIFAR-10 JPEG tarball -------------------------------------------------------
@pytest.mark.slow
def test_real_cifar10_jpeg_tarball(tmp_path):
    if not REAL_TARBALL.is_file():
        pytest.skip(f"{REAL_TARBALL} not present (offline CIFAR-10 copy; see ../shared/data/README.md)")
    t0 = time.perf_counter()
    ds = load_dataset(str(REAL_TARBALL), tmp_path / "c")
    t1 = time.perf_counter()
    again = load_dataset(str(REAL_TARBALL), tmp_path / "c")
    t2 = time.perf_counter()
    print(f"\nfirst decode {t1 - t0:.2f} s, cached load {t2 - t1:.2f} s")
    assert ds.train_x.shape == (50000, 3, 32, 32) and ds.test_x.shape == (10000, 3, 32, 32)
    assert len(ds.classes) == 10 and ds.classes[0] == "airplane"
    assert torch.bincount(ds.train_y).tolist() == [5000] * 10
    assert again.content_hash == ds.content_hash and torch.equal(again.test_x, ds.test_x)
