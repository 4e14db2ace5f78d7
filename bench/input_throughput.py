"""Host input pipeline throughput: how many images per second ``feed.epoch_dataset`` delivers alone
(gather a batch in the epoch's order, scale to [-1, 1]; a step's random draws are made on the device by
``gan.step_noise``, not here), against the train stage's own step rate on this machine, so it is clear
which one bounds training.

For each batch size, the pipeline alone is timed over ``--steps`` steps of a real Fashion-MNIST epoch,
from memory and from a prepared split's memory-mapped shards (``ganpipe.splits``), alternately (memory, mmap, memory, mmap, ...)
``--rounds`` times; medians are printed. The device-side draws are timed too (``step_noise`` for the
default params' spec, as a ``tf.function`` on this CPU). A GPU step of our default networks ran at 110k img/s (float32) and 310k img/s
(bfloat16) at batch 1024 on an H200 (bench/results/gpu_check.log): the goal is at least twice that.

    .venv/bin/python bench/input_throughput.py [--batches 64,1024] [--steps 200] [--rounds 3] [--train-steps 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ganpipe import build, feed, params  # noqa: E402
from ganpipe.gan_tf import step_noise  # noqa: E402
from ganpipe.splits import Split  # noqa: E402
from ganpipe.splits import load_split, write_split  # noqa: E402
from ganpipe.decoders import load_fashion_mnist  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def pipeline_rate(x, y, batch: int, steps: int) -> float:
    steps = min(steps, len(x) // batch - 5)  # within one epoch
    ds = feed.epoch_dataset(x, y, batch, 0, 0, 0, steps + 5)
    it = iter(ds)
    for _ in range(5):
        next(it)  # warm-up: tracing, the first prefetch
    t0 = time.perf_counter()
    for _ in range(steps):
        next(it)
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="64,1024")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=20, help="stage steps timed for the comparison (0 = skip)")
    args = ap.parse_args()

    raw = load_fashion_mnist()
    x, y = raw.train.x, raw.train.y.astype(np.int32)
    mc = params.load("model", REPO / "params.yaml")
    tc = params.load("train", REPO / "params.yaml")
    mc, tc, _ = params.resolve_auto(mc, tc, 1)  # Fashion-MNIST: grey
    build.configure(tc, 0)
    gan = build.build_gan(mc, tc, 28, 1, 10, seed=0)
    spec = gan.noise_spec()
    with tempfile.TemporaryDirectory() as tmp:
        write_split(Path(tmp) / "train", Split(x, y))
        xm = load_split(Path(tmp) / "train", mmap=True).x
        print(f"input pipeline alone ({args.rounds} rounds of up to {args.steps} steps, medians); device-side "
              f"draws of params.yaml's model/train: {sorted(spec)}")
        for batch in (int(b) for b in args.batches.split(",")):
            mem, mapped = [], []
            for _ in range(args.rounds):
                mem.append(pipeline_rate(x, y, batch, args.steps))
                mapped.append(pipeline_rate(xm, y, batch, args.steps))
            draw = tf.function(lambda s, b=batch: step_noise(spec, b, s, 0))
            draw(tf.constant(0, tf.int64))
            t0 = time.perf_counter()
            for s in range(1, 51):
                [v.numpy() for v in draw(tf.constant(s, tf.int64)).values()]
            noise_rate = 50 * batch / (time.perf_counter() - t0)
            print(f"  batch {batch:5d}: in memory {statistics.median(mem):10,.0f} img/s   "
                  f"memory-mapped {statistics.median(mapped):10,.0f} img/s   "
                  f"(step_noise on this CPU: {noise_rate:,.0f} img/s)")
    if args.train_steps:
        from bench.perf import time_stage_steps

        seconds = time_stage_steps(gan, x, y, tc.batch_size, args.train_steps, tc)
        print(f"train stage steps (params.yaml, batch {tc.batch_size}, this CPU): "
              f"{args.train_steps * tc.batch_size / seconds:,.0f} img/s")


if __name__ == "__main__":
    main()
