"""Reference recipes that our defaults are measured against (``bench/``), built from their published
settings rather than copied.

``keras_io_wgan_gp``: the keras.io example "WGAN-GP overriding Model.train_step" (A. K. Nain, 2020) for
Fashion-MNIST, as published:

- critic: zero-pad 28x28 to 32x32, four 5x5 stride-2 conv blocks of 64/128/256/512 channels with
  LeakyReLU(0.2) (dropout 0.3 after the second and third), flatten, dropout 0.2, Dense(1);
- generator: z (128) -> Dense 4*4*256 (no bias) + BN + LeakyReLU(0.2) -> three blocks of 2x upsampling
  + 3x3 conv (no bias) + BN (128, 64, then 1 channel with tanh) -> crop 32x32 to 28x28;
- batch 512, 3 critic steps per generator step on the same real batch, gradient penalty weight 10,
  Adam(2e-4, beta_1 0.5, beta_2 0.9) for both, images scaled to [-1, 1], ``fit()`` over the NumPy array.

As published, the penalty's interpolation weights are drawn from N(0, 1) (the WGAN-GP paper uses
U[0, 1]) and the critic runs in training mode (dropout on) inside the penalty; both are kept.
"""

from __future__ import annotations

import keras
from keras import layers

KERAS_IO_WGAN_GP = {"batch_size": 512, "latent_dim": 128, "critic_steps": 3, "gp_weight": 10.0,
                    "lr": 2e-4, "beta_1": 0.5, "beta_2": 0.9, "epochs": 20}


def keras_io_critic(shape=(28, 28, 1)):
    x = inp = keras.Input(shape)
    x = layers.ZeroPadding2D((2, 2))(x)
    for filters, dropout in ((64, False), (128, True), (256, True), (512, False)):
        x = layers.Conv2D(filters, 5, strides=2, padding="same")(x)
        x = layers.LeakyReLU(0.2)(x)
        if dropout:
            x = layers.Dropout(0.3)(x)
    x = layers.Dropout(0.2)(layers.Flatten()(x))
    return keras.Model(inp, layers.Dense(1)(x), name="discriminator")


def keras_io_generator(latent_dim: int = 128):
    x = inp = keras.Input((latent_dim,))
    x = layers.LeakyReLU(0.2)(layers.BatchNormalization()(layers.Dense(4 * 4 * 256, use_bias=False)(x)))
    x = layers.Reshape((4, 4, 256))(x)
    for filters in (128, 64, 1):
        x = layers.UpSampling2D((2, 2))(x)
        x = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same", use_bias=False)(x))
        x = layers.Activation("tanh")(x) if filters == 1 else layers.LeakyReLU(0.2)(x)
    return keras.Model(inp, layers.Cropping2D((2, 2))(x), name="generator")


class KerasIoWGANGP(keras.Model):
    """The recipe's training step (its own ``train_step``; TensorFlow backend). The builders above are
    backend-neutral (bench/jax_throughput.py runs them under JAX)."""

    def __init__(self, critic, generator, latent_dim=128, critic_steps=3, gp_weight=10.0, **kwargs):
        super().__init__(**kwargs)
        self.discriminator, self.generator = critic, generator
        self.latent_dim, self.critic_steps, self.gp_weight = latent_dim, critic_steps, gp_weight

    def compile(self, d_optimizer, g_optimizer):
        super().compile()
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

    def _penalty(self, real, fake):
        import tensorflow as tf

        alpha = tf.random.normal([tf.shape(real)[0], 1, 1, 1], 0.0, 1.0)  # as published (not U[0, 1])
        x_hat = real + alpha * (fake - real)
        with tf.GradientTape() as tape:
            tape.watch(x_hat)
            out = self.discriminator(x_hat, training=True)
        grads = tape.gradient(out, x_hat)
        norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))
        return tf.reduce_mean((norm - 1.0) ** 2)

    def train_step(self, real):
        import tensorflow as tf

        if isinstance(real, tuple):
            real = real[0]
        b = tf.shape(real)[0]
        for _ in range(self.critic_steps):
            z = tf.random.normal((b, self.latent_dim))
            with tf.GradientTape() as tape:
                fake = self.generator(z, training=True)
                d_cost = tf.reduce_mean(self.discriminator(fake, training=True)) - tf.reduce_mean(
                    self.discriminator(real, training=True))
                d_loss = d_cost + self.gp_weight * self._penalty(real, fake)
            grads = tape.gradient(d_loss, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))
        z = tf.random.normal((b, self.latent_dim))
        with tf.GradientTape() as tape:
            g_loss = -tf.reduce_mean(self.discriminator(self.generator(z, training=True), training=True))
        grads = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        return {"d_loss": d_loss, "g_loss": g_loss}


def keras_io_wgan_gp(seed: int = 0):
    """The recipe's compiled model, seeded."""
    keras.utils.set_random_seed(seed)
    s = KERAS_IO_WGAN_GP
    model = KerasIoWGANGP(keras_io_critic(), keras_io_generator(s["latent_dim"]), s["latent_dim"],
                          s["critic_steps"], s["gp_weight"])

    def adam():
        return keras.optimizers.Adam(s["lr"], beta_1=s["beta_1"], beta_2=s["beta_2"])

    model.compile(d_optimizer=adam(), g_optimizer=adam())
    return model
