"""Keras' backend for the stages: TensorFlow or JAX, chosen before Keras is imported (``train.backend``).

Keras reads ``KERAS_BACKEND`` once, when it is first imported, so a stage chooses its backend first
(:func:`use`) and imports Keras after. The train stage takes ``train.backend``; features, generate and
evaluate take ``KERAS_BACKEND`` when it is set, else :func:`default` (``stages/launch.py`` sets it for
them). ``auto`` (:func:`resolve`) is the backend that sees a GPU: JAX when TensorFlow is not installed
(the air-gapped GPU machines this targets have JAX with CUDA and no TensorFlow) or when JAX has a CUDA
build and TensorFlow has none; TensorFlow otherwise, which stays the CPU default.

On the JAX path TensorFlow is made unimportable (``sys.modules["tensorflow"] = None``), as it is on those
machines: a stray import fails here, in CI, as it would there, and Keras takes its TensorFlow-free paths
(``keras.utils.set_random_seed`` seeds TensorFlow too whenever it can import it).
"""

from __future__ import annotations

import importlib.util
import os
import sys

from .errors import GanpipeError

BACKENDS = ("tensorflow", "jax")  # the values train.backend takes besides auto (a test checks the schema)
# XLA's flag for bit-identical reruns on a GPU (scatter-adds and reductions in a fixed order); the CPU's
# XLA is deterministic without it.
XLA_DETERMINISTIC = "--xla_gpu_deterministic_ops=true"


def installed(name: str) -> bool:
    """Whether module ``name`` (dotted names too) can be imported, without importing it (a dotted name
    imports its parent packages)."""
    if sys.modules.get(name, False) is None:  # blocked by use("jax")
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a parent package is missing
        return False


def jax_has_cuda() -> bool:
    """A CUDA build of jaxlib is installed (its plugin package), without starting JAX."""
    return any(installed(p) for p in ("jax_cuda13_plugin", "jax_cuda12_plugin", "jax_plugins.xla_cuda12"))


def tensorflow_has_cuda() -> bool:
    """TensorFlow's CUDA libraries are installed (``make setup GPU=1``: NVIDIA's cuDNN wheel)."""
    return installed("nvidia.cudnn")


def default() -> str:
    """The backend of a stage whose params name none: ``KERAS_BACKEND`` when set, else ``auto``'s choice."""
    env = os.environ.get("KERAS_BACKEND", "").strip()
    return env if env in BACKENDS else resolve("auto")


def resolve(kind: str, strategy: str = "default") -> str:
    """``auto`` -> ``tensorflow`` or ``jax`` (see the module docstring); a tf.distribute strategy other than
    ``default`` keeps TensorFlow."""
    if kind != "auto":
        return kind
    if not installed("tensorflow"):
        return "jax"
    if strategy == "default" and installed("jax") and jax_has_cuda() and not tensorflow_has_cuda():
        return "jax"
    return "tensorflow"


def use(kind: str, deterministic: bool = True, key: str = "train.backend", strategy: str = "default") -> str:
    """Make ``kind`` (resolved) Keras' backend for this process; must run before Keras is imported (a
    later call, before Keras, replaces an earlier one). ``deterministic``: XLA's deterministic GPU ops on
    JAX (TensorFlow's op determinism is set later, by ``seeds.seed_keras``). Returns the backend."""
    name = resolve(kind, strategy)
    if name not in BACKENDS:
        raise GanpipeError(f"{key}: must be one of auto, {', '.join(BACKENDS)}, got {kind!r}")
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != name:
        raise GanpipeError(f"{key}: {name} was asked for, but Keras was already imported with the "
                           f"{keras.backend.backend()} backend in this process")
    if sys.modules.get("tensorflow", False) is None and name == "tensorflow":
        del sys.modules["tensorflow"]  # an earlier use("jax") blocked it: look for the real one
    if not installed(name):
        fix = "pip install jax (CPU) or jax[cuda13] (GPU)" if name == "jax" else "make setup"
        raise GanpipeError(f"{key}: {name} is not installed here ({fix}), or use train.backend: auto")
    os.environ["KERAS_BACKEND"] = name
    flags = os.environ.get("XLA_FLAGS", "").replace(XLA_DETERMINISTIC, "").split()
    if name == "jax":
        if "tensorflow" not in sys.modules:
            sys.modules["tensorflow"] = None  # see the module docstring
        flags += [XLA_DETERMINISTIC] if deterministic else []
    if flags:
        os.environ["XLA_FLAGS"] = " ".join(flags)
    else:
        os.environ.pop("XLA_FLAGS", None)
    return name


def tensorflow_modules() -> list[str]:
    """The TensorFlow modules loaded in this process (a blocked import's ``None`` entry is none)."""
    return sorted(k for k, v in sys.modules.items() if v is not None and (k == "tensorflow" or k.startswith("tensorflow.")))


def xla_deterministic() -> bool:
    """Whether XLA's deterministic GPU ops are on for this process (``use``'s ``deterministic``)."""
    return XLA_DETERMINISTIC in os.environ.get("XLA_FLAGS", "").split()
