"""Image grids and PNG writing (deterministic bytes: PIL writes no timestamps)."""

from __future__ import annotations

import io
import os

import numpy as np

from .io import write_bytes


def to_uint8(images) -> np.ndarray:
    """Generator output in [-1, 1] -> uint8 in [0, 255]."""
    x = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images: np.ndarray, cols: int, pad: int = 1) -> np.ndarray:
    """(N,H,W,C) uint8 -> one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) image, row-major, pad white."""
    n, h, w, c = images.shape
    rows = -(-n // cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, im in enumerate(images):
        r, k = divmod(i, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = im
    return grid


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    arr = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    write_bytes(path, png_bytes(image))
