"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) applied to D's real and fake inputs.

Every random draw takes a ``keras.random.SeedGenerator``, so augmentation is reproducible and resumable.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def translation(x, seed, ratio: float = 0.125):
    """Shift each image by up to ``ratio`` of its size in x and y, filling with zeros."""
    b, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    ph, pw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    dy = keras.random.randint((b, 1, 1), -ph, ph + 1, seed=seed)
    dx = keras.random.randint((b, 1, 1), -pw, pw + 1, seed=seed)
    gy = tf.range(h)[None, :, None] + dy + ph  # (B, H, 1) index into the padded image
    gx = tf.range(w)[None, None, :] + dx + pw  # (B, 1, W)
    padded = tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
    bi = tf.broadcast_to(tf.range(b)[:, None, None], (b, h, w))
    idx = tf.stack([bi, tf.broadcast_to(gy, (b, h, w)), tf.broadcast_to(gx, (b, h, w))], axis=-1)
    return tf.gather_nd(padded, idx)


def cutout(x, seed, ratio: float = 0.5):
    """Zero a square of ``ratio`` x the image size at a random position of each image."""
    b, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = keras.random.randint((b, 1, 1), 0, h + (1 - ch % 2), seed=seed)
    cx = keras.random.randint((b, 1, 1), 0, w + (1 - cw % 2), seed=seed)
    ys = tf.range(h)[None, :, None]
    xs = tf.range(w)[None, None, :]
    inside = (tf.abs(ys - cy) < ch // 2 + ch % 2) & (tf.abs(xs - cx) < cw // 2 + cw % 2)
    mask = tf.cast(tf.logical_not(inside), x.dtype)[..., None]
    return x * mask


OPS = {"translation": translation, "cutout": cutout}


def augment(x, names, seed):
    for name in names:
        x = OPS[name](x, seed)
    return x
