"""Reading a data source into uint8 arrays, once: an image-folder tree (a folder or its
``.tar.gz``), CIFAR-10's python batches, torchvision's download; decoded, checked and cached.

Cache key, checked on every load: a tarball's sha256 (streamed), or for a folder the sha256 of
its sorted (relative path, size, mtime_ns), so a hit reads no image bytes. The content hash
(``Dataset.content_hash``, logged as ``data_hash``) comes from the bytes while decoding and is
kept in the cache: sha256 over each image's ``split/class/name`` and byte digest (a folder and
its tarball hash alike), or over each pickle batch file's name and byte digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from filelock import FileLock

from common.base.errors import UserError, first_line
from common.base.progress import bar

CACHE_VERSION = 1
STORED_SPLITS = ("train", "test")  # the splits a source holds (validation is drawn from train)
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
_LAYOUT = "expected train/<class>/*.jpg|png and test/<class>/*"
_JPEG_CHUNK = 2048


class DataError(UserError):
    """Bad data input; the message is one line naming the file and how to fix it."""


def identify(path: Path) -> tuple[str, str, Callable[[], dict]]:
    """(kind, cache key, builder) for an existing path; the builder decodes and validates."""
    if path.is_file():
        if not path.name.lower().endswith((".tar.gz", ".tgz")):
            raise DataError(
                f"'{path}' is a file but not a .tar.gz/.tgz archive; pass an image-folder tree, "
                "its .tar.gz, or a cifar-10-batches-py folder"
            )
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return "tar", h.hexdigest(), lambda: _build_tar(path)
    if (path / "cifar-10-batches-py").is_dir():  # the torchvision root was given
        path = path / "cifar-10-batches-py"
    if any((path / n).exists() for n in CIFAR_FILES):
        for n in CIFAR_FILES:
            if not (path / n).is_file():
                raise DataError(
                    f"missing '{path / n}': a cifar-10-batches-py folder needs "
                    f"{', '.join(CIFAR_FILES)}; re-extract cifar-10-python.tar.gz"
                )
        key = _stat_hash([(n, (path / n).stat()) for n in CIFAR_FILES])
        return "batches", key, lambda: _build_batches(lambda n: (path / n).read_bytes(), lambda n: f"'{path / n}'")
    files = _walk(path)
    if not files:
        raise DataError(f"data folder '{path}' is empty; {_LAYOUT}")
    names = [n for n, _ in files]
    return (
        "tree",
        _stat_hash(files),
        lambda: _build_tree(names, lambda n: (path / n).read_bytes(), lambda n: f"'{path / n}'", f"'{path}'"),
    )


def _hidden(part: str) -> bool:
    return part.startswith(".") or part == "__MACOSX"  # OS litter, not data


def _walk(root: Path) -> list[tuple[str, os.stat_result]]:
    """(POSIX path relative to ``root``, stat) of every non-hidden file under ``root``."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not _hidden(d)]
        rel = Path(dirpath).relative_to(root)
        out += [((rel / f).as_posix(), os.stat(os.path.join(dirpath, f))) for f in filenames if not _hidden(f)]
    return out


def _stat_hash(files: list[tuple[str, os.stat_result]]) -> str:
    lines = sorted(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n" for name, st in files)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _build_tar(path: Path) -> dict:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        raise DataError(f"'{path}' is not gzip-compressed; pass a .tar.gz made with tar -czf, or the folder")
    try:
        raw = gzip.decompress(raw)  # whole archive in memory: random access to members below
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"'{path}' is a damaged gzip file ({first_line(e)}); re-download or re-create it") from None
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
            members = [m for m in tf.getmembers() if m.isfile()]
    except tarfile.TarError as e:
        raise DataError(f"'{path}' is not a tar archive ({first_line(e)}); re-create it with tar -czf") from None
    view = memoryview(raw)  # slice member bytes straight out of the archive: no extractfile()
    blobs = {
        m.name.removeprefix("./"): (m.offset_data, m.size)
        for m in members
        if not any(_hidden(p) for p in m.name.removeprefix("./").split("/"))
    }

    def read(n):
        off, size = blobs[n]
        return bytes(view[off : off + size])

    pickles = [n[:-12] for n in blobs if n == "data_batch_1" or n.endswith("/data_batch_1")]
    if pickles:  # the official cifar-10-python.tar.gz
        return _build_batches(lambda n: read(pickles[0] + n), lambda n: f"'{path}' member '{pickles[0] + n}'")
    return _build_tree(list(blobs), read, lambda n: f"'{path}' member '{n}'", f"'{path}'")


