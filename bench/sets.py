"""The small RGB sets the quality benches build here (nothing downloaded), and their scoring classifier.

- :func:`shapes`: 32x32 coloured shapes (disc, square, triangle, ring) on striped gradient backgrounds;
- :func:`photo_crops`: odd-sized crops of the photographs scikit-image ships, the way users' own photos
  look (real textures and colours, many sizes); :func:`write_folder` makes them an ``images:<dir>`` source;
- :func:`classifier`: the feature classifier and real statistics a set is scored with (``features``
  stage's recipe, trained on fresh images of the set).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def shapes(n: int, seed: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``n`` RGB images of one of 4 shapes (disc, square, triangle, ring) in a random colour, size and
    position, on a background that is a random two-colour gradient with stripes of random frequency and
    angle, plus pixel noise. Labels: the shape."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    labels = rng.integers(0, 4, n)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        angle, freq, amp = rng.uniform(0, np.pi), rng.uniform(1, 6), rng.uniform(0, 0.25)
        t = np.cos(angle) * xx + np.sin(angle) * yy
        bg = c0 + (c1 - c0) * t[..., None] / max(t.max(), 1e-6)
        bg = bg + amp * np.sin(2 * np.pi * freq * t)[..., None]
        r = rng.uniform(0.18, 0.35)
        cy, cx = rng.uniform(r, 1 - r, 2)
        dy, dx = yy - cy, xx - cx
        kind = labels[i]
        if kind == 0:
            mask = dy**2 + dx**2 < r**2
        elif kind == 1:
            mask = (np.abs(dy) < r * 0.85) & (np.abs(dx) < r * 0.85)
        elif kind == 2:
            mask = (dy < r * 0.7) & (dy > -r) & (np.abs(dx) < (dy + r) * 0.6)
        else:
            d2 = dy**2 + dx**2
            mask = (d2 < r**2) & (d2 > (0.55 * r) ** 2)
        fg = rng.uniform(0, 1, 3)
        img = np.where(mask[..., None], fg, bg) + rng.normal(0, 0.03, (size, size, 3))
        out[i] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return out, labels.astype(np.int64)


PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # scikit-image's bundled photographs: the classes


def photo_crops(n: int, seed: int, min_side: int = 40, max_side: int = 160) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` RGB crops of odd, non-square sizes (sides in [min_side, max_side]) from the photographs that
    scikit-image ships (no download), randomly flipped; label = the photograph. Users' own photos look like
    this: real textures and colours, many sizes."""
    import skimage.data

    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)()[..., :3] for name in PHOTOS]
    labels = rng.integers(0, len(photos), n)
    out = []
    for k in labels:
        im = photos[k]
        h, w = (int(v) for v in rng.integers(min_side, min(max_side, *im.shape[:2]) + 1, 2))
        y0, x0 = rng.integers(0, im.shape[0] - h + 1), rng.integers(0, im.shape[1] - w + 1)
        crop = im[y0:y0 + h, x0:x0 + w]
        out.append(np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop))
    return out, labels.astype(np.int64)


def write_folder(root: Path, images: list[np.ndarray], labels: np.ndarray, names=PHOTOS) -> Path:
    """Images as JPEG files in one folder per class: an ``images:<dir>`` source."""
    from PIL import Image

    for i, (im, y) in enumerate(zip(images, labels)):
        d = root / names[int(y)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(d / f"{i:05d}.jpg", quality=92)
    return root


def classifier(x, y, xt, yt, work: Path, family: str, seed: int) -> None:
    from ganpipe import params as P
    from ganpipe.features import ClassifierExtractor, save_real_stats, train_classifier
    from ganpipe.saving import save_model

    cfg = P.from_dict(P.Features, dict(epochs=3, batch_size=128, width=32, feature_dim=128, lr=1e-3, reference="test"))
    model, acc = train_classifier(x, y, xt, yt, int(y.max()) + 1, cfg, seed, progress=False)
    path = work / f"{family}-classifier.keras"
    save_model(model, path)
    save_real_stats(work / f"{family}-real_stats.npz", ClassifierExtractor(model, path)(xt)[0], path)
    print(f"{family}: classifier test accuracy {acc:.3f}")


KINDS = ("shapes", "photos")


def make(kind: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of set ``kind`` as the train stage gets them: uint8 (n, 32, 32, 3), and labels. Photo
    crops go through the prepare stage's resizing (``prepare.finish``) to 32 px."""
    from ganpipe.prepare import finish

    if kind == "shapes":
        return shapes(n, seed)
    if kind == "photos":
        images, labels = photo_crops(n, seed)
        return finish(images, 32, 3), labels
    raise ValueError(f"unknown set {kind!r}: one of {', '.join(KINDS)}")
