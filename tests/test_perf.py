"""The measuring helpers behind bench/: FLOPs of a traced step (pruned to what it needs), matmul peak,
and the keras.io WGAN-GP recipe baseline built from its published settings."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from bench.baselines import KERAS_IO_WGAN_GP, keras_io_critic, keras_io_generator, keras_io_wgan_gp
from bench.perf import graph_flops, matmul_peak


def test_graph_flops_counts_only_the_gradients_a_step_needs():
    b, n_in, n_out = 8, 32, 16
    inp = keras.Input((n_in,))
    model = keras.Model(inp, keras.layers.Dense(n_out, use_bias=False)(inp))

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(model(x)))
        grads = tape.gradient(loss, model.trainable_variables)
        model.trainable_variables[0].assign_sub(0.1 * grads[0])
        return loss

    flops = graph_flops(step.get_concrete_function(tf.TensorSpec((b, n_in))))
    matmul = 2 * b * n_in * n_out
    # forward y = xW and dW = x^T dy; not dx (the input needs no gradient): 2 matmuls plus elementwise work
    assert 2 * matmul <= flops < 2 * matmul + 4 * b * n_out + 4 * n_in * n_out
    assert flops < 3 * matmul


def test_matmul_peak_is_a_positive_rate():
    assert matmul_peak(n=128, reps=2, rounds=1) > 0


def test_keras_io_recipe_is_the_published_architecture_and_settings():
    assert KERAS_IO_WGAN_GP == {"batch_size": 512, "latent_dim": 128, "critic_steps": 3, "gp_weight": 10.0,
                                     "lr": 2e-4, "beta_1": 0.5, "beta_2": 0.9, "epochs": 20}
    critic, gen = keras_io_critic(), keras_io_generator(128)
    assert critic.count_params() == 4_305_409  # the example's printed summary
    convs = [layer for layer in critic.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.strides) for c in convs] == [(f, (5, 5), (2, 2)) for f in (64, 128, 256, 512)]
    assert critic.layers[1].output.shape[1:] == (32, 32, 1)  # zero-padded to 32x32
    assert gen.output_shape == (None, 28, 28, 1)  # 4x4 -> 32x32, cropped to 28x28
    assert gen.count_params() == 910_660 and sum(int(np.prod(v.shape)) for v in gen.trainable_weights) == 902_082


def test_keras_io_recipe_trains():
    model = keras_io_wgan_gp(seed=0)
    before = [w.copy() for w in model.generator.get_weights()]
    x = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
    hist = model.fit(x, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(hist.history["d_loss"]).all() and np.isfinite(hist.history["g_loss"]).all()
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.generator.get_weights()))
    assert model.d_optimizer.iterations.numpy() == 2 * 3 and model.g_optimizer.iterations.numpy() == 2
