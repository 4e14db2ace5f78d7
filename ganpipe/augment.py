"""Augmentation of D's inputs: the DiffAugment ops (Zhao et al. 2020), applied to real and fake images
alike, each op to each image with probability ``p`` (fixed, or tuned during training by the adaptive
controller of StyleGAN2-ADA, Karras et al. 2020: :func:`ada_adjust`, run in the step by ``ganpipe.gan``).

Every random number comes in as uniform draws ``u`` in [0, 1), three per image and op (a gate and two
parameters), drawn for the step keyed by the seed and the step (see ``GAN.noise_spec`` and
``GAN.step_noise``), so augmentation is reproducible, resumable and the same under any ``tf.distribute``
split of the batch. Images are in [-1, 1]; the colour ops follow DiffAugment's ``color`` policy. Written in
``keras.ops``: the same math on TensorFlow and JAX.
"""

from __future__ import annotations

from keras import ops

DRAWS_PER_OP = 3  # gate, two parameters
ADA_INTERVAL = 4  # steps between adjustments of the augmentation probability (StyleGAN2-ADA's value)


def ada_adjust(p, mean_rt, target: float, rate: float):
    """StyleGAN2-ADA's controller: p moves by ``rate`` up when the overfitting heuristic
    r_t = E[sign(D(real))] (``mean_rt``, over the last ADA_INTERVAL steps) is above ``target`` (D overfits),
    down when below, clipped to [0, 1]."""
    return ops.clip(p + ops.sign(mean_rt - target) * rate, 0.0, 1.0)


def _uniform_int(u, lo: int, hi: int):
    """Map u in [0, 1) to an int uniform on [lo, hi), shaped (B, 1, 1)."""
    k = ops.minimum(ops.cast(ops.floor(u * (hi - lo)), "int32"), hi - lo - 1) + lo
    return ops.reshape(k, (-1, 1, 1))


def _per_image(u):
    return ops.reshape(u, (-1, 1, 1, 1))


def _shift_matrix(n: int, d, dtype):
    """(B, n, n) one-hot rows: row i picks element i + d of a length-n axis (none past either end)."""
    i = ops.arange(n, dtype="int32")[None, :, None]
    j = ops.arange(n, dtype="int32")[None, None, :]
    return ops.cast(ops.equal(j, i + d), dtype)


def translation(x, u, ratio: float = 0.125):
    """Shift each image by up to ``ratio`` of its size in x and y, filling with zeros. ``u``: (B, 2).

    Built from one-hot shift matrices (``out = Sy @ x @ Sx^T`` per image) rather than a gather: every
    output is one input times 1 plus zeros, so the values are exactly a gather's, and the gradient is two
    matmuls instead of ``gather_nd``'s ``ScatterNd``, which TensorFlow runs on the host when op determinism
    is on (a copy out of the GPU and back every step)."""
    h, w = x.shape[1], x.shape[2]
    ph, pw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    dy = _uniform_int(u[:, 0], -ph, ph + 1)
    dx = _uniform_int(u[:, 1], -pw, pw + 1)
    sy, sx = _shift_matrix(h, dy, x.dtype), _shift_matrix(w, dx, x.dtype)
    return ops.einsum("bij,bjkc,blk->bilc", sy, x, sx)


def cutout(x, u, ratio: float = 0.5):
    """Zero a square of ``ratio`` x the image size at a random position of each image. ``u``: (B, 2)."""
    h, w = x.shape[1], x.shape[2]
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = _uniform_int(u[:, 0], 0, h + (1 - ch % 2))
    cx = _uniform_int(u[:, 1], 0, w + (1 - cw % 2))
    ys = ops.arange(h, dtype="int32")[None, :, None]
    xs = ops.arange(w, dtype="int32")[None, None, :]
    inside = ops.logical_and(ops.abs(ys - cy) < ch // 2 + ch % 2, ops.abs(xs - cx) < cw // 2 + cw % 2)
    mask = ops.cast(ops.logical_not(inside), x.dtype)[..., None]
    return x * mask


def brightness(x, u):
    """Add a per-image offset in [-0.5, 0.5)."""
    return x + ops.cast(_per_image(u[:, 0]) - 0.5, x.dtype)


def saturation(x, u):
    """Scale each pixel's distance from its channel mean by [0, 2) (no-op on grey images)."""
    mean = ops.mean(x, axis=3, keepdims=True)
    return (x - mean) * ops.cast(_per_image(u[:, 0]) * 2, x.dtype) + mean


def contrast(x, u):
    """Scale each image's distance from its mean by [0.5, 1.5)."""
    mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean) * ops.cast(_per_image(u[:, 0]) + 0.5, x.dtype) + mean


OPS = {"translation": translation, "cutout": cutout, "brightness": brightness, "saturation": saturation,
       "contrast": contrast}


def augment(x, names, u, p=None):
    """Apply the ops ``names`` in order, each to each image with probability ``p`` (always when None);
    ``u`` is (B, 3 * len(names)) uniform draws: per op a gate (applied where gate < p) and two parameters."""
    for i, name in enumerate(names):
        k = DRAWS_PER_OP * i
        y = OPS[name](x, u[:, k + 1:k + 3])
        if p is not None:
            y = ops.where(_per_image(u[:, k]) < ops.cast(p, u.dtype), y, x)
        x = y
    return x
