"""The GAN as a ``keras.Model``: its networks, optimizers and training state, whatever the backend.

One step: ``critic_steps`` discriminator updates on the real batch, then one generator update, then the
EMA update of the generator copy. The step itself is the backend's half: ``gan_tf.TFGAN.train_step``
(TensorFlow, driven by ``fit()``) and ``gan_jax.JaxGAN`` (JAX: a pure function of the state, many steps
per ``jax.jit`` call through ``lax.scan``). Both share the losses (``ganpipe.losses``), the augmentations
and ADA's controller (``ganpipe.augment``), the EMA's ramp-up (:meth:`GAN.ema_beta`) and the list of the
step's random draws (:meth:`GAN.noise_spec`), which each backend draws from its own stateless generators
keyed by ``(seed, step, name)``: a resumed run draws exactly what an uninterrupted one would.

The step is one variable, :attr:`GAN.step` (checkpointed), advanced by every step whether or not an
optimizer applied its update (a mixed_float16 loss scaler skips the update of a step with non-finite
gradients, and does not advance its ``iterations``): the data position, the noise key, the lazy
regularisers' cadence, the EMA ramp-up and ADA's interval all follow it. Everything the host reads from
the steps stays on the device between its reads (:meth:`GAN.diverged`, :attr:`GAN.sums`, ADA's p): the
loop reads them once per execution of ``train.steps_per_execution`` steps, not once per step.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from . import losses
from .augment import ADA_INTERVAL, DRAWS_PER_OP


def scale_images(x):
    """uint8 [0, 255] -> float32 [-1, 1] (in the step: batches cross to the device as uint8)."""
    return ops.cast(x, "float32") / 127.5 - 1.0


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
        # (int64 on TensorFlow; int32 on JAX, whose integers are 32-bit unless x64 is on: 2**31 steps is plenty)
        int_dtype = "int32" if keras.backend.backend() == "jax" else "int64"
        self.step = keras.Variable(0, trainable=False, dtype=int_dtype, name="step", aggregation="only_first_replica")
        self.first_bad = keras.Variable(-1, trainable=False, dtype=int_dtype, name="first_bad",
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

    def _g_inputs(self, z, labels):
        return [z, labels] if self.num_classes else z

    def ema_beta(self, steps):
        """The EMA decay after ``steps`` generator updates. ``ema_decay`` per step is a half-life of
        ``batch * ln 0.5 / ln ema_decay`` images; with ``ema_rampup`` the half-life is capped at that
        fraction of the images seen so far (StyleGAN2-ADA), so early on the average forgets the random
        initialisation quickly: with the defaults (0.999, 0.05, batch 64) the decay is 0.93 after 200
        steps and reaches 0.999 after about 14,000."""
        decay = ops.convert_to_tensor(self.ema_decay, "float32")
        if self.ema_rampup is None or self.ema_decay == 0:
            return decay
        half_life = self.batch_size * math.log(0.5) / math.log(self.ema_decay)
        seen = ops.cast(steps, "float32") * float(self.batch_size)
        capped = ops.minimum(ops.convert_to_tensor(half_life, "float32"), self.ema_rampup * seen)
        return ops.power(0.5, float(self.batch_size) / ops.maximum(capped, 1e-8))

    def sample_generator(self):
        return self.ema_generator if self.ema_generator is not None else self.generator
