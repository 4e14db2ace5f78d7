"""Training throughput: the stage's full machinery vs a plain tf.function step of the same networks.

For each arch x loss, at batch 128 on real Fashion-MNIST:
  - plain:  a bare ``tf.function`` doing the same discriminator and generator updates (no EMA, no
            loss trackers, no callbacks), fed from in-memory tensors;
  - stage:  ``GAN.fit`` over the stage's tf.data input with the stage's callback (NaN guard, loss sums,
            progress bar) and the EMA generator, exactly as ``ganpipe.training`` runs it (under
            ``train.strategy: default``'s strategy: on a GPU, one device with the input prefetched onto
            it), plus the time of one checkpoint write spread over ``train.checkpoint_every`` steps;
  - host input (``--host-input``): the stage without that strategy, its batches copied to the device
            when the step asks for them (what device prefetch saves; on a CPU the two are the same unless
            ``--one-device /device:CPU:0`` puts the stage under the one-device strategy there: what the
            strategy's own machinery costs, with no copy to save).
The plain step has no augmentation, so the stage runs with ``train.augment_p`` fixed at ``--augment-p``
(default 0: the ops are in the graph and skipped, as under ADA before D overfits); ``--augment-p adaptive``
measures the default params as they are (ADA's p then rises within a few dozen steps on this data and the
stage pays for augmenting D's inputs, which the plain step does not do). All are warmed up (traced)
first; the timed part is steady state. They are measured alternately, ``--rounds`` times each (plain,
stage[, host input], plain, stage, ...), and the medians are reported, so that a busy machine weighs on
all alike. Prints img/s and stage/plain (and host input/stage).

    .venv/bin/python bench/train_throughput.py [--steps 40] [--archs dcgan,resnet,mlp] [--losses ns,hinge,wgan-gp]
        [--batch 128] [--rounds 3] [--precision float32|mixed_bfloat16|mixed_float16] [--xla] [--augment-p 0]
        [--host-input] [--one-device DEVICE]
"""

from __future__ import annotations

