"""The TensorFlow half of the GAN: the step as ``train_step`` (driven by ``fit()``), TensorFlow's set-up
(seeds, determinism, precision, Grappler), the devices, and the steps' runner.

Every random draw of a step (:meth:`GAN.noise_spec`) is made on the device by TensorFlow's stateless
generators keyed by ``(seed, step, name)`` (:func:`step_noise`), so under a ``tf.distribute`` strategy
each replica draws the global batch's noise and keeps the slice of its own images: a mirrored run
computes what a single-device run does. (Over 200 lines, one job: the step; its EMA helpers are the rest.)
"""

from __future__ import annotations

import keras
import tensorflow as tf

from . import losses, seeds
from . import params as P
from .augment import ADA_INTERVAL, ada_adjust, augment
from .distribute import make_strategy  # noqa: F401  (part of a backend half's interface: build.steps)
from .errors import GanpipeError
from .gan import GAN, scale_images


def step_noise(spec: dict, batch: int, step, seed: int) -> dict:
    """Every random draw of global step ``step`` (see ``GAN.noise_spec``), shaped (batch, ...), from
    TensorFlow's stateless generators keyed by ``(seed, step, name)`` alone."""
    base = tf.constant([seed, seeds.STREAMS["train.step_noise"][0]], tf.int64)
    step_key = tf.random.experimental.stateless_fold_in(base, tf.cast(step, tf.int64))
    out = {}
    for k, name in enumerate(sorted(spec)):
        shape, dist = spec[name]
        full = (batch, *shape)
        key = tf.random.experimental.stateless_fold_in(step_key, k)
        if dist == "normal":
            out[name] = tf.random.stateless_normal(full, key)
        elif dist == "uniform":
            out[name] = tf.random.stateless_uniform(full, key)
        else:
            out[name] = tf.random.stateless_uniform(full, key, minval=0, maxval=dist, dtype=tf.int32)
    return out


def _ema(e, w, decay):
    return decay * e + (1.0 - decay) * tf.cast(w, e.dtype)


