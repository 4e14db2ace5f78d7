"""The prepared-split format: what ``prepare`` writes and ``features``, ``train`` and ``evaluate`` read.

A split is a folder::

    train/
      index.json      count, image shape, images per shard, each file's SHA-256, class names
      x-00000.npy     uint8 (n, H, W, C): shard 0, ``shard_images`` images (the last shard fewer)
      x-00001.npy     ...
      y.npy           int64 labels of every image (absent for unlabelled data)

Shards are plain ``.npy`` files (no pickle), written whole, so a split never has to fit in memory:
:class:`SplitWriter` holds at most one shard, and :class:`ShardedImages` reads rows from memory-mapped
shards. Each row read maps the whole page-cache folio around it (up to megabytes), so the process's
resident size would grow towards the split's size; the reader therefore drops its mapped pages again
(``MADV_DONTNEED``; they stay in the page cache) whenever the process's resident file pages have grown
by ``MAPPED_BUDGET`` since the last drop: a split smaller than that is never dropped (full mmap speed),
a larger one stays within the budget. Equal images give equal bytes (no timestamps anywhere).
(Over 300 lines, one job: the format, its writer, its checked reader.)
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .io import read_npy_header, sha256_file, write_json

@dataclass
class Split:
    """Images (an (N,H,W,C) uint8 array, a list of (H,W,C) arrays of mixed sizes, or image files not
    decoded yet) and labels: what a source gives ``prepare`` and what a prepared split reads back as."""

    x: object
    y: np.ndarray | None
    class_names: list[str] | None = None
    digest: str | None = None  # a prepared split's identity (``load_split``)

    def __len__(self) -> int:
        return len(self.x)

    def take(self, idx: np.ndarray) -> "Split":
        x = [self.x[i] for i in idx] if isinstance(self.x, list) else self.x[idx]
        return Split(x, None if self.y is None else self.y[idx], self.class_names)


FORMAT = "ganpipe.split/1"
INDEX = "index.json"
LABELS = "y.npy"
SHARD_BYTES = 1 << 27  # 128 MiB of images per shard
MAPPED_BUDGET = 1 << 28  # drop the mapped pages when resident file pages grew by 256 MiB
RELEASE_BYTES = 1 << 26  # without /proc (not Linux): drop them after every 64 MiB read
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_shared_bytes() -> int | None:
    """This process's resident file-backed (shared) memory, from ``/proc/self/statm``; None elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[2]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def shard_name(i: int) -> str:
    return f"x-{i:05d}.npy"


def _write_npy(path: Path, arr: np.ndarray) -> str:
    """Write ``arr`` as ``.npy`` and return the SHA-256 of the file's bytes."""
    arr = np.ascontiguousarray(arr)
    with open(path, "wb") as f:  # np.save's bytes; f.write, not ndarray.tofile, so a full disk says ENOSPC
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(arr))
        f.write(memoryview(arr.reshape(-1).view(np.uint8)))
    return sha256_file(path)


