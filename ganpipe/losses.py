"""GAN losses as pure functions of discriminator logits (means over the batch, float32).

- ``ns``: non-saturating BCE (Goodfellow et al. 2014): D: softplus(-r) + softplus(f); G: softplus(-f).
- ``hinge`` (Lim & Ye 2017): D: relu(1 - r) + relu(1 + f); G: -f.
- ``wgan-gp`` (Gulrajani et al. 2017): D: f - r + weight * GP; G: -f. The penalty is
  (||grad_x D(x_hat)||_2 - 1)^2 at x_hat = eps * real + (1 - eps) * fake, eps ~ U[0, 1] per sample.
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops


def d_loss(kind: str, real_logits, fake_logits):
    real_logits = ops.cast(real_logits, "float32")
    fake_logits = ops.cast(fake_logits, "float32")
    if kind == "ns":
        return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))
    if kind == "hinge":
        return ops.mean(ops.relu(1.0 - real_logits)) + ops.mean(ops.relu(1.0 + fake_logits))
    if kind == "wgan-gp":
        return ops.mean(fake_logits) - ops.mean(real_logits)
    raise ValueError(f"unknown loss {kind!r}")


def g_loss(kind: str, fake_logits):
    fake_logits = ops.cast(fake_logits, "float32")
    if kind == "ns":
        return ops.mean(ops.softplus(-fake_logits))
    if kind in ("hinge", "wgan-gp"):
        return -ops.mean(fake_logits)
    raise ValueError(f"unknown loss {kind!r}")


def interpolate(real, fake, eps):
    """x_hat = eps * real + (1 - eps) * fake, with ``eps`` of shape (B, 1, 1, 1)."""
    return eps * real + (1.0 - eps) * fake


def gradient_penalty(discriminator, real, fake, eps, labels=None):
    """Mean of (||dD/dx_hat||_2 - 1)^2 over the batch (TensorFlow backend)."""
    x_hat = tf.convert_to_tensor(interpolate(real, fake, eps))
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        # training=False: the penalty must not run spectral normalisation's in-place power iteration
        # inside the nested tape (the step's other D calls already did); D has no other training-mode layers.
        out = discriminator([x_hat, labels] if labels is not None else x_hat, training=False)
    grads = tf.cast(tape.gradient(out, x_hat), "float32")
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
    return tf.reduce_mean(tf.square(norms - 1.0))
