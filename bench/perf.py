"""Measuring helpers for ``bench/``: FLOPs of a traced step, the machine's matmul peak, and the plain
``tf.function`` GAN step that the stage's step is compared against (TensorFlow backend)."""

from __future__ import annotations

import time


def graph_flops(concrete) -> int:
    """Floating-point operations of one call of a traced ``tf.function``, as TensorFlow's profiler counts
    them (convolutions, their two backward ops, matmuls, bias adds, ...), over only the ops the call
    needs: the graph is first pruned to what its outputs and side effects (variable updates) depend on,
    so gradients that are built but never used (the input gradient of a first layer, or D's weight
    gradients inside the generator's update) are not counted."""
    import tensorflow as tf
    from tensorflow.python.profiler.model_analyzer import profile
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    graph_def = concrete.graph.as_graph_def(add_shapes=True)
    keep = [t.op.name for t in concrete.outputs] + [op.name for op in concrete.graph.control_outputs]
    pruned = tf.compat.v1.graph_util.extract_sub_graph(graph_def, keep)
    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(pruned, name="")
    opts = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return int(profile(graph=g, options=opts).total_float_ops)


def matmul_peak(n: int = 2048, dtype: str = "float32", reps: int = 10, rounds: int = 5) -> float:
    """GFLOPS of an n x n x n matrix product on the default device: best of ``rounds`` timings of
    ``reps`` chained products (2 n^3 FLOPs each)."""
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a / n**0.5, dtype)

    @tf.function
    def chain(x):
        for _ in range(reps):
            x = tf.matmul(x, a)
        return x

    chain(a).numpy()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        chain(a).numpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 * reps / best / 1e9


def plain_step_fn(gan, jit_compile: bool = False):
    """The updates of ``GAN.train_step`` as a bare ``tf.function`` (no EMA, no noise from the input
    pipeline, no callbacks, no ``fit``): the reference the stage's machinery is measured against."""
    import tensorflow as tf

    from ganpipe.gan_tf import input_grad

    g, d = gan.generator, gan.discriminator
    d_opt, g_opt = gan.d_optimizer, gan.g_optimizer
    latent = gan.latent_dim

    @tf.function(jit_compile=jit_compile)
    def step(real):
        b = tf.shape(real)[0]
        for _ in range(gan.critic_steps):
            z = tf.random.normal((b, latent))
            with tf.GradientTape() as tape:
                fake = g(z, training=True)
                loss = gan.loss.d(d(real, training=True), d(fake, training=True))
                if gan.loss.regulariser is not None:
                    draws = {k: tf.random.uniform((b,)) for k in gan.loss.draws}  # the plain loop draws in-graph
                    loss += gan.gp_weight * gan.loss.regulariser(lambda v: d(v, training=False), real, fake, draws, input_grad)
                scaled = d_opt.scale_loss(loss)
            d_opt.apply_gradients(zip(tape.gradient(scaled, d.trainable_variables), d.trainable_variables))
        z = tf.random.normal((b, latent))
        with tf.GradientTape() as tape:
            gl = gan.loss.g(d(g(z, training=True), training=True))
            scaled = g_opt.scale_loss(gl)
        g_opt.apply_gradients(zip(tape.gradient(scaled, g.trainable_variables), g.trainable_variables))
        return loss, gl

    return step


class _Cached:
    """A ``feed.Feed`` whose next dataset is a ready one."""

    def __init__(self, feed, ds):
        self.steps_per_epoch, self._ds = feed.steps_per_epoch, ds

    def dataset(self, step, n):
        return self._ds


def time_stage_steps(gan, x, y, batch: int, steps: int, cfg, cached_input: bool = False, strategy=None) -> float:
    """Seconds for ``steps`` steady-state steps through the train stage's machinery: ``training.run_steps``
    (``fit()`` over the stage's input pipeline, its step hook with the NaN stop and the progress bar, and
    the EMA update), after 3 warm-up steps. ``cached_input``: feed one ready batch over and over instead
    (what the step costs with no input work at all). ``strategy``: the one ``gan`` was built under (the
    stage's ``distribute.make_strategy``: on a GPU, one device with its input prefetched onto it)."""
    from ganpipe import training
    import numpy as np

    from ganpipe.feed import Feed

    feed = Feed(x, np.asarray(y, np.int32), batch, 0, strategy)
    hook = training.StepHook(gan, steps + 3, batch, progress=True)
    training.run_steps(gan, feed, 3, hook)
    if cached_input:
        if strategy is not None:
            raise ValueError("cached_input is measured without a strategy")
        ds = feed.dataset(3, steps).take(1).cache().repeat(steps)
        next(iter(ds))
        feed = _Cached(feed, ds)
    t0 = time.perf_counter()
    training.run_steps(gan, feed, steps, hook)
    seconds = time.perf_counter() - t0
    hook.close()
    return seconds