def _build_tree(names: list[str], read: Callable[[str], bytes], show: Callable[[str], str], where: str) -> dict:
    """Validate the ``train/<class>/<image>`` layout of ``names`` and decode every image."""
    prefix = _tree_prefix(names, where)
    per = {s: {} for s in STORED_SPLITS}
    for name in names:
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix) :].split("/")
        if parts[0] not in per:
            continue  # e.g. a README next to train/ and test/
        if len(parts) != 3:
            raise DataError(f"unexpected file {show(name)}: {_LAYOUT}; move it into a class folder or delete it")
        if not parts[2].lower().endswith(IMAGE_EXTS):
            raise DataError(f"{show(name)} is not an image (.jpg/.jpeg/.png); remove it from the data tree")
        per[parts[0]].setdefault(parts[1], []).append(name)
    for s in STORED_SPLITS:
        if not per[s]:
            raise DataError(f"{where} has no {s}/<class>/ folders with images; {_LAYOUT}")
    classes = sorted(per["train"])
    if classes != sorted(per["test"]):
        only_tr, only_te = set(classes) - set(per["test"]), set(per["test"]) - set(classes)
        raise DataError(
            f"{where}: train/ and test/ hold different classes (only in train: "
            f"{', '.join(sorted(only_tr)) or '-'}; only in test: {', '.join(sorted(only_te)) or '-'}); "
            "give both splits the same class folders, each with images"
        )
    h, out = hashlib.sha256(), {"classes": classes}
    for s in STORED_SPLITS:
        order = [(c, n) for c, cls in enumerate(classes) for n in sorted(per[s][cls])]
        blobs = [read(n) for _, n in order]
        for (_, n), b in zip(order, blobs):
            h.update(n[len(prefix) :].encode() + b"\0" + hashlib.sha256(b).digest())
        out[f"{s}_x"] = _decode_images(blobs, lambda i: show(order[i][1]))
        out[f"{s}_y"] = torch.tensor([c for c, _ in order], dtype=torch.int64)
    out["content_hash"] = h.hexdigest()
    return out


def _tree_prefix(names: list[str], where: str) -> str:
    """'' if train/ and test/ sit at the top, 'top/' if one folder wraps them."""
    tops = {n.split("/")[0] for n in names if "/" in n}
    if tops & set(STORED_SPLITS):
        return ""
    wrappers = {n.split("/")[0] for n in names if n.count("/") >= 2 and n.split("/")[1] in STORED_SPLITS}
    if len(wrappers) == 1:
        return wrappers.pop() + "/"
    raise DataError(f"{where} has no train/ or test/ folder; {_LAYOUT}")


def _decode_images(blobs: list[bytes], show: Callable[[int], str]) -> torch.Tensor:
    """Encoded JPEG/PNG files -> (N, 3, 32, 32) uint8; any bad file raises a DataError naming it."""
    out = torch.empty((len(blobs), 3, 32, 32), dtype=torch.uint8)
    jpeg = [i for i, b in enumerate(blobs) if b[:2] == b"\xff\xd8"]
    rest = sorted(set(range(len(blobs))) - set(jpeg))
    try:  # batched libjpeg decode beats PIL one image at a time
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:  # dropped by some future torchvision: PIL still works, only slower
        jpeg, rest = [], list(range(len(blobs)))
    chunks = range(0, len(jpeg), _JPEG_CHUNK)
    for start in bar(chunks, f"decoding {len(blobs):,} images", total=len(chunks), unit="chunk") if chunks else chunks:
        idx = jpeg[start : start + _JPEG_CHUNK]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torchvision 0.29 deprecation notice on every call
                imgs = decode_jpeg(
                    [torch.frombuffer(bytearray(blobs[i]), dtype=torch.uint8) for i in idx],
                    mode=ImageReadMode.UNCHANGED,
                )
            if all(tuple(t.shape) == (3, 32, 32) for t in imgs):
                out[idx] = torch.stack(imgs)
                continue
        except RuntimeError:
            pass  # PIL below finds and names the offending file
        rest += idx
    for i in rest:
        out[i] = torch.from_numpy(_decode_pil(blobs[i], show(i))).permute(2, 0, 1)
    return out


