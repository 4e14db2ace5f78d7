"""Image and index transforms of the ``prepare`` stage: stratified subsets, channel conversion, resizing."""

from __future__ import annotations

import numpy as np
from skimage.transform import resize


def stratified_choice(y: np.ndarray | None, n_items: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``n`` of ``n_items`` items, keeping class proportions (largest remainder)."""
    if n >= n_items:
        return np.arange(n_items)
    if y is None:
        return np.sort(rng.permutation(n_items)[:n])
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * (n / n_items)
    take = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: n - take.sum()]] += 1
    chosen = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """(N,H,W,C) uint8 with C in 1,3,4 -> C = ``channels``. Grey from RGB by ITU-R 601 luma."""
    c = x.shape[-1]
    if c == 4:
        x, c = x[..., :3], 3
    if c == channels:
        return x
    if channels == 3:
        return np.repeat(x, 3, axis=-1)
    luma = x.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]


def _center_square(im: np.ndarray) -> np.ndarray:
    h, w = im.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return im[top : top + s, left : left + s]


def resize_images(x: np.ndarray | list, size: int, chunk: int = 512) -> np.ndarray:
    """Resize to ``size`` x ``size`` with anti-aliasing (non-square images are centre-cropped first)."""
    def one_batch(batch: np.ndarray) -> np.ndarray:
        out = resize(batch.astype(np.float64), (len(batch), size, size, batch.shape[-1]),
                     order=1, anti_aliasing=True, preserve_range=True, mode="reflect")
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    if isinstance(x, np.ndarray):
        if x.shape[1] != x.shape[2]:
            x = np.stack([_center_square(im) for im in x])
        if x.shape[1:3] == (size, size):
            return x
        return np.concatenate([one_batch(x[i : i + chunk]) for i in range(0, len(x), chunk)])
    out = []
    for im in x:
        im = _center_square(im)
        out.append(im if im.shape[:2] == (size, size) else one_batch(im[None])[0])
    return np.stack(out)
