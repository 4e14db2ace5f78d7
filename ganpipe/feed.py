"""The train stage's input: the prepared images in a seeded order; on TensorFlow a ``tf.data`` pipeline,
on JAX the indices a step gathers its batch at (``gan_jax``: the split on the device when it fits).

The order of epoch ``e`` is a permutation seeded by ``(base.seed, e)``, so the data position is a function
of the step alone (a checkpoint at step ``s`` resumes exactly where it was taken). Batches are gathered
from ``x`` (which may be memory-mapped) only when the step is next, and cross to the device as uint8 (the
step scales them: ``gan.scale_images``). Nothing random passes through the input (the step's draws are
made on the device: ``gan.step_noise``). On a GPU the train stage runs under a one-device strategy
(``distribute.make_strategy``), whose distributed dataset prefetches the next batch onto the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import seeds


def epoch_indices(n_images: int, batch: int, epoch: int, seed: int) -> np.ndarray:
    """The image order of one epoch, whole batches only."""
    rng = seeds.rng(seed, "train.epoch_order", epoch)
    perm = rng.permutation(n_images)
    return perm[: (n_images // batch) * batch]


def _input_options():
    import tensorflow as tf  # here, not at the top: only the TensorFlow path uses tf.data (JAX must not load it)

    # One private input thread, no autotuning: on 2 cores the autotuner's threads made steps bimodal
    # (about 25% slower half the time); one thread keeps a batch ready, far ahead of the step.
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.autotune.enabled = False
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return options


def epoch_dataset(x, y, batch: int, epoch: int, seed: int, first_batch: int, n_batches: int, strategy=None):
    """Steps ``first_batch .. first_batch + n_batches`` of epoch ``epoch``: (uint8 images, int32 labels) per
    step: memory holds a few batches, never a copy of the dataset. With a ``tf.distribute`` strategy, a
    distributed dataset giving each replica its slice of every global batch
    (``ganpipe.distribute.replica_slices``)."""
    import tensorflow as tf  # here, not at the top: see _input_options

    from .distribute import replica_slices
    spe = len(x) // batch
    if first_batch + n_batches > spe:
        raise ValueError(f"steps {first_batch}..{first_batch + n_batches} are past the epoch's {spe}")
    order = epoch_indices(len(x), batch, epoch, seed)
    y = np.asarray(y, np.int32)

    def gather(i):
        idx = order[i * batch:(i + 1) * batch]
        return np.asarray(x[idx]), y[idx]  # a ShardedImages reads the rows in file order

    def global_batch(i):
        images, labels = tf.numpy_function(gather, [i], [tf.uint8, tf.int32], stateful=False)
        images.set_shape((batch, *x.shape[1:]))
        labels.set_shape((batch,))
        return {"x": images, "y": labels}

    def make(replicas=1, workers=1, worker=0):
        ds = tf.data.Dataset.range(first_batch, first_batch + n_batches).map(global_batch)
        if replicas > 1:  # one element per local replica: its slice of each global batch
            ds = ds.map(lambda d: replica_slices(d, replicas, workers, worker)).unbatch()
        ds = ds.map(lambda d: (d["x"], d["y"]))
        return ds.prefetch(2).with_options(_input_options())

    if strategy is None:
        return make()

    def per_worker(ctx):
        return make(ctx.num_replicas_in_sync, ctx.num_input_pipelines, ctx.input_pipeline_id)

    return strategy.distribute_datasets_from_function(per_worker)


@dataclass(frozen=True)
class Feed:
    """The training data and how it is fed: :meth:`dataset` gives the steps ``step .. step + n`` (global
    step numbers, within one epoch)."""

    x: object  # (N, H, W, C) uint8, an array or a memory-mapped ``splits.ShardedImages``
    labels: np.ndarray  # int32 (N,), zeros for unlabelled data
    batch: int
    seed: int
    strategy: object = None

    @property
    def steps_per_epoch(self) -> int:
        return len(self.x) // self.batch

    def dataset(self, step: int, n: int):
        epoch, first = divmod(step, self.steps_per_epoch)
        return epoch_dataset(self.x, self.labels, self.batch, epoch, self.seed, first, n, self.strategy)

    def indices(self, step: int, n: int) -> np.ndarray:
        """(n, batch) image indices of the steps ``step .. step + n`` (within one epoch): the order
        :meth:`dataset` feeds."""
        epoch, first = divmod(step, self.steps_per_epoch)
        if first + n > self.steps_per_epoch:
            raise ValueError(f"steps {first}..{first + n} are past the epoch's {self.steps_per_epoch}")
        order = epoch_indices(len(self.x), self.batch, epoch, self.seed)
        return order[first * self.batch:(first + n) * self.batch].reshape(n, self.batch)
