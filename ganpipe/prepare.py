"""The ``prepare`` stage's logic: a source's images selected, split, resized and written as prepared splits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import seeds
from .errors import DataError
from .io import load_npz, load_npz_mmap, save_npz, write_json
from .sources import RawData, Split, load_source
from .transforms import resize_images, stratified_choice, to_channels


@dataclass
class Prepared:
    train: Split
    test: Split
    class_names: list[str] | None
    metrics: dict


def _split_summary(s: Split, n_classes: int | None) -> dict:
    x = s.x.astype(np.float64) / 255.0
    out = {"count": int(len(s)), "pixel_mean": float(x.mean()), "pixel_std": float(x.std())}
    if s.y is not None:
        counts = np.bincount(s.y, minlength=n_classes or 0)
        out["per_class"] = {str(i): int(c) for i, c in enumerate(counts)}
    return out


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


def prepare(params, seed: int, raw: RawData | None = None) -> Prepared:
    """Run the prepare stage's logic on ``params`` (a :class:`ganpipe.params.Prepare`)."""
    raw = load_source(params.source, params.on_bad_image, params.image_size) if raw is None else raw
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

    def finish(s: Split) -> Split:
        x = resize_images(s.x, params.image_size)
        return Split(to_channels(x, params.channels), s.y)

    train, test = finish(train), finish(test)
    n_classes = len(names) if names else None
    metrics = {
        "source": raw.source,
        "files_sha256": raw.files,
        "image_shape": list(train.x.shape[1:]),
        "num_classes": n_classes or 0,
        "class_names": names or [],
        "train": _split_summary(train, n_classes),
        "test": _split_summary(test, n_classes),
        "skipped_images": len(raw.skipped),
        "skipped_files": raw.skipped,
    }
    return Prepared(train, test, names, metrics)


def save_split(path: str | os.PathLike, s: Split, class_names: list[str] | None) -> None:
    arrays = {"x": s.x}
    if s.y is not None:
        arrays["y"] = s.y
    if class_names:
        arrays["class_names"] = np.asarray(class_names, dtype=str)
    save_npz(path, **arrays)


def write_prepared(prepared: Prepared, out_dir: str | os.PathLike, metrics_path: str | os.PathLike) -> None:
    out_dir = Path(out_dir)
    save_split(out_dir / "train.npz", prepared.train, prepared.class_names)
    save_split(out_dir / "test.npz", prepared.test, prepared.class_names)
    write_json(metrics_path, prepared.metrics)


def load_split(path: str | os.PathLike, mmap: bool = False) -> Split:
    """Read a prepared split: images (N,H,W,C) uint8, labels or None, class names or None. ``mmap``: the
    images memory-mapped from the file rather than read into memory (training reads a batch at a time)."""
    arrays = load_npz(path, skip=("x",) if mmap else ())
    x = load_npz_mmap(path, "x") if mmap else arrays.get("x")
    if x is None or x.dtype != np.uint8 or x.ndim != 4:
        raise DataError(f"{path}: not a prepared split (needs uint8 array 'x' of shape (N,H,W,C))")
    names = arrays.get("class_names")
    return Split(x, arrays.get("y"), None if names is None else [str(n) for n in names])
