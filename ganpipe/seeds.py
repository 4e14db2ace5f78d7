"""Every random number generator of the pipeline, derived from the one ``base.seed``: this module lists them.

Each purpose is a named stream with its own ``SeedSequence`` spawn key, so that drawing more from one
(a longer epoch, more samples) never shifts another. A stream whose key is ``None`` is seeded with the
seed itself; the evaluation's draws (bootstrap resamples, KID subsets, SSIM pairs, the floor's subset of
the train split) share that stream on purpose: each draws from its own fresh generator, so the generated
and the real sets' pairwise SSIM use the same index pairs (common random numbers: the two sets are
independent, and the difference between them is measured with less noise).

The backend's own RNGs (weight initialisation, dropout, the classifier's shuffling) are seeded by
:func:`seed_keras`; a GAN step's draws come from the backend's stateless generators keyed by the seed, the
``train.step_noise`` key and the step (``ganpipe.gan_tf.step_noise``, ``ganpipe.gan_jax.step_noise``).
"""

from __future__ import annotations

import numpy as np

from . import backend

STREAMS: dict[str, tuple[int, ...] | None] = {
    "prepare.test_split": (1,),  # which images are held out, for sources without a split
    "prepare.max_train": (2,),  # the stratified subset kept by prepare.max_train
    "prepare.max_test": (3,),  # ... and by prepare.max_test
    "train.epoch_order": (10,),  # + (epoch,): the permutation of the train split
    "train.step_noise": (12,),  # the backend's stateless RNG keyed by (seed, 12, step): one step's latents,
    #                             fake labels, regulariser and augmentation draws, made on the device
    "train.sample_grid": (20,),  # the fixed latents of the per-epoch sample grid
    "generate": (30,),  # + (0,): sample latents; + (1,): interpolation end points
    "evaluate": None,  # bootstrap, FD-infinity subsets, KID subsets, SSIM pairs, floor and memorisation subsets
}


def rng(seed: int, stream: str, *key: int) -> np.random.Generator:
    """The generator of ``stream`` (one of :data:`STREAMS`), extended by ``key`` (an epoch, a purpose)."""
    base = STREAMS[stream]
    if base is None:
        if key:
            raise ValueError(f"stream {stream!r} takes no key")
        return np.random.default_rng(seed)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(*base, *key)))


def seed_keras(seed: int, deterministic: bool = True) -> None:
    """A fresh Keras session (layer-name counters restart, so saved configs are the same on every run),
    Python/NumPy/the backend seeded; on TensorFlow, its op determinism on or off (it is process-global; on
    JAX, determinism is XLA's flag, set before JAX starts: ``ganpipe.backend.use``)."""
    import keras  # here, not at the top: the prepare stage uses this module and never loads Keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        from tensorflow.python.framework import config as tf_config  # no public "disable" (TF 2.21)

        tf_config.enable_op_determinism() if deterministic else tf_config.disable_op_determinism()


def exact_inference(seed: int) -> dict:
    """:func:`seed_keras` with determinism, in full float32, for the stages whose numbers are compared
    across runs and machines (features, generate, evaluate): TensorFlow runs float32 matmuls and
    convolutions in TF32 (a 10-bit mantissa) by default on Ampere and later NVIDIA GPUs, and JAX does
    the same (its default matmul precision), so features and samples would differ from the CPU's in the
    third digit and between GPU models. Returns the numerics the evaluate stage records in its protocol,
    as the backend reports them."""
    import keras

    seed_keras(seed, deterministic=True)
    if keras.backend.backend() == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest")
        return {"backend": "jax", "matmul_precision": str(jax.config.jax_default_matmul_precision),
                "xla_deterministic_ops": backend.xla_deterministic()}
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    tf.config.experimental.enable_tensor_float_32_execution(False)
    return {"backend": "tensorflow", "tf32": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
            "op_determinism": bool(tf_config.is_op_determinism_enabled())}
