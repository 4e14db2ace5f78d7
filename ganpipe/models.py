"""Generator and discriminator builders (Keras 3 functional models of built-in layers only).

All three families work for any image size divisible by 4 and 1 or 3 channels:

- ``dcgan``: transposed-convolution generator with batch norm; strided-convolution discriminator;
- ``resnet``: residual generator (nearest upsampling) and residual discriminator (average pooling);
- ``mlp``: dense generator (Dense 7*7*256, LeakyReLU, BN, Dense 7*7*128, LeakyReLU, BN, Dense H*W*C tanh)
  against a small convolutional discriminator.

Conditional models take ``[z, label]`` (generator: label embedding concatenated to z) and ``[x, label]``
(discriminator: projection, Miyato & Koyama 2018). Only built-in layers are used, so saved models load
with ``keras.saving.load_model`` in safe mode.

Generators end in a float32 ``tanh`` (images in [-1, 1]); discriminators output float32 logits (B, 1).
"""

from __future__ import annotations

import keras
from keras import layers


def n_scales(size: int) -> int:
    """How many 2x up/down-samplings lead from ``size`` to a small base resolution (>= 4)."""
    if size % 4:
        raise ValueError(f"image size {size} is not divisible by 4")
    n = 0
    while size % 2 == 0 and size > 7 and n < 5:
        size //= 2
        n += 1
    return n


def _sn(layer, use: bool):
    return layers.SpectralNormalization(layer) if use else layer


def _gen_inputs(latent_dim: int, num_classes: int):
    z = keras.Input((latent_dim,), name="z")
    if not num_classes:
        return z, z
    label = keras.Input((1,), dtype="int32", name="label")
    emb = layers.Flatten()(layers.Embedding(num_classes, latent_dim, name="label_embedding")(label))
    return [z, label], layers.Concatenate()([z, emb])


def _gen_output(inputs, h, channels: int):
    """The convolutional generators' last layer: a 3x3 convolution to ``channels`` and a float32 tanh."""
    h = layers.Conv2D(channels, 3, padding="same")(h)
    out = layers.Activation("tanh", dtype="float32", name="image")(h)
    return keras.Model(inputs, out, name="generator")


def _disc_head(inputs, h, num_classes: int, spectral_norm: bool):
    """Flattened features -> logit, plus the projection term <embed(y), h> when conditional."""
    out = _sn(layers.Dense(1, name="logit"), spectral_norm)(h)
    if num_classes:
        emb = layers.Flatten()(layers.Embedding(num_classes, h.shape[-1], name="projection")(inputs[1]))
        out = layers.Add()([out, layers.Dot(axes=1)([h, emb])])
    return layers.Activation("linear", dtype="float32", name="d_out")(out)


def _disc_inputs(shape, num_classes: int):
    x = keras.Input(shape, name="image")
    if not num_classes:
        return x, x
    return [x, keras.Input((1,), dtype="int32", name="label")], x


# ------------------------------------------------------------------------------------------ dcgan


