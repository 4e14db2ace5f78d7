"""The ``prepare`` stage's logic: a source's images selected, split, resized and written as sharded splits.

The split and the caps are drawn on labels alone, before any image is decoded; then each split is
streamed: images are decoded and resized chunk by chunk (image files in worker processes), and
written shard by shard (``ganpipe.splits``), so memory holds a few chunks and one shard whatever the
dataset's size. The bytes do not depend on the number of workers.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
from typing import Iterator

import numpy as np
from tqdm import tqdm

from . import seeds
from .decoders import ImageFiles, RawData, decode_files, image_is_colour
from .errors import DataError
from .io import atomic_dir, write_json
from .sources import load_source, parse_source
from .splits import SHARD_BYTES, Split, SplitWriter
from .transforms import resize_images, stratified_choice, to_channels

ARRAY_CHUNK = 4096  # images per chunk of an in-memory source
FOLDER_IMAGE_SIZE = 32  # ``image_size: auto`` for image files (of any sizes): what a 2-core CPU trains in an hour
FILE_CHUNK = 64  # image files per task handed to a worker process


def default_workers() -> int:
    """Worker processes for decoding image files: the CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def select_classes(raw: RawData, classes) -> tuple[Split, Split | None, list[str] | None]:
    """``prepare.classes``: keep only those labels, renumbered 0..k-1 in the order given."""
    train, test, names = raw.train, raw.test, raw.class_names
    if train.y is None:
        raise DataError(f"prepare.classes: the source {raw.source} has no labels to select classes from")
    present = set(np.unique(train.y).tolist())
    missing = [c for c in classes if c not in present]
    if missing:
        raise DataError(f"prepare.classes: label {missing[0]} does not occur in {raw.source} (labels: {sorted(present)})")
    lookup = np.full(max(max(present), max(classes)) + 1, -1, dtype=np.int64)
    lookup[list(classes)] = np.arange(len(classes))

    def select(s: Split) -> Split:
        s = s.take(np.flatnonzero(np.isin(s.y, classes)))
        return Split(s.x, lookup[s.y])

    names = [names[c] if names and c < len(names) else str(c) for c in classes]
    return select(train), (select(test) if test is not None else None), names


def choose(raw: RawData, params, seed: int) -> tuple[Split, Split, list[str] | None]:
    """The train and test splits (still undecoded for image files): classes, held-out share, caps."""
    train, test, names = raw.train, raw.test, raw.class_names
    if params.classes is not None:
        train, test, names = select_classes(raw, params.classes)
    if test is None:
        n = len(train)
        n_test = int(round(n * params.test_fraction))
        if n < 2 or n_test < 1 or n_test >= n:
            raise DataError(f"{raw.source}: {n} images are too few to hold out prepare.test_fraction={params.test_fraction}")
        test_idx = stratified_choice(train.y, n, n_test, seeds.rng(seed, "prepare.test_split"))
        train_idx = np.setdiff1d(np.arange(n), test_idx)
        train, test = train.take(train_idx), train.take(test_idx)
    if params.max_train is not None:
        train = train.take(stratified_choice(train.y, len(train), params.max_train, seeds.rng(seed, "prepare.max_train")))
    if params.max_test is not None:
        test = test.take(stratified_choice(test.y, len(test), params.max_test, seeds.rng(seed, "prepare.max_test")))
    if names is None and train.y is not None:
        n_classes = int(max(train.y.max(), test.y.max() if len(test) else 0)) + 1
        names = [str(i) for i in range(n_classes)]
    return train, test, names


def auto_size(params) -> int | None:
    """``prepare.image_size`` as decoding needs it before the data is seen: the set value, or for image
    folders under ``auto`` :data:`FOLDER_IMAGE_SIZE`; None for array sources under ``auto`` (their own size)."""
    if params.image_size != "auto":
        return params.image_size
    entry, _ = parse_source(params.source)
    return FOLDER_IMAGE_SIZE if entry.usage.startswith("images:") else None


def resolve_shape(params, train: Split, test: Split) -> tuple[int, int]:
    """(size, channels) of the prepared images. ``image_size: auto``: an array source's own size (its short
    side, rounded down to a multiple of 4, in [8, 512]), or :data:`FOLDER_IMAGE_SIZE` for image files.
    ``channels: auto``: 3 when any chosen image is colour (image files: from each file's header; arrays:
    from their channel count), else 1."""
    files = isinstance(train.x, ImageFiles)
    size = auto_size(params)
    if size is None:
        short = min(train.x.shape[1:3])
        size = int(min(max(short - short % 4, 8), 512))
    channels = params.channels
    if channels == "auto":
        if files:
            channels = 3 if any(image_is_colour(path) for s in (train, test) for path in s.x.paths) else 1
        else:
            channels = 3 if train.x.shape[-1] > 1 else 1
    return size, channels


