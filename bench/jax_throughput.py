"""Training-step throughput of the same networks under Keras' JAX backend (XLA-compiled), for machines
with a GPU and JAX but no TensorFlow GPU build (bench/gpu_check.sh falls back to it).

For our default profile (params.yaml: model section; batch sizes from --batches) and the keras.io
WGAN-GP recipe (batch 512), in float32 and mixed_bfloat16: a plain ``jax.jit`` step doing the same
discriminator and generator updates as ``GAN.train_step`` (no EMA, no input pipeline), timed in steady
state. Also prints XLA's FLOP count per image (the compiled step's cost analysis) and the device's
matmul peak measured in the same run, so achieved TFLOPS can be read against it. (The float32 peak
uses XLA's default matmul precision, which on NVIDIA GPUs since Ampere means TF32 tensor cores.)

    KERAS_BACKEND=jax python bench/jax_throughput.py [--steps 50] [--batches 64,1024]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from ganpipe import params  # noqa: E402
from bench.baselines import KERAS_IO_WGAN_GP, keras_io_critic, keras_io_generator  # noqa: E402
from ganpipe.models import build_models  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def matmul_peak(dtype, n=8192, reps=10):
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(dtype) / n**0.5
    f = jax.jit(lambda x: jax.lax.fori_loop(0, reps, lambda i, y: y @ a, x))
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 * reps / best / 1e12


def _flops(fn, *args) -> float:
    """FLOPs of one call from XLA's cost analysis, lowered for the CPU (on a GPU the analysis has no
    count for convolutions, which become cuDNN custom calls)."""
    cpu = jax.devices("cpu")[0]
    cost = jax.jit(fn).lower(*jax.device_put(args, cpu)).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float((cost or {}).get("flops", float("nan")))


def make_step(g, d, d_opt, g_opt, loss, critic_steps, gp_weight, latent, batch, alpha_normal=False):
    f32 = jnp.float32

    def d_loss_fn(d_tv, d_ntv, g_tv, g_ntv, real, z, key):
        fake, g_ntv = g.stateless_call(g_tv, g_ntv, z, training=True)
        rl, d_ntv = d.stateless_call(d_tv, d_ntv, real, training=True)
        fl, d_ntv = d.stateless_call(d_tv, d_ntv, fake, training=True)
        rl, fl = rl.astype(f32), fl.astype(f32)
        if loss == "ns":
            return jnp.mean(jax.nn.softplus(-rl)) + jnp.mean(jax.nn.softplus(fl)), (d_ntv, g_ntv)
        a = (jax.random.normal if alpha_normal else jax.random.uniform)(key, (batch, 1, 1, 1))
        x_hat = real + a * (fake.astype(f32) - real)
        grads = jax.grad(lambda x: jnp.sum(d.stateless_call(d_tv, d_ntv, x, training=True)[0].astype(f32)))(x_hat)
        gp = jnp.mean((jnp.sqrt(jnp.sum(jnp.square(grads), axis=(1, 2, 3)) + 1e-12) - 1.0) ** 2)
        return jnp.mean(fl) - jnp.mean(rl) + gp_weight * gp, (d_ntv, g_ntv)

    def g_loss_fn(g_tv, g_ntv, d_tv, d_ntv, z):
        fake, g_ntv = g.stateless_call(g_tv, g_ntv, z, training=True)
        fl, d_ntv = d.stateless_call(d_tv, d_ntv, fake, training=True)
        fl = fl.astype(f32)
        return (jnp.mean(jax.nn.softplus(-fl)) if loss == "ns" else -jnp.mean(fl)), (g_ntv, d_ntv)

    def step(state, real, key):
        g_tv, g_ntv, d_tv, d_ntv, g_ov, d_ov = state
        for _ in range(critic_steps):
            key, kz, ka = jax.random.split(key, 3)
            z = jax.random.normal(kz, (batch, latent))
            (dl, (d_ntv, g_ntv)), grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_tv, d_ntv, g_tv, g_ntv, real, z, ka)
            d_tv, d_ov = d_opt.stateless_apply(d_ov, grads, d_tv)
        key, kz = jax.random.split(key)
        z = jax.random.normal(kz, (batch, latent))
        (gl, (g_ntv, d_ntv)), grads = jax.value_and_grad(g_loss_fn, has_aux=True)(g_tv, g_ntv, d_tv, d_ntv, z)
        g_tv, g_ov = g_opt.stateless_apply(g_ov, grads, g_tv)
        return (g_tv, g_ntv, d_tv, d_ntv, g_ov, d_ov), dl, gl

    return step


def bench(name, build, loss, critic_steps, gp_weight, latent, batch, policy, steps, lr, betas, alpha_normal=False):
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    g, d = build()
    d_opt = keras.optimizers.Adam(lr, beta_1=betas[0], beta_2=betas[1])
    g_opt = keras.optimizers.Adam(lr, beta_1=betas[0], beta_2=betas[1])
    d_opt.build(d.trainable_variables)
    g_opt.build(g.trainable_variables)
    state = ([v.value for v in g.trainable_variables], [v.value for v in g.non_trainable_variables],
             [v.value for v in d.trainable_variables], [v.value for v in d.non_trainable_variables],
             [v.value for v in g_opt.variables], [v.value for v in d_opt.variables])
    raw = make_step(g, d, d_opt, g_opt, loss, critic_steps, gp_weight, latent, batch, alpha_normal)
    step = jax.jit(raw, donate_argnums=(0,))
    real = jax.random.uniform(jax.random.PRNGKey(1), (batch, 28, 28, 1), minval=-1, maxval=1)
    key = jax.random.PRNGKey(0)
    flops = _flops(raw, state, real, key) / batch
    t0 = time.perf_counter()
    compiled = step.lower(state, real, key).compile()
    for _ in range(3):
        state, dl, gl = compiled(state, real, key)
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        state, dl, gl = compiled(state, real, jax.random.fold_in(key, i))
    jax.block_until_ready((state, dl, gl))
    sec = time.perf_counter() - t0
    assert np.isfinite(float(dl)) and np.isfinite(float(gl)), (name, float(dl), float(gl))
    keras.mixed_precision.set_global_policy("float32")
    return {"name": name, "policy": policy, "batch": batch, "img_s": steps * batch / sec, "flops": flops,
            "compile_s": compile_s}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batches", default="64,1024", help="batch sizes for our default profile")
    ap.add_argument("--policies", default="float32,mixed_bfloat16")
    ap.add_argument("--peak-n", type=int, default=8192, help="matmul size for the peak")
    args = ap.parse_args()
    p = params.read_params_file(REPO / "params.yaml")
    mc, tc = params.from_dict(params.Model, p["model"]), params.from_dict(params.Train, p["train"])
    mc, tc, _ = params.resolve_auto(mc, tc, 1)  # the 28x28 grey steps of Fashion-MNIST
    dev = jax.devices()[0]
    peaks = {"float32": matmul_peak(jnp.float32, args.peak_n), "mixed_bfloat16": matmul_peak(jnp.bfloat16, args.peak_n)}
    print(f"device: {dev.device_kind} ({dev.platform}), jax {jax.__version__}, keras {keras.__version__} (backend "
          f"{keras.backend.backend()}); matmul peak {args.peak_n}^3: float32 (XLA default precision) {peaks['float32']:.1f} "
          f"TFLOPS, bfloat16 {peaks['mixed_bfloat16']:.1f} TFLOPS")
    r = KERAS_IO_WGAN_GP
    print(f"{'run':34} {'policy':15} {'batch':>5} {'img/s':>10} {'GFLOP/img':>10} {'TFLOPS':>8} {'of peak':>8} {'compile s':>9}")

    def show(row):
        tflops = row["flops"] * row["img_s"] / 1e12
        print(f"{row['name']:34} {row['policy']:15} {row['batch']:5d} {row['img_s']:10.0f} {row['flops'] / 1e9:10.3f} "
              f"{tflops:8.2f} {100 * tflops / peaks[row['policy']]:7.1f}% {row['compile_s']:9.1f}", flush=True)

    for policy in args.policies.split(","):
        for b in [int(v) for v in args.batches.split(",")]:
            show(bench(f"ours default ({mc.arch} {mc.loss})", lambda: build_models(mc, 28, 1, 0), mc.loss,
                       mc.critic_steps, mc.gp_weight, mc.latent_dim, b, policy, args.steps, tc.g_lr,
                       (tc.beta1, tc.beta2)))
        show(bench("keras.io WGAN-GP recipe", lambda: (keras_io_generator(r["latent_dim"]), keras_io_critic()),
                   "wgan-gp", r["critic_steps"], r["gp_weight"], r["latent_dim"], r["batch_size"], policy,
                   max(5, args.steps // 5), r["lr"], (r["beta_1"], r["beta_2"]), alpha_normal=True))


if __name__ == "__main__":
    main()
