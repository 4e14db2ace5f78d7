"""Memory of the prepare and train stages against dataset size: does peak RSS stay flat as data grows?

For each (images, size) cell a synthetic dataset of random uint8 RGB images is written as an
uncompressed ``.npz`` (``prepare.source: npz:<file>``; streamed from a memory-mapped scratch array so
that this script stays small too). One child process runs the prepare stage's logic on it
(``ganpipe.prepare.prepare``: the source read a chunk at a time, sharded splits written), another trains
``--steps`` steps on the prepared train split the way the train stage does (``load_split(..., mmap=True)``,
``training.train``; a small DCGAN, batch 64). Each reports its peak RSS (``VmHWM``: ``ru_maxrss`` would
carry over this script's own peak into a child it forks), and the trainer
its anonymous memory at the end (``RssAnon``), its mapped file pages (``RssFile``) and its img/s.

    .venv/bin/python bench/scale.py [--cells 10000x64,50000x64,200000x64,50000x128] [--steps 60] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PREPARE = r"""
import json, os, sys
from ganpipe import params
from ganpipe.prepare import prepare
source, size, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cfg = params.from_dict(params.Prepare, params.read_params_file(os.path.join(os.environ["REPO"], "params.yaml"))["prepare"]
                       | dict(source="npz:" + source, image_size=size, channels=3, test_fraction=0.02))
prepare(cfg, 0, out + "/prepared", out + "/data.json")
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
print(json.dumps({"peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024}))
"""

CHILD = r"""
import json, os, sys, time
from ganpipe import params
from ganpipe.splits import load_split
from ganpipe import training
path, steps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
split = load_split(path, mmap=True)
tiny = dict(arch="dcgan", loss="ns", latent_dim=64, g_width=16, d_width=16, spectral_norm=False, conditional=False,
            gp_weight=10.0, r1_gamma=0.0, r2_gamma=0.0, reg_interval=16, critic_steps=1)
mc = params.from_dict(params.Model, tiny)
base = params.read_params_file(os.path.join(os.environ["REPO"], "params.yaml"))["train"]
tc = params.from_dict(params.Train, base | dict(batch_size=64, kimg=None, epochs=1, max_steps=steps, eval_every=0.0,
                                                keep="last", checkpoint_every=10**6))
t0 = time.perf_counter()
m = training.train(split.x, split.y, 10, "synthetic", mc, tc, 0, checkpoint_dir=out + "/ckpt", models_dir=out + "/models",
                   metrics_path=out + "/train.json", live_dir=out + "/live", progress=False, log=lambda *_: None)
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
print(json.dumps({"peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024,
                  "rss_anon_mb": int(status["RssAnon"].split()[0]) / 1024,
                  "rss_file_mb": int(status["RssFile"].split()[0]) / 1024,
                  "img_per_sec": m["img_per_sec"]}))
"""


def write_source(path: Path, n: int, size: int, scratch: Path) -> None:
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
    print(f"prepare (npz source -> shards), then train: {args.steps} steps of a small DCGAN at batch 64")
    print("| images | size | data on disk | prepare: peak RSS | prepare: s | train: peak RSS | RssAnon at end "
          "| RssFile at end | img/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def child(code, *argv):
        out = subprocess.run([sys.executable, "-c", code, *map(str, argv)], env=env, capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        return json.loads(out.stdout.strip().splitlines()[-1])

    for cell in args.cells.split(","):
        n, size = (int(v) for v in cell.split("x"))
        path, run = work / f"source-{n}x{size}.npz", work / f"run-{cell}"
        if not path.exists():
            write_source(path, n, size, work / "scratch.npy")
        t0 = time.perf_counter()
        p = child(PREPARE, path, size, run)
        seconds = time.perf_counter() - t0
        r = child(CHILD, run / "prepared/train", args.steps, run)
        print(f"| {n:,} | {size}x{size}x3 | {path.stat().st_size / 2**30:.2f} GiB | {p['peak_rss_mb']:,.0f} MiB | "
              f"{seconds:.0f} | {r['peak_rss_mb']:,.0f} MiB | {r['rss_anon_mb']:,.0f} MiB | {r['rss_file_mb']:,.0f} MiB | "
              f"{r['img_per_sec']:,.0f} |", flush=True)
        path.unlink()
        shutil.rmtree(run)


if __name__ == "__main__":
    main()
