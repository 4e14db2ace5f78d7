"""Drawing samples from a saved generator: batched, seeded, with grids and a latent interpolation strip."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from . import seeds
from .errors import DataError
from .plots import image_grid, to_uint8


@dataclass
class GeneratorInfo:
    latent_dim: int
    num_classes: int  # 0: unconditional
    image_shape: tuple


def describe(generator, path: str | os.PathLike = "generator") -> GeneratorInfo:
    inputs = generator.inputs
    latent = int(inputs[0].shape[-1])
    num_classes = 0
    if len(inputs) == 2:
        try:
            num_classes = int(generator.get_layer("label_embedding").input_dim)
        except ValueError:
            raise DataError(f"{path}: conditional generator without a 'label_embedding' layer") from None
    elif len(inputs) != 1:
        raise DataError(f"{path}: expected a generator with inputs z or [z, label], got {len(inputs)} inputs")
    return GeneratorInfo(latent, num_classes, tuple(generator.output_shape[1:]))


def finite_images(images, generator_path: str | os.PathLike, first: int) -> np.ndarray:
    """Generator output as uint8; a DataError naming the generator when it holds NaN or Inf (cast to
    uint8 they would become black images that look like a bad but valid sample)."""
    x = np.asarray(images, np.float32)
    bad = ~np.isfinite(x).reshape(len(x), -1).all(axis=1)
    if bad.any():
        raise DataError(f"{generator_path}: the generator's output is NaN or Inf (first at sample "
                        f"{first + int(bad.argmax())}, {int(bad.sum())} of its batch of {len(x)}); its weights are "
                        f"broken: retrain it")
    return to_uint8(x)


def generate(generator, n: int, seed: int, batch_size: int = 500, progress: bool = True,
             labels: np.ndarray | None = None, path: str | os.PathLike = "generator"
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` uint8 samples (N, H, W, C); conditional models get balanced labels 0..K-1 (returned).
    NaN or Inf output is a DataError naming ``path``."""
    info = describe(generator, path)
    z = seeds.rng(seed, "generate", 0).standard_normal((n, info.latent_dim)).astype(np.float32)
    if info.num_classes and labels is None:
        labels = (np.arange(n) % info.num_classes).astype(np.int32)
    out = np.empty((n, *info.image_shape), np.uint8)
    bar = None
    if progress:
        bar = tqdm(total=n, unit="img", desc="generate", dynamic_ncols=True)
    for i in range(0, n, batch_size):
        zb = z[i:i + batch_size]
        inp = [zb, labels[i:i + batch_size, None].astype(np.int32)] if info.num_classes else zb
        out[i:i + batch_size] = finite_images(generator(inp, training=False), path, i)
        if bar is not None:
            bar.update(len(zb))
    if bar is not None:
        bar.close()
    return out, (labels if info.num_classes else None)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between latent vectors a and b at fractions t."""
    an, bn = a / np.linalg.norm(a), b / np.linalg.norm(b)
    omega = np.arccos(np.clip(an @ bn, -1, 1))
    if omega < 1e-6:
        return (1 - t)[:, None] * a + t[:, None] * b
    return (np.sin((1 - t) * omega)[:, None] * a + np.sin(t * omega)[:, None] * b) / np.sin(omega)


def interpolation_strip(generator, rows: int, steps: int, seed: int) -> np.ndarray:
    """``rows`` rows of ``steps`` images along slerp paths between random latent pairs."""
    info = describe(generator)
    rng = seeds.rng(seed, "generate", 1)
    t = np.linspace(0, 1, steps)
    zs = np.concatenate([slerp(*rng.standard_normal((2, info.latent_dim)), t) for _ in range(rows)])
    zs = zs.astype(np.float32)
    if info.num_classes:
        labels = (np.repeat(np.arange(rows), steps) % info.num_classes).astype(np.int32)[:, None]
        imgs = generator([zs, labels], training=False)
    else:
        imgs = generator(zs, training=False)
    return image_grid(to_uint8(imgs), steps)


def sample_grid(samples: np.ndarray, grid: int) -> np.ndarray:
    return image_grid(samples[: grid * grid], grid)


def per_class_grid(generator, per_class: int, seed: int) -> np.ndarray:
    """One row per class, ``per_class`` samples each (conditional generators)."""
    info = describe(generator)
    labels = np.repeat(np.arange(info.num_classes), per_class).astype(np.int32)
    imgs, _ = generate(generator, len(labels), seed + 1, progress=False, labels=labels)
    return image_grid(imgs, per_class)