import argparse
import os
import sys
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the bench.* helpers
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ganpipe import build, checkpoint, distribute, losses, params  # noqa: E402
from bench.perf import plain_step_fn, time_stage_steps  # noqa: E402
from ganpipe.gan import scale_images  # noqa: E402
from ganpipe.decoders import load_fashion_mnist  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def bench_one(arch, loss, x, y, steps, batch, base_model, base_train, precision="float32", xla=False, rounds=3,
              host_input=False, one_device=None):
    """Median img/s of ``rounds`` plain and stage (and host-input) measurements, interleaved
    plain/stage/plain/stage so that a busy machine weighs on all alike; each measurement builds its
    networks anew and is warmed up. Returns plain, stage, checkpoint seconds, host input (or None)."""
    mc = params.from_dict(params.Model, base_model | {"arch": arch, "loss": loss,
                                                      "critic_steps": base_model["critic_steps"] if losses.get(loss).regulariser else 1})
    tc = params.from_dict(params.Train, base_train | {"batch_size": batch, "max_steps": None, "precision": precision,
                                                      "jit_compile": xla, "deterministic": base_train["deterministic"] and not xla})
    mc, tc, _ = params.resolve_auto(mc, tc, 1)  # Fashion-MNIST: grey
    n = batch * (steps + 5)
    xs, ys = x[:n], y[:n].astype(np.int32)
    real = [scale_images(xs[i * batch:(i + 1) * batch]) for i in range(steps + 5)]
    plain, stage, ckpt, host = [], [], [], []
    # the stage's: one device (input prefetched onto a GPU); ``one_device`` names that device instead
    strategy = distribute.make_strategy("default", gpus=[one_device] if one_device else None)

    def stage_seconds(strategy):
        build.configure(tc, 0, second_order=losses.get(loss).second_order)
        gan = build.build_gan(mc, tc, 28, 1, 10, strategy, seed=0)
        return gan, time_stage_steps(gan, xs, ys, batch, steps, tc, strategy=strategy)

    for _ in range(rounds):
        build.configure(tc, 0, second_order=losses.get(loss).second_order)
        gan = build.build_gan(mc, tc, 28, 1, 10, seed=0)
        step = plain_step_fn(gan, jit_compile=xla)
        for r in real[:3]:
            [t.numpy() for t in step(r)]
        t0 = time.perf_counter()
        for r in real[3:3 + steps]:
            out = step(r)
        [t.numpy() for t in out]
        plain.append(steps * batch / (time.perf_counter() - t0))

        gan, stage_s = stage_seconds(strategy)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            checkpoint.save_checkpoint(Path(tmp) / "timed.npz", gan, checkpoint.Checkpoint(steps, "bench"))
            ckpt.append(time.perf_counter() - t0)
        # one checkpoint every `checkpoint_every` steps, its cost spread over those steps
        per_step_ckpt = ckpt[-1] * steps / tc.checkpoint_every
        stage.append(steps * batch / (stage_s + per_step_ckpt))
        if host_input:
            host.append(steps * batch / (stage_seconds(None)[1] + per_step_ckpt))
    return (statistics.median(plain), statistics.median(stage), statistics.median(ckpt),
            statistics.median(host) if host else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved plain/stage pairs; medians reported")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--archs", default="dcgan,resnet,mlp")
    ap.add_argument("--losses", default="ns,hinge,wgan-gp")
    ap.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16", "mixed_float16"])
    ap.add_argument("--xla", action="store_true", help="XLA-compile both steps (turns op determinism off)")
    ap.add_argument("--augment-p", default="0", help="the stage's train.augment_p (0: like the plain step)")
    ap.add_argument("--synthetic", action="store_true", help="random images instead of Fashion-MNIST (same cost)")
    ap.add_argument("--deterministic", choices=["on", "off"], help="op determinism (default: params.yaml's train.deterministic)")
    ap.add_argument("--steps-per-execution", type=int, default=1, help="the stage's train.steps_per_execution")
    ap.add_argument("--host-input", action="store_true",
                    help="also the stage without its one-device strategy (no device prefetch), interleaved")
    ap.add_argument("--one-device", metavar="DEVICE",
                    help="run the stage under the one-device strategy on DEVICE (e.g. /device:CPU:0)")
    args = ap.parse_args()
    if args.synthetic:
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 256, (60000, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, 60000)
    else:
        raw = load_fashion_mnist()
        x, y = raw.train.x, raw.train.y
    p = params.read_params_file(REPO / "params.yaml")
    p["train"]["augment_p"] = args.augment_p if args.augment_p == "adaptive" else float(args.augment_p)
    p["train"]["steps_per_execution"] = args.steps_per_execution
    if args.deterministic:
        p["train"]["deterministic"] = args.deterministic == "on"
    print(f"device: {tf.config.list_logical_devices()[-1].name}, threads: {os.cpu_count()}, batch {args.batch}, "
          f"{args.steps} timed steps, checkpoint every {p['train']['checkpoint_every']} steps (cost amortised), "
          f"EMA {p['train']['ema_decay']}, stage augment_p {p['train']['augment_p']}, precision {args.precision}, XLA {'on' if args.xla else 'off'}, "
          f"determinism {'on' if p['train']['deterministic'] and not args.xla else 'off'}, steps per execution {args.steps_per_execution}")
    extra = f" {'host img/s':>12} {'host/stage':>12}" if args.host_input else ""
    print(f"{'arch':8} {'loss':8} {'plain img/s':>12} {'stage img/s':>12} {'stage/plain':>12} {'ckpt s':>8}{extra}")
    for arch in args.archs.split(","):
        for loss in args.losses.split(","):
            plain, stage, ckpt_s, host = bench_one(arch, loss, x, y, args.steps, args.batch, p["model"], p["train"],
                                                   args.precision, args.xla, args.rounds, args.host_input, args.one_device)
            extra = f" {host:12.1f} {host / stage:12.3f}" if host is not None else ""
            print(f"{arch:8} {loss:8} {plain:12.1f} {stage:12.1f} {stage / plain:12.3f} {ckpt_s:8.3f}{extra}", flush=True)


if __name__ == "__main__":
    main()
