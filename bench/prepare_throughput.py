"""``prepare`` throughput on a folder of many JPEGs: worker processes against a single-process loop.

Writes ``--n`` JPEGs of ``--src`` px (smooth random colour fields with noise, in 10 class folders; made
in parallel, not timed), then runs the prepare stage's logic (``ganpipe.prepare.prepare``: list, draw the
held-out split, decode + resize in workers, write shards) to ``--out`` px RGB with ``workers=1`` and
with one worker per CPU, alternately (1, N, 1, N, ...) ``--rounds`` times, and prints img/s (medians),
their ratio, whether both wrote the same bytes, and the peak RSS of this (parent) process.

    .venv/bin/python bench/prepare_throughput.py [--n 100000] [--src 96] [--out 64] [--rounds 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ganpipe import params  # noqa: E402
from ganpipe.prepare import default_workers, prepare  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _write(job) -> None:
    root, start, stop, src = job
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        small = rng.uniform(0, 255, (6, 6, 3)).astype(np.uint8)
        base = np.asarray(Image.fromarray(small).resize((src, src), Image.BICUBIC), np.float64)
        im = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(im).save(Path(root) / f"c{i % 10}" / f"{i:06d}.jpg", quality=90)


def make_folder(root: Path, n: int, src: int) -> None:
    for c in range(10):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
    jobs = [(str(root), a, min(a + 1000, n), src) for a in range(0, n, 1000)]
    with multiprocessing.get_context("forkserver").Pool(default_workers()) as pool:
        pool.map(_write, jobs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--src", type=int, default=96)
    ap.add_argument("--out", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ganpipe-prep-"))
    root = work / "jpegs"
    if not (root / "c9").exists():
        t = time.perf_counter()
        make_folder(root, args.n, args.src)
        print(f"wrote {args.n:,} JPEGs of {args.src}x{args.src} in {time.perf_counter() - t:.0f} s")
    base = params.read_params_file(REPO / "params.yaml")["prepare"]
    cfg = params.from_dict(params.Prepare, base | dict(source=f"images:{root}", image_size=args.out, channels=3))
    n_workers = default_workers()
    rates = {1: [], n_workers: []}
    index = {}
    for r in range(args.rounds):
        for workers in (1, n_workers):
            out = work / f"out-{workers}"
            t = time.perf_counter()
            m = prepare(cfg, 0, out / "prepared", out / "data.json", workers=workers)
            seconds = time.perf_counter() - t
            n = m["train"]["count"] + m["test"]["count"]
            rates[workers].append(n / seconds)
            index[workers] = [(out / "prepared" / s / "index.json").read_bytes() for s in ("train", "test")]
            print(f"round {r + 1}: workers={workers}: {n:,} images in {seconds:.1f} s ({n / seconds:,.0f} img/s)",
                  flush=True)
    one, many = statistics.median(rates[1]), statistics.median(rates[n_workers])
    print(f"| {args.n:,} JPEGs {args.src} px -> {args.out} px RGB | 1 process {one:,.0f} img/s | {n_workers} workers "
          f"{many:,.0f} img/s | {many / one:.2f}x | same bytes: {index[1] == index[n_workers]} | parent peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB |")
    if not args.work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