def ema_update(ema_vars, vars_, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * w for trainable weights."""
    for e, w in zip(ema_vars, vars_):
        e.assign(_ema(e, w, decay))


def fused_ema_update(ema_vars, vars_):
    """An XLA-compiled ``ema_update`` over fixed variable lists: each update becomes one pass over memory
    (about 3 array passes instead of 9); the EMA of a large generator (the mlp baseline's 78M weights)
    is memory-bound."""
    ema_vars, vars_ = list(ema_vars), list(vars_)

    @tf.function(jit_compile=True)
    def update(decay):
        ema_update(ema_vars, vars_, decay)

    return update


def _tf_var(v):
    return v.value if isinstance(v, keras.Variable) else v


def distributed_ema_update(ema_vars, vars_, copy_ema, copy_vars, decay) -> None:
    """``ema_update`` (and a plain copy of ``copy_vars``) from inside a replica of a ``tf.distribute``
    strategy: mirrored variables are updated in cross-replica context, each device from its own copy
    of the (identical) live weights."""

    def merge(strategy):
        for e, w in zip(ema_vars, vars_):
            strategy.extended.update(_tf_var(e), lambda v, w: v.assign(_ema(v, w, decay)), args=(_tf_var(w),), group=False)
        for e, w in zip(copy_ema, copy_vars):
            strategy.extended.update(_tf_var(e), lambda v, w: v.assign(w), args=(_tf_var(w),), group=False)

    tf.distribute.get_replica_context().merge_call(merge)


def input_grad(f, x):
    """The gradient of ``f`` at ``x`` (summed over ``f``'s outputs), recorded on any enclosing tape."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = f(x)
    return tape.gradient(out, x)


class TFGAN(GAN):
    """:class:`ganpipe.gan.GAN` with TensorFlow's ``train_step``."""

    def _augment(self, x, noise, k):
        """D's input for its ``k``-th call of the step: ``x`` augmented with that call's draws."""
        if self.augment_ops:
            u = noise["aug"][:, k]
            p = None if self.fixed_p == 1 else self.aug_p  # p = 1: no gating at all (DiffAugment)
            if self.adaptive:  # p starts at 0: skip the ops' cost until the controller raises it
                x = tf.cond(self.aug_p > 0, lambda: augment(x, self.augment_ops, u, p), lambda: x)
            elif self.fixed_p > 0:
                x = augment(x, self.augment_ops, u, p)
        return x

    def _d_fn(self, labels):
        """D's logits of an image batch in inference mode (for the input-gradient penalties)."""
        return lambda x: self.discriminator([x, labels] if self.num_classes else x, training=False)

    def _d_call(self, x, labels, noise, k):
        x = self._augment(x, noise, k)
        return self.discriminator([x, labels] if self.num_classes else x, training=True)

    def _regularise(self, real, real_labels, noise, replicas):
        """The lazy regularisers' D update (StyleGAN2's ``Dreg`` phase): ``interval * gamma / 2 * penalty``
        of each, on the real batch as D saw it in the first critic step (its augmentation draws) and on
        that step's generated batch; returns the penalties."""
        d_vars = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            total, values = tf.constant(0.0), {}
            for name, gamma in self.regularisers.items():
                if losses.REGULARISERS[name].on == "real":
                    x, labels = real, real_labels
                else:
                    labels = self._fake_labels(noise, 0)
                    x = tf.stop_gradient(tf.cast(self.generator(self._g_inputs(noise["z"][:, 0], labels),
                                                                training=False), real.dtype))
                values[name] = losses.grad_sq_norm(self._d_fn(labels), x, input_grad,
                                                   lambda v: self._augment(v, noise, 0))
                total = total + (self.reg_interval * gamma / 2.0) * values[name]
        self._apply(self.d_optimizer, tape, total, d_vars, replicas)
        return values

    @staticmethod
    def _apply(optimizer, tape, loss, variables, replicas):
        with tape:  # recorded on the step's tape, or the gradient would not reach the variables
            # Gradients are summed over replicas (Keras' optimizer all-reduces with SUM): a replica's
            # share of the global mean is its own mean / replicas. Then loss scaling (mixed_float16).
            scaled = optimizer.scale_loss(loss / replicas if replicas > 1 else loss)
        grads = tape.gradient(scaled, variables)
        # a penalty on input gradients does not reach D's last bias: skipped, as PyTorch's Adam skips it
        optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])

    def _fake_labels(self, noise, i):
        return tf.cast(noise["labels"][:, i:i + 1], "int32") if self.num_classes else None

    def _step_noise(self, step):
        """This replica's slice of the global batch's draws for ``step``."""
        ctx = tf.distribute.get_replica_context()
        noise = step_noise(self.noise_spec(), self.batch_size, step, self.seed)
        if ctx.num_replicas_in_sync == 1:
            return noise
        per = self.batch_size // ctx.num_replicas_in_sync
        first = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * per
        return {k: v[first:first + per] for k, v in noise.items()}

    def train_step(self, data):
        real, real_labels = data
        real = scale_images(real)
        step = tf.identity(self.step)
        noise = self._step_noise(step)
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        real_labels = tf.reshape(tf.cast(real_labels, "int32"), (-1, 1)) if self.num_classes else None
        d_vars = self.discriminator.trainable_variables
        penalty = tf.constant(0.0)
        for i in range(self.critic_steps):
            z, fake_labels = noise["z"][:, i], self._fake_labels(noise, i)
            with tf.GradientTape() as tape:
                fake = self.generator(self._g_inputs(z, fake_labels), training=True)
                real_logits = self._d_call(real, real_labels, noise, 2 * i)
                fake_logits = self._d_call(fake, fake_labels, noise, 2 * i + 1)
                d_loss = self.loss.d(real_logits, fake_logits)
                if self.loss.regulariser is not None:
                    draws = {name: noise[name][:, i] for name in self.loss.draws}
                    penalty = self.loss.regulariser(self._d_fn(real_labels), real, fake, draws, input_grad)
                    d_loss = d_loss + self.gp_weight * penalty
            self._apply(self.d_optimizer, tape, d_loss, d_vars, replicas)

        if self.regularisers:
            due = tf.equal(tf.math.floormod(step, self.reg_interval), 0)

            def regularise():
                for name, value in self._regularise(real, real_labels, noise, replicas).items():
                    self.reg_last[name].assign(value)
                return tf.constant(True)

            tf.cond(due, regularise, lambda: tf.constant(False))

        s = self.critic_steps
        z, fake_labels = noise["z"][:, s], self._fake_labels(noise, s)
        g_vars = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            fake = self.generator(self._g_inputs(z, fake_labels), training=True)
            g_loss = self.loss.g(self._d_call(fake, fake_labels, noise, 2 * s))
        self._apply(self.g_optimizer, tape, g_loss, g_vars, replicas)

        if self.ema_generator is not None:
            self._update_ema(g_vars, step + 1)

        # rt: StyleGAN2-ADA's overfitting heuristic E[sign(D(real))] on the last critic step's real batch.
        rt = tf.reduce_mean(tf.sign(tf.cast(real_logits, tf.float32)))
        out = {"d_loss": d_loss, "g_loss": g_loss, "rt": rt}
        out |= {self.loss.log_key: penalty} if self.loss.regulariser is not None else {}
        out |= {name: tf.convert_to_tensor(v) for name, v in self.reg_last.items()}
        self._record(out, step)
        if self.augment_ops and self.adaptive:
            self._adapt(rt, step)
        self.step.assign_add(1)
        # The last step's values, for the progress bar (shaped (1,): fit() reduces outputs over replicas
        # along axis 0 under MultiWorkerMirroredStrategy).
        return {k: tf.reshape(tf.cast(v, tf.float32), (1,)) for k, v in out.items()}

    def _record(self, out: dict, step) -> None:
        """Add the step's outputs to the epoch sums; note the step if one of them is not finite (a sum
        stays NaN or infinite once one term was)."""
        finite = tf.constant(True)
        for name in self.output_names():
            self.sums[name].assign_add(tf.cast(out[name], tf.float32))
            finite = tf.logical_and(finite, tf.math.is_finite(tf.convert_to_tensor(self.sums[name])))
        first = tf.logical_and(self.first_bad < 0, tf.logical_not(finite))
        self.first_bad.assign(tf.where(first, step, self.first_bad))

    def _adapt(self, rt, step) -> None:
        """ADA: accumulate r_t; every ADA_INTERVAL steps move p by its mean (``augment.ada_adjust``)."""
        self.ada_acc.assign_add(rt)
        acc = tf.convert_to_tensor(self.ada_acc)
        due = tf.equal(tf.math.floormod(step + 1, ADA_INTERVAL), 0)
        p = ada_adjust(self.aug_p, acc / ADA_INTERVAL, self.ada_target, self.ada_rate)
        self.aug_p.assign(tf.where(due, p, self.aug_p))
        self.ada_acc.assign(tf.where(due, 0.0, acc))

    def _update_ema(self, g_vars, steps):
        ema_nt, g_nt = self.ema_generator.non_trainable_variables, self.generator.non_trainable_variables
        decay = self.ema_beta(steps)
        if tf.distribute.get_replica_context().num_replicas_in_sync > 1:  # one device (OneDeviceStrategy too): fused
            distributed_ema_update(self.ema_generator.trainable_variables, g_vars, ema_nt, g_nt, decay)
            return
        if self._ema_fn is None:
            self._ema_fn = fused_ema_update(self.ema_generator.trainable_variables, g_vars)
        self._ema_fn(decay)
        for e, w in zip(ema_nt, g_nt):
            e.assign(w)  # batch-norm statistics follow the live generator


def configure(cfg: P.Train, seed: int, second_order: bool = False) -> None:
    """Seeds, determinism and precision policy. ``second_order``: the step differentiates a gradient
    (WGAN-GP); Grappler's graph optimisers then sometimes rewrite it into a graph with a cycle
    ("InvalidArgumentError: N nodes in a cycle", seen with spectral normalisation, about one run in
    four), so they are turned off for such runs (measured cost in bench/train_throughput.py)."""
    # Determinism set both ways: it is process-global, and Keras turns XLA off while it is on.
    seeds.seed_keras(seed, cfg.deterministic)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": second_order})
    keras.mixed_precision.set_global_policy(cfg.precision)


def check_same_start(strategy, step: int) -> None:
    """Under MultiWorkerMirroredStrategy every worker resumes from its own checkpoint: stop every worker,
    with the same message, unless they all start from the same step (else they would train apart, or
    wait on each other forever)."""
    local = tf.constant([float(step), float(step) ** 2], tf.float64)
    mean = strategy.reduce("MEAN", strategy.run(tf.function(lambda: tf.identity(local))), axis=None).numpy()
    if mean[1] - mean[0] ** 2 > 0.5:  # a variance over workers: 0 only when every step is equal
        raise GanpipeError(f"train.strategy: the workers start from different steps (this one from step {step}: "
                           "each resumes from its own checkpoints/); delete checkpoints/ on every worker and run again")


def devices(strategy) -> list[str]:
    """The devices the steps run on (recorded in ``metrics/train.json``): the strategy's, or without one
    TensorFlow's default placement, the first GPU, else the CPU."""
    if strategy is not None:
        return [str(d) for d in strategy.extended.worker_devices]
    gpus = tf.config.list_logical_devices("GPU")
    return [(gpus[0] if gpus else tf.config.list_logical_devices("CPU")[0]).name]



MODEL = TFGAN  # build.build_gan's class on this backend

def run_steps(gan, feed, n: int, hook=None) -> int:
    """Run the ``n`` steps after the GAN's current step (within one epoch); return the step reached, which
    is short of the end when a step's output was not finite (see ``gan.diverged``)."""
    start = int(gan.step.numpy())
    if start % feed.steps_per_epoch == 0:
        gan.reset_sums()  # a new epoch
    gan.fit(feed.dataset(start, n), epochs=1, steps_per_epoch=n, verbose=0, shuffle=False,
            callbacks=[hook] if hook is not None else [])
    return int(gan.step.numpy())