class SplitWriter:
    """Append images (and labels) chunk by chunk; shards go to ``directory`` as they fill. ``close()``
    writes the labels and the index. Write into a temporary folder and move it into place
    (``ganpipe.io.atomic_dir``): a failed run leaves nothing behind."""

    def __init__(self, directory: str | os.PathLike, image_shape: tuple[int, int, int], labelled: bool,
                 shard_bytes: int = SHARD_BYTES):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.shape = tuple(int(s) for s in image_shape)
        self.shard_images = max(1, shard_bytes // int(np.prod(self.shape)))
        self.labelled = labelled
        self._pending: list[np.ndarray] = []
        self._n_pending = 0
        self._labels: list[np.ndarray] = []
        self.shards: list[dict] = []
        self.count = 0
        self.pixel_sum = 0  # exact integer sums for the split's mean and standard deviation
        self.pixel_sq_sum = 0

    def add(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        if x.dtype != np.uint8 or tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"images of shape {x.shape[1:]} {x.dtype}, expected {self.shape} uint8")
        if self.labelled != (y is not None) or (y is not None and len(y) != len(x)):
            raise ValueError("labels must be given for every image of a labelled split, and only then")
        if not len(x):
            return
        if y is not None:
            self._labels.append(np.asarray(y, np.int64))
        flat = x.reshape(len(x), -1)
        self.pixel_sum += int(flat.sum(dtype=np.int64))
        self.pixel_sq_sum += int(np.einsum("ij,ij->", flat, flat, dtype=np.int64))
        self.count += len(x)
        self._pending.append(x)
        self._n_pending += len(x)
        while self._n_pending >= self.shard_images:
            self._flush(self.shard_images)

    def _flush(self, n: int) -> None:
        block = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        shard, rest = block[:n], block[n:]
        name = shard_name(len(self.shards))
        self.shards.append({"file": name, "count": int(len(shard)), "sha256": _write_npy(self.dir / name, shard)})
        self._pending = [rest] if len(rest) else []
        self._n_pending = len(rest)

    def close(self, class_names: list[str] | None) -> dict:
        if self._n_pending:
            self._flush(self._n_pending)
        index = {"format": FORMAT, "count": self.count, "image_shape": list(self.shape),
                 "shard_images": self.shard_images, "shards": self.shards, "labels": None,
                 "class_names": list(class_names or [])}
        if self.labelled:
            y = np.concatenate(self._labels) if self._labels else np.zeros(0, np.int64)
            index["labels"] = {"file": LABELS, "sha256": _write_npy(self.dir / LABELS, y)}
        write_json(self.dir / INDEX, index)
        return index

    def summary(self, n_classes: int | None) -> dict:
        """Count, pixel mean / standard deviation in [0, 1] (from exact integer sums) and, for a labelled
        split, the count per class."""
        n = self.count * int(np.prod(self.shape))
        mean = self.pixel_sum / n / 255.0 if n else 0.0
        var = self.pixel_sq_sum / n / 255.0**2 - mean**2 if n else 0.0
        out = {"count": self.count, "pixel_mean": mean, "pixel_std": float(np.sqrt(max(var, 0.0)))}
        if self.labelled:
            y = np.concatenate(self._labels) if self._labels else np.zeros(0, np.int64)
            counts = np.bincount(y, minlength=n_classes or 0)
            out["per_class"] = {str(i): int(c) for i, c in enumerate(counts)}
        return out


def write_split(directory: str | os.PathLike, s: Split, class_names: list[str] | None = None,
                shard_bytes: int = SHARD_BYTES) -> dict:
    """Write an in-memory split (tests, benchmarks, ``prepare`` for small sources); return its index."""
    w = SplitWriter(directory, s.x.shape[1:], s.y is not None, shard_bytes)
    w.add(np.asarray(s.x), s.y)
    return w.close(class_names if class_names is not None else s.class_names)


# ------------------------------------------------------------------------------------------ reading


def read_index(directory: str | os.PathLike) -> dict:
    directory = Path(directory)
    path = directory / INDEX
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{directory}: not a prepared split (no {INDEX}; run the prepare stage)") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable split index ({e})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise DataError(f"{path}: not a {FORMAT} index")
    problem = _index_problem(index)
    if problem:
        raise DataError(f"{path}: malformed split index ({problem})")
    return index


def _is_count(v, least: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= least


def _index_problem(index: dict) -> str | None:
    """What is wrong with a split index's fields, or None. File names must be the writer's own (``x-NNNNN.npy``,
    ``y.npy``), so that an index can never point a reader outside its split's folder."""
    if not _is_count(index.get("count")):
        return f"count must be an integer >= 0, got {index.get('count')!r:.60}"
    shape = index.get("image_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_count(v, 1) for v in shape)):
        return f"image_shape must be [height, width, channels], got {shape!r:.60}"
    if not _is_count(index.get("shard_images"), 1):
        return f"shard_images must be an integer >= 1, got {index.get('shard_images')!r:.60}"
    shards = index.get("shards")
    if not isinstance(shards, list):
        return f"shards must be a list, got {shards!r:.60}"
    for i, sh in enumerate(shards):
        if not (isinstance(sh, dict) and sh.get("file") == shard_name(i) and _is_count(sh.get("count"))
                and isinstance(sh.get("sha256"), str)):
            return f"shard {i} must be {{file: {shard_name(i)}, count, sha256}}, got {sh!r:.80}"
    labels = index.get("labels")
    if labels is not None and not (isinstance(labels, dict) and labels.get("file") == LABELS
                                   and isinstance(labels.get("sha256"), str)):
        return f"labels must be null or {{file: {LABELS}, sha256}}, got {labels!r:.80}"
    names = index.get("class_names")
    if not (isinstance(names, list) and all(isinstance(n, (str, int)) and not isinstance(n, bool) for n in names)):
        return f"class_names must be a list of names, got {names!r:.60}"
    return None


def _open_npy(path: Path, count: int, shape: tuple, dtype) -> tuple[mmap.mmap | None, np.ndarray]:
    """A ``.npy`` file's array, memory-mapped read-only (checked against the index's count and shape)."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        try:
            got_shape, fortran, got_dtype, offset = read_npy_header(f)
        except ValueError as e:
            raise DataError(f"{path}: not a .npy array ({e})") from None
        want = (count, *shape)
        if fortran:
            raise DataError(f"{path}: is stored in Fortran order; a split's arrays are C-ordered (rerun prepare)")
        if got_shape != want or got_dtype != np.dtype(dtype):
            raise DataError(f"{path}: holds {got_dtype} {got_shape}, the index says {np.dtype(dtype)} {want}")
        size = offset + got_dtype.itemsize * int(np.prod(want))
        if os.fstat(f.fileno()).st_size != size:
            raise DataError(f"{path}: {os.fstat(f.fileno()).st_size} bytes, expected {size} (truncated or corrupt)")
        if count == 0:
            return None, np.zeros(want, dtype)
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    return m, np.frombuffer(m, dtype, count=int(np.prod(want)), offset=offset).reshape(want)


class ShardedImages:
    """A split's images as one read-only (N, H, W, C) uint8 sequence over its memory-mapped shards.
    ``x[idx]`` with an integer array (any order) or a slice gathers those rows into a new array."""

    dtype = np.dtype(np.uint8)

    def __init__(self, directory: str | os.PathLike, index: dict):
        self.dir = Path(directory)
        self.shard_images = int(index["shard_images"])
        self.shape = (int(index["count"]), *(int(s) for s in index["image_shape"]))
        self._maps, self._arrays = [], []
        for sh in index["shards"]:
            m, a = _open_npy(self.dir / sh["file"], int(sh["count"]), self.shape[1:], np.uint8)
            self._maps.append(m)
            self._arrays.append(a)
        counts = [len(a) for a in self._arrays]
        if sum(counts) != self.shape[0] or any(c != self.shard_images for c in counts[:-1]):
            raise DataError(f"{self.dir / INDEX}: shard counts {counts} do not add up to {self.shape[0]} "
                            f"images of {self.shard_images} per shard")
        self._read = 0
        self._baseline = resident_shared_bytes()

    @property
    def ndim(self) -> int:
        return 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx) -> np.ndarray:
        if isinstance(idx, slice):
            idx = np.arange(*idx.indices(len(self)))
        idx = np.asarray(idx)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise TypeError("ShardedImages takes a slice or a 1-D integer index array")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"index out of range for {len(self)} images")
        order = np.argsort(idx, kind="stable")  # sorted reads: forward through each mapped shard
        rows = idx[order]
        out = np.empty((len(idx), *self.shape[1:]), np.uint8)
        bounds = np.searchsorted(rows, np.arange(1, len(self._arrays)) * self.shard_images)
        for shard, (a, b) in enumerate(zip([0, *bounds], [*bounds, len(rows)])):
            if b > a:
                out[order[a:b]] = self._arrays[shard][rows[a:b] - shard * self.shard_images]
        self._read += out.nbytes
        shared = resident_shared_bytes() if self._baseline is not None else None
        if shared is not None and shared - self._baseline > MAPPED_BUDGET:
            self.release()
            self._baseline = resident_shared_bytes()
        elif shared is None and self._read >= RELEASE_BYTES:
            self.release()
        return out

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def release(self) -> None:
        """Unmap the pages read so far from this process (they stay in the page cache)."""
        self._read = 0
        for m in self._maps:
            if m is not None and hasattr(mmap, "MADV_DONTNEED"):
                m.madvise(mmap.MADV_DONTNEED)


def load_split(directory: str | os.PathLike, mmap: bool = False, verify: bool = True) -> Split:
    """Read a prepared split: images (N,H,W,C) uint8 (in memory, or with ``mmap`` a :class:`ShardedImages`
    read a batch at a time), labels or None, class names or None. ``verify``: check every file against the
    SHA-256 in the index (a corrupt or swapped shard is an error naming it); ``Split.digest`` is then the
    split's identity, the SHA-256 of its index."""
    directory = Path(directory)
    index = read_index(directory)
    try:
        files = [*index["shards"], *([index["labels"]] if index["labels"] else [])]
        if verify:
            for entry in files:
                path = directory / entry["file"]
                if not path.is_file():
                    raise DataError(f"{path}: file not found (listed in {directory / INDEX})")
                if sha256_file(path) != entry["sha256"]:
                    raise DataError(f"{path}: content differs from the SHA-256 in {directory / INDEX} (corrupt or replaced)")
        x = ShardedImages(directory, index)
        y = None
        if index["labels"]:
            _, y = _open_npy(directory / index["labels"]["file"], len(x), (), np.int64)
            y = np.array(y)
    except (KeyError, TypeError) as e:
        raise DataError(f"{directory / INDEX}: malformed split index ({type(e).__name__}: {e})") from None
    if not mmap:
        x = x[:]
    names = [str(n) for n in index["class_names"]] or None
    if y is not None and len(y) and (y.min() < 0 or (names is not None and y.max() >= len(names))):
        bad = int(y.min()) if y.min() < 0 else int(y.max())
        raise DataError(f"{directory / index['labels']['file']}: label {bad} is outside the {len(names or [])} "
                        f"class names of {directory / INDEX} (labels must be 0..{len(names or []) - 1})")
    digest = hashlib.sha256((directory / INDEX).read_bytes()).hexdigest() if verify else None
    return Split(x, y, names, digest)
