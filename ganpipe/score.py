"""``ganpipe evaluate --samples DIR_OR_NPZ``: score anyone's samples with the evaluate stage's protocol.

The same extractor (``models/classifier.keras`` or InceptionV3), real statistics (``data/features/``
or the prepared test split), ``evaluate`` params and seed as the pipeline, so the numbers carry the same
names and protocol as ``metrics/eval.json`` and compare with it (``ganpipe report`` checks the protocol).
No floor or ceiling: those are measured by the evaluate stage with the pipeline's generator.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import metrics as M
from . import params, seeds
from .decoders import load_image_dir
from .errors import DataError
from .evaluation import load_samples, protocol, quality
from .features import open_extractor
from .transforms import resize_images, to_channels

CLASSIFIER = "models/classifier.keras"
STATS = "data/features/real_stats.npz"
TEST = "data/prepared/test"


def load_any_samples(path: str | os.PathLike, height: int, channels: int) -> np.ndarray:
    """uint8 (N, height, height, channels) from a folder of PNG/JPEG images (flat or class folders; the
    labels are ignored) or an ``.npz`` with ``x``; resized and converted like the ``prepare`` stage does."""
    path = Path(path)
    if path.is_dir():
        images = load_image_dir(path, size=height).train.x
    elif path.suffix.lower() == ".npz":
        images, _ = load_samples(path)
    else:
        raise DataError(f"{path}: not a folder of PNG/JPEG images or an .npz file with samples 'x'")
    if len(images) == 0:
        raise DataError(f"{path}: holds no images (samples 'x' is empty)")
    return to_channels(resize_images(images, height), channels)


def score(samples: str | os.PathLike, repo: str | os.PathLike = ".") -> dict:
    """The evaluate stage's sample metrics (no references) and protocol for ``samples``, in ``repo``."""
    repo = Path(repo)
    cfg = params.load("evaluate", repo / "params.yaml")
    seed = params.load("base", repo / "params.yaml").seed
    if cfg.extractor == "classifier":
        for need in (CLASSIFIER, STATS):
            if not (repo / need).is_file():
                raise DataError(f"{repo / need}: not found; run `dvc repro features` (or `dvc pull`) first")
    numerics = seeds.exact_inference(seed)  # as the evaluate stage computes them
    extractor, real = open_extractor(cfg.extractor, repo / CLASSIFIER, repo / STATS, repo / TEST, cfg.batch_size)
    height, channels = real.image_shape[0], real.image_shape[2]
    x = load_any_samples(samples, height, channels)
    feats, probs = extractor(x, cfg.batch_size)
    out = quality(feats, real.features, real.mu, real.sigma, cfg, seed, extractor.tag)
    if probs is not None:
        out["clf_score"] = M.classifier_score(probs)
    out["protocol"] = protocol(extractor, len(x), real.features, cfg, real.split, numerics) | {"samples": str(samples)}
    return out


def summary(result: dict) -> list[str]:
    """One line per metric, ``name value [lo, hi]``, for the terminal."""
    lines = []
    for k, v in result.items():
        if isinstance(v, dict) or k.endswith(("_ci95_lo", "_ci95_hi")):
            continue
        ci = (f" [{result[k + '_ci95_lo']:.4g}, {result[k + '_ci95_hi']:.4g}]" if k + "_ci95_lo" in result else "")
        lines.append(f"{k} {v:.4g}{ci}")
    return lines
