"""The train stage's set-up: the compiled GAN of the current Keras backend, the checks of data against
params before anything trains, and the warning a GPU user sees when the backend found no GPU. Each
backend's own half (its configuration, devices, step and runner) is :func:`steps`' module."""

from __future__ import annotations

import contextlib
import math
import shutil
from pathlib import Path

import keras
import numpy as np
from keras import ops

from . import losses
from . import params as P
from .errors import GanpipeError
from .models import build_models, label_classes, sync_batch_norm


def steps():
    """The current backend's half of training: ``gan_tf`` or ``gan_jax`` (each provides ``configure``,
    ``make_strategy``, ``devices``, ``run_steps`` and its GAN class, ``MODEL``)."""
    if keras.backend.backend() == "jax":
        from . import gan_jax as module  # here, not at the top: each imports its own framework, and the
    else:  # JAX path must never load TensorFlow
        from . import gan_tf as module
    return module


def configure(cfg: P.Train, seed: int, second_order: bool = False) -> None:
    """The backend's set-up for training: seeds, determinism, precision (``steps().configure``)."""
    steps().configure(cfg, seed, second_order)


def build_gan(model_cfg: P.Model, train_cfg: P.Train, size: int, channels: int, num_classes: int, strategy=None, *,
              seed: int, schedule_steps: int | None = None):
    """The compiled GAN, its variables made under ``strategy``'s scope when one is given; ``seed`` keys
    its steps' random draws; ``schedule_steps``: the planned length a decaying ``train.lr_schedule``
    reaches 0 at (``training.Plan.planned_steps``). ``auto`` params must be resolved first
    (:func:`ganpipe.params.resolve_auto`)."""
    if auto := P.unresolved(model_cfg, train_cfg):
        raise GanpipeError(f"{auto[0]}: auto is resolved from the training data's channels (params.resolve_auto) "
                           "before the GAN is built")
    if train_cfg.lr_schedule != "constant" and not schedule_steps:
        raise GanpipeError(f"train.lr_schedule: {train_cfg.lr_schedule} needs the run's planned length")
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        replicated = strategy is not None and strategy.num_replicas_in_sync > 1
        return _build_gan(model_cfg, train_cfg, size, channels, num_classes, replicated, seed, schedule_steps)


def lr_factor(kind: str, step, total: int):
    """The learning rates' multiplier at ``step`` of a run planned for ``total`` steps: 1 throughout for
    ``constant``; from 1 down towards 0 at ``total``, in a straight line (``linear``) or half a cosine."""
    t = ops.minimum(ops.cast(step, "float32") / float(total), 1.0)
    if kind == "linear":
        return 1.0 - t
    if kind == "cosine":
        return 0.5 * (1.0 + ops.cos(math.pi * t))
    return ops.convert_to_tensor(1.0)


