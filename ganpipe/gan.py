"""The GAN as a ``keras.Model`` with an overridden ``train_step`` (TensorFlow backend), driven by ``fit()``.

One step: ``critic_steps`` discriminator updates on the real batch with fresh noise, then one generator
update, then the EMA update of the generator copy. Every random draw uses ``self.seed_generator``, whose
state is saved in checkpoints, so a resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from . import losses
from .augment import augment


def ema_update(ema_vars, vars_, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * w for trainable weights."""
    for e, w in zip(ema_vars, vars_):
        e.assign(decay * e + (1.0 - decay) * tf.cast(w, e.dtype))


def fused_ema_update(ema_vars, vars_):
    """An XLA-compiled ``ema_update`` over fixed variable lists: each update becomes one pass over memory
    (about 3 array passes instead of 9); the EMA of a large generator (the mlp baseline's 78M weights)
    is memory-bound."""
    ema_vars, vars_ = list(ema_vars), list(vars_)

    @tf.function(jit_compile=True)
    def update(decay):
        ema_update(ema_vars, vars_, decay)

    return update


class GAN(keras.Model):
    def __init__(self, generator, discriminator, ema_generator=None, *, loss="ns", latent_dim=64,
                 num_classes=0, gp_weight=10.0, critic_steps=1, ema_decay=0.0, augment=(), seed=0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.ema_generator = ema_generator
        self.loss_kind = loss
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.gp_weight = gp_weight
        self.critic_steps = critic_steps
        self.ema_decay = ema_decay
        self.augment_ops = tuple(augment)
        self._ema_fn = None
        self.seed_generator = keras.random.SeedGenerator(seed, name="train_seed")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.gp_tracker = keras.metrics.Mean(name="gp")

    @property
    def metrics(self):
        trackers = [self.d_loss_tracker, self.g_loss_tracker]
        return trackers + [self.gp_tracker] if self.loss_kind == "wgan-gp" else trackers

    def compile(self, d_optimizer, g_optimizer, jit_compile=False):
        super().compile(jit_compile=jit_compile)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer

    def build_optimizers(self) -> None:
        """Create optimizer slots now (they are otherwise made lazily), so checkpoints can restore them."""
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    # ------------------------------------------------------------------------------------------------

    def _g_inputs(self, z, labels):
        return [z, labels] if self.num_classes else z

    def _d_call(self, x, labels, training=True):
        if self.augment_ops:
            x = augment(x, self.augment_ops, self.seed_generator)
        return self.discriminator([x, labels] if self.num_classes else x, training=training)

    def _noise(self, batch):
        z = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        labels = None
        if self.num_classes:
            labels = keras.random.randint((batch, 1), 0, self.num_classes, seed=self.seed_generator)
        return z, labels

    def _apply(self, optimizer, tape, loss, variables):
        scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        optimizer.apply_gradients(zip(grads, variables))

    def train_step(self, data):
        real, real_labels = data
        batch = tf.shape(real)[0]
        real_labels = tf.reshape(tf.cast(real_labels, "int32"), (-1, 1)) if self.num_classes else None
        d_vars = self.discriminator.trainable_variables
        gp = tf.constant(0.0)
        for _ in range(self.critic_steps):
            z, fake_labels = self._noise(batch)
            with tf.GradientTape() as tape:
                fake = self.generator(self._g_inputs(z, fake_labels), training=True)
                real_logits = self._d_call(real, real_labels)
                fake_logits = self._d_call(fake, fake_labels)
                d_loss = losses.d_loss(self.loss_kind, real_logits, fake_logits)
                if self.loss_kind == "wgan-gp":
                    eps = losses.interpolation_weights(batch, self.seed_generator, real.dtype)
                    gp = losses.gradient_penalty(self.discriminator, real, tf.cast(fake, real.dtype), eps, real_labels)
                    d_loss = d_loss + self.gp_weight * gp
            self._apply(self.d_optimizer, tape, d_loss, d_vars)

        z, fake_labels = self._noise(batch)
        g_vars = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            fake = self.generator(self._g_inputs(z, fake_labels), training=True)
            g_loss = losses.g_loss(self.loss_kind, self._d_call(fake, fake_labels))
        self._apply(self.g_optimizer, tape, g_loss, g_vars)

        if self.ema_generator is not None:
            if self._ema_fn is None:
                self._ema_fn = fused_ema_update(self.ema_generator.trainable_variables, g_vars)
            self._ema_fn(tf.constant(self.ema_decay, tf.float32))
            for e, w in zip(self.ema_generator.non_trainable_variables, self.generator.non_trainable_variables):
                e.assign(w)  # batch-norm statistics follow the live generator

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.gp_tracker.update_state(gp)
        out = {m.name: m.result() for m in self.metrics} | {"d_loss_step": d_loss, "g_loss_step": g_loss}
        if self.loss_kind == "wgan-gp":
            out["gp_step"] = gp
        return out

    def sample_generator(self):
        return self.ema_generator if self.ema_generator is not None else self.generator