def _decode_pil(blob: bytes, shown: str) -> np.ndarray:
    """One encoded image -> (32, 32, 3) uint8 array."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(blob)) as im:
            im.load()
            size, mode, arr = im.size, im.mode, np.array(im)  # writable copy for torch
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(
            f"cannot decode image {shown} ({first_line(e)}); the file is corrupt or truncated: re-export or delete it"
        ) from None
    if size != (32, 32) or mode != "RGB":
        raise DataError(
            f"image {shown} is {size[0]}x{size[1]} {mode}; expected 32x32 RGB: convert it "
            "(e.g. PIL .convert('RGB').resize((32, 32))) or remove it"
        )
    return arr


def _build_batches(read: Callable[[str], bytes], show: Callable[[str], str]) -> dict:
    """CIFAR-10 python pickles (``read(name)`` -> bytes) -> tensors. Pickles can run code: load
    only copies you trust."""
    h = hashlib.sha256()

    def load(name):
        try:
            raw = read(name)
        except (KeyError, FileNotFoundError):
            raise DataError(
                f"missing {show(name)}: cifar-10-batches-py needs {', '.join(CIFAR_FILES)}; "
                "re-download cifar-10-python.tar.gz"
            ) from None
        h.update(name.encode() + b"\0" + hashlib.sha256(raw).digest())
        try:
            d = pickle.loads(raw, encoding="latin1")  # latin1: the official files are Python 2 pickles
            return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
        except Exception as e:
            raise DataError(
                f"cannot unpickle {show(name)} ({first_line(e)}); re-extract cifar-10-python.tar.gz"
            ) from None

    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in load("batches.meta").get("label_names", [])]
    out = {"classes": classes}
    for s, names in (("train", CIFAR_FILES[:5]), ("test", CIFAR_FILES[5:6])):
        xs, ys = [], []
        for name in names:
            d = load(name)
            x, y = np.asarray(d.get("data")), np.asarray(d.get("labels", ()))
            if (
                x.dtype != np.uint8
                or x.ndim != 2
                or x.shape[1] != 3072
                or y.shape != (len(x),)
                or y.dtype.kind not in "iu"
                or not len(y)
                or y.min() < 0
                or y.max() >= len(classes)
            ):
                raise DataError(
                    f"{show(name)} holds data {x.dtype} {x.shape} and labels {y.dtype} {y.shape}; "
                    f"expected uint8 (N, 3072) and N ints in 0..{len(classes) - 1} (batches.meta "
                    "label_names): re-extract cifar-10-python.tar.gz"
                )
            xs.append(x)
            ys.append(y.astype(np.int64))
        out[f"{s}_x"] = torch.from_numpy(np.concatenate(xs)).reshape(-1, 3, 32, 32)  # rows are R, G, B planes
        out[f"{s}_y"] = torch.from_numpy(np.concatenate(ys))
    out["content_hash"] = h.hexdigest()
    return out


def cifar10_folder() -> Path:
    """Download CIFAR-10 once (under a lock) and return its cifar-10-batches-py folder."""
    root = Path(os.environ.get("CIFAR10_ROOT") or "~/.cache/vaegan/cifar10").expanduser()
    folder = root / "cifar-10-batches-py"
    if all((folder / n).is_file() for n in CIFAR_FILES):
        return folder
    try:
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root / ".download.lock")):  # concurrent trials: one downloads, the rest wait
            if not all((folder / n).is_file() for n in CIFAR_FILES):
                from torchvision.datasets import CIFAR10

                CIFAR10(str(root), train=True, download=True)
    except Exception as e:
        raise DataError(
            f"cannot download CIFAR-10 into '{root}' ({type(e).__name__}: {first_line(e)}); without "
            "network pass --data PATH to a local copy (a cifar-10-batches-py folder, or an image-folder "
            "tree / .tar.gz), or set CIFAR10_ROOT to a writable folder"
        ) from None
    return folder


# ---- cache --------------------------------------------------------------------------------
def cached(kind: str, key: str, build: Callable[[], dict], cache_dir) -> dict:
    """Load the payload for ``key`` from the cache, else build it and write it atomically."""
    d = Path(cache_dir or os.environ.get("VAEGAN_CACHE") or "~/.cache/vaegan/data").expanduser()
    path = d / f"{kind}-v{CACHE_VERSION}-{key}.pt"

    def load():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # missing, or unreadable (e.g. written by another torch): (re)build it
            return None

    if (payload := load()) is not None:
        return payload
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create data cache folder '{d}' ({first_line(e)}); set VAEGAN_CACHE") from None
    with FileLock(str(path) + ".lock"):
        if (payload := load()) is None:  # another process may have built it while we waited
            payload = build()
            fd, tmp = tempfile.mkstemp(dir=d, prefix=path.name, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    torch.save(payload, f)
                os.replace(tmp, path)  # readers never see a half-written file
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    return payload