def dcgan_generator(size, channels, latent_dim, width, num_classes=0):
    n = n_scales(size)
    base = size >> n
    inputs, h = _gen_inputs(latent_dim, num_classes)
    ch = width * 2 ** (n - 1) if n else width
    h = layers.Dense(base * base * ch, use_bias=False)(h)
    h = layers.BatchNormalization()(h)
    h = layers.ReLU()(h)
    h = layers.Reshape((base, base, ch))(h)
    for i in range(n):
        ch = max(width * 2 ** (n - 2 - i), width // 2) if i < n - 1 else width
        h = layers.Conv2DTranspose(ch, 4, strides=2, padding="same", use_bias=False)(h)
        h = layers.BatchNormalization()(h)
        h = layers.ReLU()(h)
    return _gen_output(inputs, h, channels)


def dcgan_discriminator(size, channels, width, num_classes=0, spectral_norm=False):
    n = n_scales(size)
    inputs, h = _disc_inputs((size, size, channels), num_classes)
    for i in range(n):
        h = _sn(layers.Conv2D(width * 2**i, 4, strides=2, padding="same"), spectral_norm)(h)
        h = layers.LeakyReLU(0.2)(h)
    h = layers.Flatten()(h)
    return keras.Model(inputs, _disc_head(inputs, h, num_classes, spectral_norm), name="discriminator")


# ----------------------------------------------------------------------------------------- resnet


def _g_block(h, ch):
    skip = layers.Conv2D(ch, 1)(layers.UpSampling2D()(h))
    h = layers.ReLU()(layers.BatchNormalization()(h))
    h = layers.UpSampling2D()(h)
    h = layers.Conv2D(ch, 3, padding="same", use_bias=False)(h)
    h = layers.ReLU()(layers.BatchNormalization()(h))
    h = layers.Conv2D(ch, 3, padding="same")(h)
    return layers.Add()([h, skip])


def _d_block(h, ch, sn, first=False):
    skip = _sn(layers.Conv2D(ch, 1), sn)(h)
    skip = layers.AveragePooling2D(2)(skip)
    if not first:
        h = layers.LeakyReLU(0.2)(h)
    h = _sn(layers.Conv2D(ch, 3, padding="same"), sn)(h)
    h = layers.LeakyReLU(0.2)(h)
    h = _sn(layers.Conv2D(ch, 3, padding="same"), sn)(h)
    h = layers.AveragePooling2D(2)(h)
    return layers.Add()([h, skip])


def resnet_generator(size, channels, latent_dim, width, num_classes=0):
    n = n_scales(size)
    base = size >> n
    inputs, h = _gen_inputs(latent_dim, num_classes)
    ch = width * 2 ** (n - 1) if n else width
    h = layers.Dense(base * base * ch)(h)
    h = layers.Reshape((base, base, ch))(h)
    for i in range(n):
        ch = max(width * 2 ** (n - 2 - i), width) if i < n - 1 else width
        h = _g_block(h, ch)
    h = layers.ReLU()(layers.BatchNormalization()(h))
    return _gen_output(inputs, h, channels)


def resnet_discriminator(size, channels, width, num_classes=0, spectral_norm=True):
    n = n_scales(size)
    inputs, h = _disc_inputs((size, size, channels), num_classes)
    for i in range(n):
        h = _d_block(h, width * 2 ** min(i, 3), spectral_norm, first=i == 0)
    h = layers.LeakyReLU(0.2)(h)
    h = layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, _disc_head(inputs, h, num_classes, spectral_norm), name="discriminator")


# -------------------------------------------------------------------------------------------- mlp


def mlp_generator(size, channels, latent_dim, width=None, num_classes=0):
    inputs, h = _gen_inputs(latent_dim, num_classes)
    for units in (7 * 7 * 256, 7 * 7 * 128):
        h = layers.Dense(units)(h)
        h = layers.LeakyReLU(0.2)(h)
        h = layers.BatchNormalization()(h)
    h = layers.Dense(size * size * channels)(h)
    h = layers.Activation("tanh", dtype="float32")(h)
    out = layers.Reshape((size, size, channels), dtype="float32", name="image")(h)
    return keras.Model(inputs, out, name="generator")


def mlp_discriminator(size, channels, width, num_classes=0, spectral_norm=False):
    inputs, h = _disc_inputs((size, size, channels), num_classes)
    for ch in (width, width * 2):
        h = _sn(layers.Conv2D(ch, 4, strides=2, padding="same"), spectral_norm)(h)
        h = layers.LeakyReLU(0.2)(h)
    h = layers.Flatten()(h)
    return keras.Model(inputs, _disc_head(inputs, h, num_classes, spectral_norm), name="discriminator")


# The registry of architectures: its keys are the values ``model.arch`` accepts (a test checks the schema).
# Adding one: its two builders above (or in a module of their own) and an entry here.
BUILDERS = {
    "dcgan": (dcgan_generator, dcgan_discriminator),
    "resnet": (resnet_generator, resnet_discriminator),
    "mlp": (mlp_generator, mlp_discriminator),
}


def label_classes(cfg, num_classes: int) -> int:
    """The classes G and D are conditioned on: 0 for an unconditional model (``model.conditional: false``)."""
    return num_classes if cfg.conditional else 0


def build_models(cfg, size: int, channels: int, num_classes: int = 0):
    """(generator, discriminator) for a :class:`ganpipe.params.Model` config."""
    make_g, make_d = BUILDERS[cfg.arch]
    k = label_classes(cfg, num_classes)
    g = make_g(size, channels, cfg.latent_dim, cfg.g_width, num_classes=k)
    d = make_d(size, channels, cfg.d_width, num_classes=k, spectral_norm=cfg.spectral_norm)
    return g, d


def sync_batch_norm(models, on: bool = True) -> None:
    """Batch statistics over the global batch, not each replica's slice (a tf.distribute strategy's replicas). Turned off
    again before saving, so saved models load on any backend."""
    for model in models:
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = on
