"""The GAN as a ``keras.Model`` with an overridden ``train_step`` (TensorFlow backend), driven by ``fit()``.

One step: ``critic_steps`` discriminator updates on the real batch, then one generator update, then the
EMA update of the generator copy. Every random draw of a step (latent vectors, fake labels, the
regulariser's draws, the augmentations' offsets; :meth:`GAN.noise_spec`) is made on the device by
TensorFlow's stateless generators keyed by ``(seed, step, name)`` (:func:`step_noise`). So a resumed run
draws exactly what an uninterrupted one would, nothing random passes through the input pipeline, and under
a ``tf.distribute`` strategy each replica draws the global batch's noise and keeps the slice of its own
images: a mirrored run computes what a single-device run does.

The step is one variable, :attr:`GAN.step` (checkpointed), advanced by every step whether or not an
optimizer applied its update (a mixed_float16 loss scaler skips the update of a step with non-finite
gradients, and does not advance its ``iterations``): the data position, the noise key, the lazy
regularisers' cadence, the EMA ramp-up and ADA's interval all follow it. Everything the host reads from
the steps stays on the device between its reads (:meth:`GAN.diverged`, :attr:`GAN.sums`, ADA's p): the
loop reads them once per ``fit()`` execution, not once per step. (Over 300 lines, one job: the step;
its EMA helpers are the rest.)
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from . import losses, seeds
from .augment import ADA_INTERVAL, DRAWS_PER_OP, ada_adjust, augment


def scale_images(x):
    """uint8 [0, 255] -> float32 [-1, 1] (in the step: batches cross to the device as uint8)."""
    return tf.cast(x, tf.float32) / 127.5 - 1.0


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


class GAN(keras.Model):
    def __init__(self, generator, discriminator, ema_generator=None, *, loss="ns", latent_dim=64,
                 num_classes=0, gp_weight=10.0, critic_steps=1, ema_decay=0.0, ema_rampup=None, batch_size=64,
                 augment=(), augment_p="adaptive", ada_target=0.6, ada_kimg=100.0, seed=0, regularisers=None,
                 reg_interval=16, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.ema_generator = ema_generator
        self.loss = losses.get(loss)
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.gp_weight = gp_weight
        self.critic_steps = critic_steps
        self.ema_decay = ema_decay
        self.ema_rampup = ema_rampup
        self.batch_size = batch_size  # the global batch: images seen per step
        self.seed = seed  # of the step's random draws (step_noise)
        self.augment_ops = tuple(augment)
        self.adaptive = augment_p == "adaptive"
        # The probability of each augmentation op: a variable (in checkpoints) that ADA's controller moves in
        # the step (``augment.ada_adjust``, every ADA_INTERVAL steps from the r_t accumulated in ada_acc);
        # fixed otherwise. Replicas compute the same p: the first one's is kept.
        self.fixed_p = None if self.adaptive else float(augment_p)
        self.aug_p = keras.Variable(self.fixed_p or 0.0, trainable=False, dtype="float32", name="aug_p",
                                    aggregation="only_first_replica")
        self.ada_target = float(ada_target)
        self.ada_rate = batch_size * ADA_INTERVAL / (ada_kimg * 1000)  # p moves by 1 in ada_kimg thousand images
        self.ada_acc = keras.Variable(0.0, trainable=False, dtype="float32", name="ada_acc", aggregation="mean")
        # The one step counter (see the module's docstring), and the first step whose outputs were not finite.
        self.step = keras.Variable(0, trainable=False, dtype="int64", name="step", aggregation="only_first_replica")
        self.first_bad = keras.Variable(-1, trainable=False, dtype="int64", name="first_bad",
                                        aggregation="only_first_replica")
        self._ema_fn = None
        # Lazy gradient-norm regularisers (``losses.REGULARISERS``): name -> gamma, applied as a separate D
        # update every ``reg_interval`` steps; each one's last value is held (and checkpointed) for the logs.
        self.regularisers = dict(regularisers or {})
        self.reg_interval = int(reg_interval)
        self.reg_last = {name: keras.Variable(0.0, trainable=False, dtype="float32", name=f"{name}_last")
                         for name in self.regularisers}
        # The running sums of every value a step reports (``output_names``) since the epoch began: the loop
        # reads them at the end of each segment for the epoch means (replicas' values are averaged).
        self.sums = {name: keras.Variable(0.0, trainable=False, dtype="float32", name=f"{name}_sum",
                                          aggregation="mean") for name in self.output_names()}

    def output_names(self) -> list[str]:
        """What every step reports (``train_step``'s outputs, summed in :attr:`sums`, logged to DVCLive as epoch
        means): the losses, StyleGAN2-ADA's r_t, the loss's own penalty and each lazy regulariser's last value."""
        names = ["d_loss", "g_loss", "rt"]
        names += [self.loss.log_key] if self.loss.regulariser is not None else []
        return names + list(self.regularisers)

    def reset_sums(self) -> None:
        for v in self.sums.values():
            v.assign(0.0)

    def diverged(self) -> tuple[str, float, int] | None:
        """(name, value, step) of the first output that was not finite, or None; ``step`` counts from 1."""
        step = int(self.first_bad.numpy())
        if step < 0:
            return None
        value = {k: float(v.numpy()) for k, v in self.sums.items()}  # the first in output order (d_loss first)
        name = next(k for k in self.output_names() if not math.isfinite(value[k]))
        return name, value[name], step + 1

    def compile(self, d_optimizer, g_optimizer, jit_compile=False, steps_per_execution=1):
        super().compile(jit_compile=jit_compile, steps_per_execution=steps_per_execution)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer

    def build_optimizers(self) -> None:
        """Create optimizer slots now (they are otherwise made lazily), so checkpoints can restore them."""
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)
        self.built = True  # every variable exists: fit() need not trace a call() (GAN has none)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Nothing to build (``build_optimizers`` made every variable). Keras' own version (TF backend,
        under a strategy) pulls a batch and MEAN-reduces it across replicas first, which fails for
        integer inputs under MultiWorkerMirroredStrategy."""

    def noise_spec(self) -> dict:
        """The random draws one step consumes, per image: name -> (shape, distribution). Distributions:
        ``normal``, ``uniform`` (on [0, 1)) or an int ``k`` (uniform on 0..k-1)."""
        s = self.critic_steps
        spec = {"z": ((s + 1, self.latent_dim), "normal")}
        if self.num_classes:
            spec["labels"] = ((s + 1,), self.num_classes)
        for name, dist in self.loss.draws.items():  # the regulariser's, one per critic step
            spec[name] = ((s,), dist)
        if self.augment_ops:  # one draw per D call: real and fake per critic step, fake in the G step
            spec["aug"] = ((2 * s + 1, DRAWS_PER_OP * len(self.augment_ops)), "uniform")
        return spec

    # ------------------------------------------------------------------------------------------------

    def _g_inputs(self, z, labels):
        return [z, labels] if self.num_classes else z

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
                values[name] = losses.grad_sq_norm(self.discriminator, x, labels if self.num_classes else None,
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
                    penalty = self.loss.regulariser(self.discriminator, real, fake, real_labels, draws)
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

    def ema_beta(self, steps):
        """The EMA decay after ``steps`` generator updates. ``ema_decay`` per step is a half-life of
        ``batch * ln 0.5 / ln ema_decay`` images; with ``ema_rampup`` the half-life is capped at that
        fraction of the images seen so far (StyleGAN2-ADA), so early on the average forgets the random
        initialisation quickly: with the defaults (0.999, 0.05, batch 64) the decay is 0.93 after 200
        steps and reaches 0.999 after about 14,000."""
        decay = tf.constant(self.ema_decay, tf.float32)
        if self.ema_rampup is None or self.ema_decay == 0:
            return decay
        half_life = self.batch_size * math.log(0.5) / math.log(self.ema_decay)
        seen = tf.cast(steps, tf.float32) * float(self.batch_size)
        capped = tf.minimum(tf.constant(half_life, tf.float32), self.ema_rampup * seen)
        return tf.pow(0.5, float(self.batch_size) / tf.maximum(capped, 1e-8))

    def sample_generator(self):
        return self.ema_generator if self.ema_generator is not None else self.generator
