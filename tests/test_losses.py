"""Losses on hand-computed cases; the WGAN-GP interpolation is uniform; the penalty's closed form."""

import math

import keras
import numpy as np
import pytest
from scipy import stats

from ganpipe import losses


def sp(v):  # softplus
    return math.log1p(math.exp(v))


REAL = np.array([[2.0], [-1.0]], np.float32)
FAKE = np.array([[0.5], [-3.0]], np.float32)


@pytest.mark.parametrize("kind, d_expected, g_expected", [
    ("ns", (sp(-2) + sp(1)) / 2 + (sp(0.5) + sp(-3)) / 2, (sp(-0.5) + sp(3)) / 2),
    ("hinge", (0 + 2) / 2 + (1.5 + 0) / 2, -(0.5 - 3) / 2),
    ("wgan-gp", (0.5 - 3) / 2 - (2 - 1) / 2, -(0.5 - 3) / 2),
])
def test_losses_hand_computed(kind, d_expected, g_expected):
    assert float(losses.d_loss(kind, REAL, FAKE)) == pytest.approx(d_expected, rel=1e-6)
    assert float(losses.g_loss(kind, FAKE)) == pytest.approx(g_expected, rel=1e-6)


def test_unknown_loss():
    with pytest.raises(ValueError):
        losses.d_loss("lsgan", REAL, FAKE)


def test_interpolation_weights_are_uniform_on_0_1():
    from ganpipe.gan_tf import step_noise

    eps = np.asarray(step_noise({"eps": ((1,), "uniform")}, 20000, step=0, seed=3)["eps"]).ravel()
    assert eps.shape == (20000,) and eps.min() >= 0 and eps.max() <= 1
    assert stats.kstest(eps, "uniform").pvalue > 1e-3
    assert stats.kstest(eps, "norm").pvalue < 1e-6


def test_interpolate_endpoints():
    real, fake = np.ones((2, 2, 2, 1), np.float32), -np.ones((2, 2, 2, 1), np.float32)
    eps = np.array([1.0, 0.25], np.float32).reshape(2, 1, 1, 1)
    out = np.asarray(losses.interpolate(real, fake, eps))
    assert (out[0] == 1).all() and np.allclose(out[1], 0.25 - 0.75)


def test_gradient_penalty_of_a_linear_critic():
    # D(x) = <w, x>: the gradient is w everywhere, so GP = (||w|| - 1)^2
    inp = keras.Input((2, 2, 1))
    out = keras.layers.Dense(1, use_bias=False)(keras.layers.Flatten()(inp))
    d = keras.Model(inp, out)
    w = np.array([[3.0], [0.0], [4.0], [0.0]], np.float32)  # ||w|| = 5
    d.layers[-1].set_weights([w])
    rng = np.random.default_rng(0)
    real, fake = (rng.standard_normal((5, 2, 2, 1)).astype(np.float32) for _ in range(2))
    eps = rng.uniform(size=(5, 1, 1, 1)).astype(np.float32)
    from ganpipe.gan_tf import input_grad

    assert float(losses.gradient_penalty(d, real, fake, eps, input_grad)) == pytest.approx(16.0, rel=1e-5)


def test_r1_penalty_of_a_linear_critic_is_its_squared_weight_norm():
    # D(x) = <w, x>: grad_x D = w for every image, so E ||grad||^2 = ||w||^2, whatever the images
    inp = keras.Input((2, 2, 1))
    d = keras.Model(inp, keras.layers.Dense(1, use_bias=False)(keras.layers.Flatten()(inp)))
    d.layers[-1].set_weights([np.array([[3.0], [0.0], [4.0], [0.0]], np.float32)])
    x = np.random.default_rng(0).standard_normal((5, 2, 2, 1)).astype(np.float32)
    from ganpipe.gan_tf import input_grad

    assert float(losses.grad_sq_norm(d, x, input_grad)) == pytest.approx(25.0, rel=1e-5)
    # through a transform: D(2x) has gradient 2w
    assert float(losses.grad_sq_norm(d, x, input_grad, transform=lambda v: 2.0 * v)) == pytest.approx(100.0, rel=1e-5)


def test_lazy_ratio_and_active_regularisers():
    from tests.conftest import tiny_cfgs

    off, _ = tiny_cfgs()
    assert losses.active_regularisers(off) == {} and losses.lazy_ratio(off) == 1.0 and not losses.second_order(off)
    on, _ = tiny_cfgs({"r1_gamma": 0.5, "reg_interval": 16})
    assert losses.active_regularisers(on) == {"r1": 0.5} and losses.lazy_ratio(on) == 16 / 17
    assert losses.second_order(on)
    every, _ = tiny_cfgs({"r2_gamma": 1.0, "reg_interval": 1})
    assert losses.active_regularisers(every) == {"r2": 1.0} and losses.lazy_ratio(every) == 1.0