def _build_gan(model_cfg, train_cfg, size, channels, num_classes, replicated, seed, schedule_steps):
    g, d = build_models(model_cfg, size, channels, num_classes)
    ema = None
    if train_cfg.ema_decay > 0:
        ema, _ = build_models(model_cfg, size, channels, num_classes)
        ema.set_weights(g.get_weights())
    if replicated:  # batch statistics over the global batch (one device: its own batch is the global one)
        sync_batch_norm([g, d])
    gan = steps().MODEL(g, d, ema, loss=model_cfg.loss, latent_dim=model_cfg.latent_dim,
                        num_classes=label_classes(model_cfg, num_classes), gp_weight=model_cfg.gp_weight,
                        critic_steps=model_cfg.critic_steps, ema_decay=train_cfg.ema_decay, ema_rampup=train_cfg.ema_rampup,
                        batch_size=train_cfg.batch_size, augment=train_cfg.augment, augment_p=train_cfg.augment_p,
                        ada_target=train_cfg.ada_target, ada_kimg=train_cfg.ada_kimg, seed=seed,
                        regularisers=losses.active_regularisers(model_cfg), reg_interval=model_cfg.reg_interval)

    jax = keras.backend.backend() == "jax"
    if jax:  # the JAX step writes the scheduled rate into the optimizer before each update
        gan.lr_schedule = (train_cfg.lr_schedule, schedule_steps or 0)
        gan.base_lr = {"d": train_cfg.d_lr * losses.lazy_ratio(model_cfg), "g": train_cfg.g_lr}

    def adam(lr, c=1.0):  # c: StyleGAN2's rescaling for lazy regularisation's extra D updates
        rate = lr * c
        if train_cfg.lr_schedule != "constant" and not jax:  # read at each update from the one step counter
            rate = lambda base=rate: base * lr_factor(train_cfg.lr_schedule, gan.step, schedule_steps)  # noqa: E731
        opt = keras.optimizers.Adam(rate, beta_1=train_cfg.beta1 ** c, beta_2=train_cfg.beta2 ** c)
        return keras.optimizers.LossScaleOptimizer(opt) if train_cfg.precision == "mixed_float16" else opt

    gan.compile(d_optimizer=adam(train_cfg.d_lr, losses.lazy_ratio(model_cfg)), g_optimizer=adam(train_cfg.g_lr),
                jit_compile=train_cfg.jit_compile, steps_per_execution=train_cfg.steps_per_execution)
    if train_cfg.jit_compile and not gan.jit_compile:
        raise GanpipeError("train.jit_compile: Keras refused XLA for this model (see its warning above)")
    gan.build_optimizers()
    return gan


def check_inputs(x: np.ndarray, y: np.ndarray | None, num_classes: int, model_cfg: P.Model, train_cfg: P.Train,
                 quality) -> None:
    """Refuse data and params that cannot train together, naming the key."""
    if model_cfg.conditional and (y is None or num_classes < 2):
        raise GanpipeError("model.conditional: the prepared data has no labels (or one class); set it to false")
    if x.shape[1] != x.shape[2] or x.shape[1] % 4:
        raise GanpipeError(f"prepared images are {x.shape[1]}x{x.shape[2]}; training needs square sizes divisible by 4")
    if train_cfg.precision == "mixed_float16" and losses.second_order(model_cfg):
        key = "model.loss" if losses.get(model_cfg.loss).second_order else "model.r1_gamma/r2_gamma"
        raise GanpipeError(f"{key}: gradient penalties are computed in unscaled float16 under train.precision "
                           "mixed_float16 (they underflow); use mixed_bfloat16 or float32")
    if train_cfg.eval_every and quality is None:
        raise GanpipeError("train.eval_every: evaluations during training need the features stage's outputs")
    if train_cfg.eval_every:
        quality.check()


def nvidia_driver_present() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def cpu_fallback_warning(devices: list[str], driver: bool | None = None, backend: str | None = None) -> str | None:
    """The line a GPU user sees when TensorFlow found no GPU on a machine with an NVIDIA driver (a CPU-only
    TensorFlow, missing CUDA libraries: TensorFlow's own "Cannot dlopen" note is hidden by the stages'
    log level), so that nobody trains on the CPU without being told."""
    if any("GPU" in d.upper() for d in devices):
        return None
    if not (nvidia_driver_present() if driver is None else driver):
        return None
    if (backend or keras.backend.backend()) == "jax":
        return ("train: warning: this machine has an NVIDIA driver but JAX sees no GPU, so training runs on the "
                "CPU; install JAX's CUDA build (pip install 'jax[cuda13]'), or use train.backend: tensorflow "
                "with `make setup GPU=1`")
    return ("train: warning: this machine has an NVIDIA driver but TensorFlow sees no GPU, so training runs on "
            "the CPU; install the CUDA build with `make setup GPU=1` (TF_CPP_MIN_LOG_LEVEL=0 shows TensorFlow's reason)")
