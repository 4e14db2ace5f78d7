"""Augmentation ops: translation equals a gather exactly (values and gradients) without one, and nothing in
the augmented step's gradient is a scatter, which TensorFlow runs on the host under op determinism."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ganpipe import augment as A


def _translation_by_gather(x, u, ratio=0.125):
    """The previous implementation: an index grid into the zero-padded image (an independent oracle)."""
    b, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    ph, pw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    dy, dx = A._uniform_int(u[:, 0], -ph, ph + 1), A._uniform_int(u[:, 1], -pw, pw + 1)
    gy, gx = tf.range(h)[None, :, None] + dy + ph, tf.range(w)[None, None, :] + dx + pw
    padded = tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
    bi = tf.broadcast_to(tf.range(b)[:, None, None], (b, h, w))
    idx = tf.stack([bi, tf.broadcast_to(gy, (b, h, w)), tf.broadcast_to(gx, (b, h, w))], axis=-1)
    return tf.gather_nd(padded, idx)


@pytest.mark.parametrize("shape", [(64, 28, 28, 1), (16, 32, 32, 3), (4, 64, 48, 3)])
def test_translation_is_bit_identical_to_a_gather_in_values_and_gradients(shape):
    rng = np.random.default_rng(shape[1])
    x = tf.constant(np.tanh(rng.normal(size=shape)).astype(np.float32))
    u = tf.constant(rng.random((shape[0], 2)).astype(np.float32))
    g = tf.constant(rng.normal(size=shape).astype(np.float32))
    out = []
    for f in (_translation_by_gather, A.translation):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = f(x, u)
            loss = tf.reduce_sum(y * g)
        out.append((y.numpy().tobytes(), tape.gradient(loss, x).numpy().tobytes()))
    assert out[0] == out[1]
    assert not np.array_equal(A.translation(x, u).numpy(), x.numpy())  # it does move the images


def test_the_augmented_gradient_has_no_scatter_or_gather():
    @tf.function
    def step(x, u, g):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(A.augment(x, list(A.OPS), u, 0.5) * g)
        return tape.gradient(loss, x)

    x = tf.zeros((4, 32, 32, 3))
    u = tf.zeros((4, A.DRAWS_PER_OP * len(A.OPS)))
    ops = {op.type for op in step.get_concrete_function(x, u, x).graph.get_operations()}
    assert "Einsum" in ops or "BatchMatMulV2" in ops or "BatchMatMulV3" in ops, sorted(ops)
    assert not [o for o in ops if "Scatter" in o or "Gather" in o], sorted(ops)
