"""Training throughput of the train stage's step machinery on Keras' TensorFlow and JAX backends.

Each measurement builds the GAN of the default params (Fashion-MNIST, grey: DCGAN width 64, NS loss,
EMA with ramp-up, ADA's augmentation in the graph) at a batch size and precision, runs one execution of
``train.steps_per_execution`` steps to compile it, then times ``--steps`` steps through
``training.run_steps`` (TensorFlow: ``fit()`` over the stage's tf.data input; JAX: K steps per
``jax.jit`` call, the split on the device), the host reading the step once per execution as the stage
does. Keras' backend is chosen once per process, so each measurement is its own process; with both
backends they alternate (tensorflow, jax, tensorflow, jax, ...) ``--rounds`` times and the medians and the
jax/tensorflow ratio are printed, so that a busy machine weighs on both alike.

    .venv/bin/python bench/backend_throughput.py [--backends tensorflow,jax] [--batches 64] [--steps 64]
        [--precisions float32] [--steps-per-execution 8] [--rounds 3] [--synthetic]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measure(backend_name: str, batch: int, precision: str, steps: int, k: int, synthetic: bool) -> dict:
    """One measurement in this process (Keras not yet imported)."""
    from ganpipe import backend

    backend.use(backend_name, deterministic=True)
    import numpy as np

    from ganpipe import build, losses, params, training
    from ganpipe.feed import Feed

    p = params.read_params_file(REPO / "params.yaml")
    mc = params.from_dict(params.Model, p["model"])
    tc = params.from_dict(params.Train, p["train"] | {"batch_size": batch, "precision": precision,
                                                      "steps_per_execution": k, "backend": backend_name})
    mc, tc, _ = params.resolve_auto(mc, tc, 1)
    n = batch * (steps + k)
    if synthetic:
        x = np.random.default_rng(0).integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
    else:
        from ganpipe.decoders import load_fashion_mnist

        x = load_fashion_mnist().train.x[:n]
    build.configure(tc, 0, second_order=losses.second_order(mc))
    gan = build.build_gan(mc, tc, 28, 1, 10, build.steps().make_strategy("default"), seed=0)
    feed = Feed(x, np.zeros(len(x), np.int32), batch, 0, None)
    hook = training.StepHook(gan, steps + k, batch)
    t0 = time.perf_counter()
    training.run_steps(gan, feed, k, hook)  # compiles
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    training.run_steps(gan, feed, steps, hook)
    seconds = time.perf_counter() - t0
    return {"backend": backend_name, "device": build.steps().devices(None)[0], "batch": batch,
            "precision": precision, "k": k, "img_s": steps * batch / seconds, "compile_s": compile_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="tensorflow,jax")
    ap.add_argument("--batches", default="64")
    ap.add_argument("--precisions", default="float32")
    ap.add_argument("--steps", type=int, default=64, help="timed steps (a multiple of --steps-per-execution)")
    ap.add_argument("--steps-per-execution", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--synthetic", action="store_true", help="random images instead of Fashion-MNIST (same cost)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement, as JSON
    args = ap.parse_args()
    if args.one:
        b, batch, precision = args.one.split(":")
        print("RESULT " + json.dumps(measure(b, int(batch), precision, args.steps, args.steps_per_execution,
                                             args.synthetic)))
        return
    backends = args.backends.split(",")
    print(f"cpu: {os.cpu_count()} threads; {args.steps} timed steps, {args.steps_per_execution} per execution, "
          f"{args.rounds} interleaved rounds (medians)")
    print(f"{'backend':11} {'device':24} {'precision':15} {'batch':>5} {'img/s':>9} {'compile s':>9} {'vs first':>8}")
    for precision in args.precisions.split(","):
        for batch in [int(b) for b in args.batches.split(",")]:
            runs: dict[str, list[dict]] = {b: [] for b in backends}
            for _ in range(args.rounds):
                for b in backends:
                    cmd = [sys.executable, __file__, "--one", f"{b}:{batch}:{precision}", "--steps", str(args.steps),
                           "--steps-per-execution", str(args.steps_per_execution)] + (["--synthetic"] * args.synthetic)
                    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
                    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
                    if out.returncode or not line:
                        sys.exit(f"{b} batch {batch} {precision} failed:\n{out.stderr[-2000:]}")
                    runs[b].append(json.loads(line[0][7:]))
            first = statistics.median(r["img_s"] for r in runs[backends[0]])
            for b in backends:
                img_s = statistics.median(r["img_s"] for r in runs[b])
                comp = statistics.median(r["compile_s"] for r in runs[b])
                print(f"{b:11} {runs[b][0]['device'][:24]:24} {precision:15} {batch:5d} {img_s:9.1f} {comp:9.1f} "
                      f"{img_s / first:8.2f}", flush=True)


if __name__ == "__main__":
    main()
