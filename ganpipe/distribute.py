"""``train.strategy``: one device, every device of one machine, or several machines (``tf.distribute``).

- ``default``: one device. On a GPU machine, ``OneDeviceStrategy`` on the first GPU, whose input pipeline
  prefetches each batch onto the GPU while the step before it runs (TensorFlow's own device prefetch,
  ``tf.distribute``'s multi-device iterator); on a CPU, no strategy (``make_strategy`` returns None).
- ``mirrored``: ``MirroredStrategy`` over every GPU of this machine; without one it is refused, unless
  ``GANPIPE_CPU_DEVICES=N`` asks for N logical CPU devices (which is how the tests run it).
- ``multi_worker``: ``MultiWorkerMirroredStrategy`` over the machines that ``TF_CONFIG`` lists, each
  running the same stage (README: "Several machines").

Each step's global batch (and its noise: each replica draws the global batch's and keeps its slice, see
``GAN._step_noise``) is cut into one contiguous slice per replica, replica ``r`` of worker ``w`` taking
slice ``w * local + r``, so a run computes the same step on any number of replicas; batch norm is
synchronised across replicas for the same reason.
"""

from __future__ import annotations

import os
import typing

import tensorflow as tf

from .errors import GanpipeError
from .params import Train

STRATEGIES = typing.get_args(typing.get_type_hints(Train)["strategy"])
CPU_DEVICES_ENV = "GANPIPE_CPU_DEVICES"


def split_cpu(n: int) -> None:
    """Make ``n`` logical CPU devices (must run before TensorFlow initialises its devices)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != n:
            raise GanpipeError(f"{CPU_DEVICES_ENV}={n}: TensorFlow already started with {have} CPU device(s)") from None


def make_strategy(kind: str, gpus: list[str] | None = None):
    """The ``tf.distribute`` strategy for ``train.strategy``, after splitting the CPU if
    ``GANPIPE_CPU_DEVICES`` asks for it. ``gpus``: the GPUs' device names (TensorFlow's logical GPUs when
    None)."""
    n_cpu = os.environ.get(CPU_DEVICES_ENV, "").strip()
    if n_cpu:
        if not n_cpu.isdigit() or int(n_cpu) < 1:
            raise GanpipeError(f"{CPU_DEVICES_ENV}: must be a positive integer, got {n_cpu!r}")
        split_cpu(int(n_cpu))
    if gpus is None and kind != "multi_worker":  # listing devices starts TensorFlow's runtime: not before MWMS
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if kind == "default":
        return tf.distribute.OneDeviceStrategy(gpus[0]) if gpus else None
    if kind == "mirrored":
        devices = list(gpus)
        if not devices and not n_cpu:  # never a silent CPU run of a GPU setting
            raise GanpipeError(f"train.strategy: mirrored found no GPU (TensorFlow sees none: is the GPU build "
                               f"installed, `make setup GPU=1`, and the driver loaded?); use train.strategy: "
                               f"default on a CPU, or set {CPU_DEVICES_ENV}=N to mirror over N CPU devices on purpose")
        devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if kind == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise GanpipeError("train.strategy: multi_worker needs TF_CONFIG (the cluster and this worker's "
                               "index) in the environment; see README, 'Several machines'")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise GanpipeError(f"train.strategy: must be one of {', '.join(STRATEGIES)}, got {kind!r}")


def replica_slices(step: dict, replicas: int, workers: int, worker: int) -> dict:
    """Cut one step's global-batch tensors (B, ...) into this worker's per-replica slices, in the order its
    replicas take them: (local, B / replicas, ...), where local = replicas / workers."""
    local = replicas // workers
    out = {}
    for name, a in step.items():
        batch = a.shape[0]
        if batch % replicas:
            raise GanpipeError(f"train.batch_size: {batch} is not divisible by the {replicas} replicas")
        out[name] = tf.reshape(a, (replicas, batch // replicas, *a.shape[1:]))[worker * local:(worker + 1) * local]
    return out
