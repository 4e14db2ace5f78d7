"""Compute use: model FLOPs per training image and achieved GFLOPS against this machine's matmul peak,
img/s of the default profile (through the train stage's machinery) against the keras.io WGAN-GP recipe
(through its own ``fit()``), and the share of a stage step spent waiting for input. Everything is
measured in this one run, on this machine.

- FLOPs: TensorFlow's profiler over the traced training step, pruned to the ops the step needs
  (``bench.perf.graph_flops``); a step's FLOPs / its real images. Ours: the same updates as the
  stage (plain step; the EMA update adds only elementwise work). Recipe: its ``train_step``.
- peak: an n x n x n float32 matmul chain (``bench.perf.matmul_peak``).
- input wait: 1 - (stage time fed one ready batch over and over) / (stage time fed by its pipeline).

    .venv/bin/python bench/compute.py [--steps 60] [--recipe-steps 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the bench.* helpers
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.baselines import KERAS_IO_WGAN_GP, keras_io_wgan_gp  # noqa: E402
from bench.perf import graph_flops, matmul_peak, plain_step_fn, time_stage_steps  # noqa: E402
from ganpipe import build, losses, params  # noqa: E402
from ganpipe.decoders import load_fashion_mnist  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def ours(x, y, steps):
    p = params.read_params_file(REPO / "params.yaml")
    mc, tc = params.from_dict(params.Model, p["model"]), params.from_dict(params.Train, p["train"])
    mc, tc, _ = params.resolve_auto(mc, tc, 1)  # Fashion-MNIST: grey
    b = tc.batch_size
    xs, ys = x[: b * (steps + 3)], y[: b * (steps + 3)].astype(np.int32)
    build.configure(tc, 0, second_order=losses.second_order(mc))
    gan = build.build_gan(mc, tc, 28, 1, 10, seed=0)
    flops = graph_flops(plain_step_fn(gan).get_concrete_function(tf.TensorSpec((b, 28, 28, 1)))) / b
    t_real = time_stage_steps(gan, xs, ys, b, steps, tc)
    t_cached = time_stage_steps(gan, xs, ys, b, steps, tc, cached_input=True)
    return {"name": f"ours: default profile ({mc.arch}, {mc.loss}, EMA), stage", "batch": b, "flops": flops,
            "img_s": steps * b / t_real, "input_wait": 1 - t_cached / t_real}


def recipe(x, steps):
    tc = params.from_dict(params.Train, params.read_params_file(REPO / "params.yaml")["train"])
    build.configure(params.from_dict(params.Train, params.to_dict(tc) | {"deterministic": False}), 0)
    model = keras_io_wgan_gp(0)  # as published: default TensorFlow settings (Grappler on, no op determinism)
    b = KERAS_IO_WGAN_GP["batch_size"]
    flops = graph_flops(tf.function(model.train_step).get_concrete_function(tf.TensorSpec((b, 28, 28, 1)))) / b
    xs = (x[: b * (steps + 1)].astype(np.float32) - 127.5) / 127.5
    model.fit(xs[:b], batch_size=b, epochs=1, verbose=0, shuffle=False)  # trace
    t0 = time.perf_counter()
    model.fit(xs[b:], batch_size=b, epochs=1, verbose=0, shuffle=False)
    return {"name": "keras.io WGAN-GP recipe, its own fit()", "batch": b, "flops": flops,
            "img_s": steps * b / (time.perf_counter() - t0), "input_wait": None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60, help="timed steps of ours")
    ap.add_argument("--recipe-steps", type=int, default=3, help="timed steps of the recipe")
    args = ap.parse_args()
    raw = load_fashion_mnist()
    x, y = raw.train.x, raw.train.y
    peak = matmul_peak()
    print(f"device {tf.config.list_logical_devices()[-1].name}, {os.cpu_count()} CPUs; "
          f"float32 matmul peak (2048^3): {peak:.1f} GFLOPS")
    rows = [ours(x, y, args.steps), recipe(x, args.recipe_steps)]
    print(f"{'run':52} {'batch':>5} {'GFLOP/img':>10} {'img/s':>8} {'GFLOPS':>8} {'of peak':>8} {'input wait':>10}")
    for r in rows:
        achieved = r["flops"] * r["img_s"] / 1e9
        wait = "" if r["input_wait"] is None else f"{100 * r['input_wait']:9.1f}%"
        print(f"{r['name']:52} {r['batch']:5d} {r['flops'] / 1e9:10.3f} {r['img_s']:8.1f} {achieved:8.1f} "
              f"{100 * achieved / peak:7.1f}% {wait:>10}")
    print(f"ours / recipe img/s: {rows[0]['img_s'] / rows[1]['img_s']:.1f}x; "
          f"GFLOP per image: recipe / ours {rows[1]['flops'] / rows[0]['flops']:.1f}x")


if __name__ == "__main__":
    main()
