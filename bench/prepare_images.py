"""Preparing large photos: forty 3000x3000 JPEGs to 28 px, the `prepare` path (decode with DCT
scaling, box-filter reduce, anti-aliased resize) against decoding every image at full size and resizing
it (the path before: `Image.open(...).convert()` then `resize_images`), in the same run, interleaved
A/B/A/B per image so that a busy machine weighs on both alike.

    .venv/bin/python bench/prepare_images.py [--n 40] [--size 3000] [--full 4]

The full-size path is timed on the first ``--full`` images only (13 s each on a 2-core machine) and
reported per image; the prepare path on all ``--n``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ganpipe import decoders as S  # noqa: E402
from ganpipe import transforms as T  # noqa: E402


def photo(seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (12, 12, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC), np.float64)
    return np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)


def full_size(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return T.resize_images([arr], size)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--size", type=int, default=3000)
    ap.add_argument("--full", type=int, default=4)
    ap.add_argument("--out", type=int, default=28)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        root.mkdir()
        base = photo(0, args.size)
        for i in range(args.n):  # same content, different bytes: rolled
            Image.fromarray(np.roll(base, 37 * i, axis=1)).save(root / f"{i:03d}.jpg", quality=90)
        fast, slow, diffs = [], [], []
        for i, path in enumerate(sorted(root.iterdir())):
            t = time.perf_counter()
            a = T.resize_images([S.read_image(path, args.out)], args.out)[0]
            fast.append(time.perf_counter() - t)
            if i < args.full:
                t = time.perf_counter()
                b = full_size(path, args.out)
                slow.append(time.perf_counter() - t)
                diffs.append(np.abs(a.astype(float) - b).mean())
        t = time.perf_counter()
        raw = S.load_image_dir(root, size=args.out)
        T.resize_images(raw.train.x, args.out)
        whole = time.perf_counter() - t
    print(f"{args.n} JPEGs {args.size}x{args.size} -> {args.out} px")
    print(f"prepare path: {statistics.median(fast) * 1000:.0f} ms/image (median), all {args.n} through "
          f"load_image_dir + resize: {whole:.2f} s ({args.n / whole:.1f} img/s)")
    print(f"full-size decode + resize: {statistics.median(slow) * 1000:.0f} ms/image (median of {len(slow)}), "
          f"{args.n} would take {statistics.median(slow) * args.n:.0f} s")
    print(f"speed-up {statistics.median(slow) / statistics.median(fast):.0f}x; mean |difference| "
          f"{np.mean(diffs):.2f} grey levels (max over images {np.max(diffs):.2f})")


if __name__ == "__main__":
    main()