def finish(images: np.ndarray | list, size: int, channels: int) -> np.ndarray:
    """Centre-cropped, resized to ``size`` and converted to ``channels`` (grey from RGB by luma)."""
    if isinstance(images, list):  # images of mixed sizes and channel counts
        return np.concatenate([to_channels(resize_images([im], size), channels) for im in images])
    return to_channels(resize_images(images, size), channels)


def _worker_init() -> None:
    """Ctrl-C reaches the whole process group: the parent alone handles it (terminating the pool), so no
    worker prints a traceback of its own; SIGTERM, as the parent sends it in ``terminate()``, still ends them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _decode_task(task) -> tuple[np.ndarray, list[int], list[str], list[bytes]]:
    """One worker task: decode and finish a chunk of files (a top-level function, so workers can run it)."""
    files, on_bad_image, size, channels = task
    d = decode_files(files, on_bad_image, size)
    x = finish(d.images, size, channels) if d.images else np.zeros((0, size, size, channels), np.uint8)
    return x, d.kept, d.skipped, d.digest_lines


class _Files:
    """What decoding image files found across both splits: the digest of the images used, the skipped."""

    def __init__(self):
        self.hash = hashlib.sha256()
        self.count = 0
        self.skipped: list[str] = []


def _chunks(s: Split, params, shape, workers: int, found: _Files, bar) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(images, labels) of split ``s``, finished to ``shape``, in order, a chunk at a time."""
    size, channels = shape[0], shape[2]
    if not isinstance(s.x, ImageFiles):
        for i in range(0, len(s), ARRAY_CHUNK):
            part = s.x[i:i + ARRAY_CHUNK]
            bar.update(len(part))
            yield finish(part, size, channels), (None if s.y is None else s.y[i:i + ARRAY_CHUNK])
        return
    starts = range(0, len(s), FILE_CHUNK)
    tasks = ((s.x[np.arange(i, min(i + FILE_CHUNK, len(s)))], params.on_bad_image, size, channels) for i in starts)
    if workers > 1 and len(s) > FILE_CHUNK:
        # forkserver: workers start from a clean single-threaded process (never a fork of one running TF)
        pool = multiprocessing.get_context("forkserver").Pool(min(workers, len(starts)), initializer=_worker_init)
        results = pool.imap(_decode_task, tasks)
    else:
        pool, results = None, map(_decode_task, tasks)
    try:
        for start, (x, kept, skipped, lines) in zip(starts, results):
            bar.update(len(kept) + len(skipped))
            found.skipped += skipped
            found.count += len(kept)
            for line in lines:
                found.hash.update(line)
            yield x, (None if s.y is None else s.y[start + np.asarray(kept, np.int64)])
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def prepare(params, seed: int, out_dir: str | os.PathLike, metrics_path: str | os.PathLike,
            raw: RawData | None = None, *, workers: int | None = None, shard_bytes: int = SHARD_BYTES,
            progress: bool = False) -> dict:
    """Run the prepare stage on ``params`` (a :class:`ganpipe.params.Prepare`): write ``out_dir/train`` and
    ``out_dir/test`` (``out_dir`` replaced as a whole, only once both are complete) and ``metrics_path``;
    return the metrics. ``workers``: processes decoding image files (default: one per CPU)."""
    raw = load_source(params.source) if raw is None else raw
    train, test, names = choose(raw, params, seed)
    n_classes = len(names) if names else None
    workers = default_workers() if workers is None else workers
    found = _Files()
    size, channels = resolve_shape(params, train, test)
    shape = (size, size, channels)
    summaries = {}
    with atomic_dir(out_dir) as tmp, tqdm(total=len(train) + len(test), desc="prepare", unit="img",
                                          disable=not progress, mininterval=1.0, delay=2.0) as bar:  # a bar only after 2 s: a short run that fails prints one line
        for name, s in (("train", train), ("test", test)):
            w = SplitWriter(tmp / name, shape, s.y is not None, shard_bytes)
            for x, y in _chunks(s, params, shape, workers, found, bar):
                w.add(x, y)
            w.close(names)
            if w.count == 0:
                raise DataError(f"{raw.source}: every image of the {name} split was unreadable "
                                f"({len(found.skipped)} skipped)")
            summaries[name] = w.summary(n_classes)
    files = raw.files
    if isinstance(train.x, ImageFiles):
        files = {f"{train.x.root.name}/ ({found.count} images)": found.hash.hexdigest()}
    metrics = {
        "source": raw.source,
        "files_sha256": files,
        "image_shape": list(shape),
        "num_classes": n_classes or 0,
        "class_names": names or [],
        **summaries,
        "skipped_images": len(found.skipped) + len(raw.skipped),
        "skipped_files": sorted(raw.skipped + found.skipped),
    }
    write_json(metrics_path, metrics)
    return metrics
