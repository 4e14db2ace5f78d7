"""Memory of the train stage against dataset size: does peak RSS stay flat as the prepared split grows?

For each (images, size) cell a synthetic prepared split of random uint8 RGB images is written as the
prepare stage writes it (an uncompressed ``.npz``, streamed from a memory-mapped scratch array so that
this script stays small too), and a child process trains ``--steps`` steps on it the way the train stage
does (``load_split(..., mmap=True)``, ``training.train``; a small DCGAN, batch 64) and reports its peak
RSS (``ru_maxrss``), its anonymous memory at the end (``RssAnon``: memory that is not file pages the kernel
can drop) and its img/s. The prepare stage itself still holds a split in memory (see README).

    .venv/bin/python bench/scale.py [--cells 10000x64,50000x64,200000x64,50000x128] [--steps 60] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHILD = r"""
import json, os, resource, sys, time
from ganpipe import params
from ganpipe.prepare import load_split
from ganpipe import training
path, steps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
split = load_split(path, mmap=True)
tiny = dict(arch="dcgan", loss="ns", latent_dim=64, g_width=16, d_width=16, spectral_norm=False, conditional=False,
            gp_weight=10.0, critic_steps=1)
mc = params.from_dict(params.Model, tiny)
base = params.read_params_file(os.path.join(os.environ["REPO"], "params.yaml"))["train"]
tc = params.from_dict(params.Train, base | dict(batch_size=64, kimg=None, epochs=1, max_steps=steps, eval_every=0.0,
                                                keep="last", checkpoint_every=10**6))
t0 = time.perf_counter()
m = training.train(split.x, split.y, 10, "synthetic", mc, tc, 0, checkpoint_dir=out + "/ckpt", models_dir=out + "/models",
                   metrics_path=out + "/train.json", live_dir=out + "/live", progress=False, log=lambda *_: None)
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_anon_mb": int(status["RssAnon"].split()[0]) / 1024,
                  "rss_file_mb": int(status["RssFile"].split()[0]) / 1024,
                  "img_per_sec": m["img_per_sec"]}))
"""


def write_split(path: Path, n: int, size: int, scratch: Path) -> None:
    from ganpipe.io import save_npz

    x = np.lib.format.open_memmap(scratch, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    rng = np.random.default_rng(0)
    for i in range(0, n, 10000):
        x[i:i + 10000] = rng.integers(0, 256, x[i:i + 10000].shape, dtype=np.uint8)
    x.flush()
    save_npz(path, x=x, y=(np.arange(n) % 10).astype(np.int64))  # streamed member by member, in chunks
    del x
    scratch.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", default="10000x64,50000x64,200000x64,50000x128")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ganpipe-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "REPO": str(REPO), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    print(f"train stage memory, {args.steps} steps of a small DCGAN at batch 64 from a memory-mapped split")
    print("| images | size | split on disk | peak RSS | RssAnon at end | RssFile at end | img/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for cell in args.cells.split(","):
        n, size = (int(v) for v in cell.split("x"))
        path = work / f"train-{n}x{size}.npz"
        if not path.exists():
            write_split(path, n, size, work / "scratch.npy")
        out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(args.steps), str(work / f"run-{cell}")],
                             env=env, capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {n:,} | {size}x{size}x3 | {path.stat().st_size / 2**30:.2f} GiB | {r['peak_rss_mb']:,.0f} MiB | "
              f"{r['rss_anon_mb']:,.0f} MiB | {r['rss_file_mb']:,.0f} MiB | {r['img_per_sec']:,.0f} |", flush=True)
        path.unlink()


if __name__ == "__main__":
    main()
