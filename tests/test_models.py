"""Generator and discriminator shapes for every family, size and channel count; safe-mode saving."""

import hashlib

import keras
import numpy as np
import pytest

from ganpipe.models import BUILDERS, n_scales
from ganpipe.saving import load_model, save_model
from tests.conftest import tiny_cfgs


@pytest.mark.parametrize("arch", sorted(BUILDERS))
@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shapes(arch, size, channels):
    make_g, make_d = BUILDERS[arch]
    for k in (0, 10):
        g = make_g(size, channels, 8, 8, num_classes=k)
        d = make_d(size, channels, 8, num_classes=k, spectral_norm=arch != "mlp")
        z = keras.random.normal((3, 8), seed=1)
        y = keras.ops.convert_to_tensor(np.array([[0], [4], [9]], np.int32))
        x = g([z, y] if k else z)
        logits = d([x, y] if k else x)
        assert tuple(x.shape) == (3, size, size, channels)
        assert tuple(logits.shape) == (3, 1)
        x = np.asarray(x)
        assert x.min() >= -1 and x.max() <= 1  # tanh output


def test_mlp_generator_is_the_specified_design():
    g = BUILDERS["mlp"][0](28, 1, 100, None)
    dense = [l.units for l in g.layers if isinstance(l, keras.layers.Dense)]
    assert dense == [7 * 7 * 256, 7 * 7 * 128, 28 * 28]
    kinds = [type(l).__name__ for l in g.layers[1:]]
    assert kinds[:6] == ["Dense", "LeakyReLU", "BatchNormalization", "Dense", "LeakyReLU", "BatchNormalization"]


def test_scales():
    assert [n_scales(s) for s in (28, 32, 64, 12)] == [2, 3, 4, 1]
    with pytest.raises(ValueError):
        n_scales(30)


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_saved_models_load_in_safe_mode_and_save_deterministically(tmp_path, arch):
    from ganpipe.models import build_models

    model_cfg, _ = tiny_cfgs({"arch": arch, "conditional": True, "spectral_norm": True})
    g, d = build_models(model_cfg, 28, 1, num_classes=10)
    z = np.random.default_rng(0).standard_normal((4, model_cfg.latent_dim)).astype(np.float32)
    y = np.arange(4, dtype=np.int32)[:, None]
    for model, inputs in ((g, [z, y]), (d, [np.asarray(g([z, y], training=False)), y])):
        a, b = tmp_path / f"{model.name}-a.keras", tmp_path / f"{model.name}-b.keras"
        save_model(model, a)
        save_model(model, b)
        assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
        loaded = load_model(a)  # safe_mode=True inside
        np.testing.assert_allclose(loaded(inputs, training=False), model(inputs, training=False), rtol=1e-6, atol=1e-6)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_loading_a_broken_model_names_the_file(tmp_path):
    from ganpipe.errors import DataError

    bad = tmp_path / "generator.keras"
    bad.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(DataError, match="generator.keras: cannot load model"):
        load_model(bad)
    with pytest.raises(DataError, match="absent.keras: model file not found"):
        load_model(tmp_path / "absent.keras")
