"""GAN losses: the registry :data:`LOSSES`, whose keys are the values ``model.loss`` accepts.

A loss is its discriminator and generator functions of D's logits (means over the batch, float32) and,
optionally, a regulariser added to D's loss with the weight ``model.gp_weight``, with the per-image random
draws it needs each critic step (drawn with the step's others: ``GAN.noise_spec``) and whether it
differentiates a gradient (``second_order``, which ``gan_tf.configure`` must know). All in ``keras.ops``; the
input gradient a penalty needs is the backend's (passed in as ``grad``).

- ``ns``: non-saturating BCE (Goodfellow et al. 2014): D: softplus(-r) + softplus(f); G: softplus(-f).
- ``hinge`` (Lim & Ye 2017): D: relu(1 - r) + relu(1 + f); G: -f.
- ``wgan-gp`` (Gulrajani et al. 2017): D: f - r + weight * GP; G: -f. The penalty is
  (||grad_x D(x_hat)||_2 - 1)^2 at x_hat = eps * real + (1 - eps) * fake, eps ~ U[0, 1] per sample.

Adding a loss: an entry here, its name in ``params.Model.loss`` (a test checks that the two agree).

Besides the loss, D can carry gradient-norm regularisers of any loss (:data:`REGULARISERS`), each with its
own weight key in ``model`` and applied lazily every ``model.reg_interval`` steps (StyleGAN2, Karras et al.
2020): a separate D update on ``interval * gamma / 2 * E ||grad_x D(x)||^2``, with D's Adam learning rate
and betas rescaled by ``c = interval / (interval + 1)`` (``lr * c``, ``beta ** c``) for the extra updates.

- ``r1`` (Mescheder et al. 2018): the gradient at (augmented) real images, weight ``model.r1_gamma``;
- ``r2``: the same at generated images, weight ``model.r2_gamma`` (R3GAN pairs it with R1).

Adding a regulariser: an entry in :data:`REGULARISERS`, its weight key in ``params.Model``, ``params.yaml``
and ``dvc.yaml`` (a test checks that they agree).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from keras import ops


def _f32(*logits):
    return [ops.cast(v, "float32") for v in logits]


def ns_d(real_logits, fake_logits):
    r, f = _f32(real_logits, fake_logits)
    return ops.mean(ops.softplus(-r)) + ops.mean(ops.softplus(f))


def ns_g(fake_logits):
    (f,) = _f32(fake_logits)
    return ops.mean(ops.softplus(-f))


def hinge_d(real_logits, fake_logits):
    r, f = _f32(real_logits, fake_logits)
    return ops.mean(ops.relu(1.0 - r)) + ops.mean(ops.relu(1.0 + f))


def wasserstein_d(real_logits, fake_logits):
    r, f = _f32(real_logits, fake_logits)
    return ops.mean(f) - ops.mean(r)


def minus_fake_g(fake_logits):
    (f,) = _f32(fake_logits)
    return -ops.mean(f)


def interpolate(real, fake, eps):
    """x_hat = eps * real + (1 - eps) * fake, with ``eps`` of shape (B, 1, 1, 1)."""
    return eps * real + (1.0 - eps) * fake


def gradient_penalty(d_fn, real, fake, eps, grad):
    """Mean of (||dD/dx_hat||_2 - 1)^2 over the batch. ``d_fn``: D's logits of an image batch (in inference
    mode: the penalty must not run spectral normalisation's in-place power iteration again; D has no other
    training-mode layers); ``grad(f, x)``: the gradient of ``f`` at ``x``, summed over outputs (the
    backend's half: ``gan_tf.input_grad``, ``gan_jax.input_grad``)."""
    grads = ops.cast(grad(d_fn, interpolate(real, fake, eps)), "float32")
    norms = ops.sqrt(ops.sum(ops.square(grads), axis=(1, 2, 3)) + 1e-12)
    return ops.mean(ops.square(norms - 1.0))


def wgan_gp_penalty(d_fn, real, fake, draws, grad):
    """The WGAN-GP regulariser of one critic step; ``draws["eps"]``: (B,) uniform interpolation weights."""
    eps = ops.cast(ops.reshape(draws["eps"], (-1, 1, 1, 1)), real.dtype)
    return gradient_penalty(d_fn, real, ops.cast(fake, real.dtype), eps, grad)


def grad_sq_norm(d_fn, x, grad, transform=None):
    """E ||grad_x D(transform(x))||^2 over the batch, in float32 (``d_fn`` and ``grad`` as for
    :func:`gradient_penalty`)."""
    def total(v):
        return ops.sum(ops.cast(d_fn(transform(v) if transform is not None else v), "float32"))

    grads = ops.cast(grad(total, x), "float32")
    return ops.mean(ops.sum(ops.square(grads), axis=(1, 2, 3)))


@dataclass(frozen=True)
class Regulariser:
    weight_key: str  # the ``model`` param holding its gamma (0 = off)
    on: str  # "real" or "fake": the images whose input gradient it penalises


REGULARISERS: dict[str, Regulariser] = {
    "r1": Regulariser("r1_gamma", "real"),
    "r2": Regulariser("r2_gamma", "fake"),
}


def active_regularisers(model_cfg) -> dict[str, float]:
    """name -> gamma of the regularisers ``model_cfg`` turns on (gamma > 0), in registry order."""
    return {name: float(getattr(model_cfg, r.weight_key)) for name, r in REGULARISERS.items()
            if getattr(model_cfg, r.weight_key) > 0}


def lazy_ratio(model_cfg) -> float:
    """StyleGAN2's ``mb_ratio`` for D's optimizer: interval / (interval + 1) with lazy regularisers, else 1."""
    k = model_cfg.reg_interval
    return k / (k + 1) if active_regularisers(model_cfg) and k > 1 else 1.0


def second_order(model_cfg) -> bool:
    """Whether the step differentiates a gradient (the loss's own penalty or a regulariser)."""
    return get(model_cfg.loss).second_order or bool(active_regularisers(model_cfg))


@dataclass(frozen=True)
class Loss:
    d: Callable  # (real_logits, fake_logits) -> D's loss
    g: Callable  # (fake_logits) -> G's loss
    # (d_fn, real, fake, draws, grad) -> penalty, added to D's loss x model.gp_weight (see gradient_penalty)
    regulariser: Callable | None = None
    draws: dict = field(default_factory=dict)  # the regulariser's per-image draws: name -> distribution
    second_order: bool = False  # the step differentiates a gradient (Grappler must stay off)
    log_key: str = "gp"  # the regulariser's per-step log name (``<log_key>_step``)


LOSSES: dict[str, Loss] = {
    "ns": Loss(ns_d, ns_g),
    "hinge": Loss(hinge_d, minus_fake_g),
    "wgan-gp": Loss(wasserstein_d, minus_fake_g, wgan_gp_penalty, {"eps": "uniform"}, second_order=True),
}


def get(kind: str) -> Loss:
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r} (known: {', '.join(LOSSES)})")
    return LOSSES[kind]


def d_loss(kind: str, real_logits, fake_logits):
    return get(kind).d(real_logits, fake_logits)


def g_loss(kind: str, fake_logits):
    return get(kind).g(fake_logits)
