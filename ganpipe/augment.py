"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) applied to D's real and fake inputs.

The random offsets come in as uniform draws ``u`` in [0, 1), two per image and op, drawn with the batch
by the input pipeline (see ``GAN.noise_spec``), so augmentation is reproducible, resumable and the same
under any ``tf.distribute`` split of the batch.
"""

from __future__ import annotations

import tensorflow as tf


def _uniform_int(u, lo: int, hi: int):
    """Map u in [0, 1) to an int uniform on [lo, hi), shaped (B, 1, 1)."""
    k = tf.minimum(tf.cast(tf.floor(u * (hi - lo)), tf.int32), hi - lo - 1) + lo
    return tf.reshape(k, (-1, 1, 1))


def translation(x, u, ratio: float = 0.125):
    """Shift each image by up to ``ratio`` of its size in x and y, filling with zeros. ``u``: (B, 2)."""
    b, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    ph, pw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    dy = _uniform_int(u[:, 0], -ph, ph + 1)
    dx = _uniform_int(u[:, 1], -pw, pw + 1)
    gy = tf.range(h)[None, :, None] + dy + ph  # (B, H, 1) index into the padded image
    gx = tf.range(w)[None, None, :] + dx + pw  # (B, 1, W)
    padded = tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
    bi = tf.broadcast_to(tf.range(b)[:, None, None], (b, h, w))
    idx = tf.stack([bi, tf.broadcast_to(gy, (b, h, w)), tf.broadcast_to(gx, (b, h, w))], axis=-1)
    return tf.gather_nd(padded, idx)


def cutout(x, u, ratio: float = 0.5):
    """Zero a square of ``ratio`` x the image size at a random position of each image. ``u``: (B, 2)."""
    h, w = x.shape[1], x.shape[2]
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = _uniform_int(u[:, 0], 0, h + (1 - ch % 2))
    cx = _uniform_int(u[:, 1], 0, w + (1 - cw % 2))
    ys = tf.range(h)[None, :, None]
    xs = tf.range(w)[None, None, :]
    inside = (tf.abs(ys - cy) < ch // 2 + ch % 2) & (tf.abs(xs - cx) < cw // 2 + cw % 2)
    mask = tf.cast(tf.logical_not(inside), x.dtype)[..., None]
    return x * mask


OPS = {"translation": translation, "cutout": cutout}


def augment(x, names, u):
    """Apply the ops ``names`` in order; ``u`` is (B, 2 * len(names)) uniform draws."""
    for i, name in enumerate(names):
        x = OPS[name](x, u[:, 2 * i:2 * i + 2])
    return x
