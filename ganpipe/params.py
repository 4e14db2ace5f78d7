"""Typed, frozen params objects, one per ``params.yaml`` section.

Each section is a frozen dataclass registered with :func:`section`. Loading a section rejects
unknown keys, missing keys, wrong types and out-of-range values with a :class:`ParamsError`
that names the file and the key (``params.yaml: prepare.image_size: must be divisible by 4, got 30``).

Every key of a section must be present in ``params.yaml``: the same keys are declared for the
stage in ``dvc.yaml`` (``tests/test_dvc_yaml.py`` checks that), so DVC sees every change. (Over 300 lines:
the schema of every section, about half of the module, is the declaration of each key and its rule.)
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.tokens import AliasToken, AnchorToken

from .errors import ParamsError
from .sources import USAGE as SOURCE_USAGE
from .sources import parse_source

PARAMS_FILE = "params.yaml"

SECTIONS: dict[str, type] = {}


def section(name: str):
    """Register a dataclass as the schema of ``params.yaml`` section ``name``."""

    def wrap(cls):
        cls = dataclass(frozen=True)(cls)
        cls.SECTION = name
        SECTIONS[name] = cls
        return cls

    return wrap


def p(check: Callable[[Any], bool] | None = None, rule: str = ""):
    """A params field with an optional value check and the rule it states. No defaults: every key is read
    from ``params.yaml`` (its comments document each key), so a default could only drift from it."""
    return field(metadata={"check": check, "rule": rule})


# --------------------------------------------------------------------------------------------
# type checking of YAML values against annotations


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return tp.__name__


_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(value, tp):
    """Return ``value`` converted to ``tp`` or raise TypeError. YAML lists become tuples."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp) and type(value) in {type(a) for a in typing.get_args(tp)}:
            return value
        raise TypeError
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg)
            except TypeError:
                pass
        raise TypeError
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError
        (item,) = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return tuple(_coerce(v, item) for v in value)
    if tp is type(None):
        if value is None:
            return None
        raise TypeError
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if tp is float:
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads `4e-4` (no dot) as a string; DVC's -S writes 0.0004
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
            if not math.isfinite(value):
                raise TypeError
            return value
        raise TypeError
    if tp is str:
        if isinstance(value, str):
            return value
        raise TypeError
    raise TypeError(f"unsupported annotation {tp!r}")


def from_dict(cls, data: Any, where: str = PARAMS_FILE):
    """Build section ``cls`` from a mapping, validating every key. ``where`` names the source."""
    name = cls.SECTION
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: {name}: must be a mapping of keys to values, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(
            f"{where}: {name}.{str(unknown[0])[:80]}: unknown key (known keys: {', '.join(sorted(fields))})"
        )
    missing = sorted(set(fields) - set(data))
    if missing:
        raise ParamsError(f"{where}: {name}.{missing[0]}: missing key")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, f in fields.items():
        value = data[key]
        try:
            value = _coerce(value, hints[key])
        except TypeError:
            raise ParamsError(
                f"{where}: {name}.{key}: must be {_type_name(hints[key])}, got {short(value)}"
            ) from None
        check = f.metadata.get("check")
        if check is not None and value is not None and not check(value):
            raise ParamsError(f"{where}: {name}.{key}: {f.metadata['rule']}, got {short(value)}")
        values[key] = value
    obj = cls(**values)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        problem = validate()
        if problem:
            key, message = problem
            raise ParamsError(f"{where}: {name}.{key}: {message}")
    return obj


def short(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    r = repr(value)
    return r if len(r) <= limit else r[: limit - 5] + " ...)"


def load_yaml(data: bytes | str, where: str | os.PathLike):
    """Parse YAML as DVC does (YAML 1.2 with ruamel: ``4e-4`` is 0.0004, ``off`` the string 'off'), so a
    stage sees the values ``dvc params diff`` shows. Anchors and aliases are refused (a few bytes of aliases
    can expand to millions of values), and so are duplicate keys; every error is one line naming ``where``."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ParamsError(f"{where}: not UTF-8 text (byte {e.start})") from None
    safe = YAML(typ="safe", pure=True)  # ruamel's safe loader: plain data only, never objects
    try:
        for token in safe.scan(data):
            if isinstance(token, (AliasToken, AnchorToken)):
                line = token.start_mark.line + 1
                raise ParamsError(f"{where}: line {line}: YAML anchors and aliases are not accepted in params")
        return safe.load(data)
    except YAMLError as e:
        first = " ".join(str(e).split())[:200]
        raise ParamsError(f"{where}: not valid YAML ({first})") from None


def read_params_file(path: str | os.PathLike = PARAMS_FILE) -> dict:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ParamsError(f"{path}: cannot read params file ({e.strerror})") from None
    data = load_yaml(raw, path)
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: must be a mapping of sections")
    return data


def load(name: str, path: str | os.PathLike = PARAMS_FILE):
    """Load and validate section ``name`` of ``path``."""
    if name not in SECTIONS:
        raise KeyError(f"no params section {name!r} is defined (known: {sorted(SECTIONS)})")
    data = read_params_file(path)
    if name not in data:
        raise ParamsError(f"{path}: {name}: missing section")
    return from_dict(SECTIONS[name], data[name], where=str(path))


def keys(name: str) -> list[str]:
    """The dotted keys of section ``name`` (what a stage that loads it must declare)."""
    return [f"{name}.{f.name}" for f in dataclasses.fields(SECTIONS[name])]


def to_dict(obj) -> dict:
    return {f.name: (list(v) if isinstance(v := getattr(obj, f.name), tuple) else v) for f in dataclasses.fields(obj)}


# --------------------------------------------------------------------------------------------
# the sections


@section("base")
class Base:
    seed: int = p(lambda v: 0 <= v < 2**31, "must be in [0, 2**31)")


def _valid_source(v: str) -> bool:
    return parse_source(v) is not None


@section("prepare")
class Prepare:
    source: str = p(_valid_source, f"must be {SOURCE_USAGE}")
    image_size: Literal["auto"] | int = p(lambda v: v == "auto" or (8 <= v <= 512 and v % 4 == 0),
                                          "must be 'auto' or a multiple of 4 in [8, 512]")
    channels: Literal["auto"] | int = p(lambda v: v == "auto" or v in (1, 3), "must be 'auto', 1 or 3")
    test_fraction: float = p(lambda v: 0.0 < v < 1.0, "must be in (0, 1)")
    max_train: int | None = p(lambda v: v >= 1, "must be >= 1 or null")
    max_test: int | None = p(lambda v: v >= 1, "must be >= 1 or null")
    classes: tuple[int, ...] | None = p(lambda v: len(v) > 0 and len(set(v)) == len(v) and min(v) >= 0,
                                        "must be a non-empty list of distinct labels >= 0, or null")
    on_bad_image: Literal["fail", "skip"] = p()


@section("model")
class Model:
    arch: Literal["dcgan", "resnet", "mlp"] = p()
    loss: Literal["ns", "hinge", "wgan-gp"] = p()
    latent_dim: int = p(lambda v: 1 <= v <= 4096, "must be in [1, 4096]")
    g_width: int = p(lambda v: 4 <= v <= 2048, "must be in [4, 2048]")
    d_width: int = p(lambda v: 4 <= v <= 2048, "must be in [4, 2048]")
    spectral_norm: Literal["auto"] | bool = p()
    conditional: bool = p()
    gp_weight: float = p(lambda v: v >= 0, "must be >= 0")
    r1_gamma: float = p(lambda v: 0 <= v <= 1e4, "must be in [0, 1e4]")
    r2_gamma: float = p(lambda v: 0 <= v <= 1e4, "must be in [0, 1e4]")
    reg_interval: int = p(lambda v: 1 <= v <= 1000, "must be in [1, 1000]")
    critic_steps: int = p(lambda v: 1 <= v <= 20, "must be in [1, 20]")


AUGMENT_OPS = ("translation", "cutout", "brightness", "saturation", "contrast")


@section("train")
class Train:
    batch_size: int = p(lambda v: 1 <= v <= 65536, "must be in [1, 65536]")
    epochs: int | None = p(lambda v: 1 <= v <= 100000, "must be in [1, 100000] or null")
    kimg: float | None = p(lambda v: 0 < v <= 1e7, "must be in (0, 1e7] or null")
    max_steps: int | None = p(lambda v: v >= 1, "must be >= 1 or null")
    g_lr: Literal["auto"] | float = p(lambda v: v == "auto" or 0 < v < 1, "must be 'auto' or in (0, 1)")
    d_lr: Literal["auto"] | float = p(lambda v: v == "auto" or 0 < v < 1, "must be 'auto' or in (0, 1)")
    beta1: float = p(lambda v: 0 <= v < 1, "must be in [0, 1)")
    beta2: float = p(lambda v: 0 <= v < 1, "must be in [0, 1)")
    lr_schedule: Literal["constant", "linear", "cosine"] = p()
    ema_decay: float = p(lambda v: 0 <= v < 1, "must be in [0, 1)")
    ema_rampup: float | None = p(lambda v: 0 < v <= 1, "must be in (0, 1] or null")
    augment: tuple[Literal[AUGMENT_OPS], ...] = p(lambda v: len(set(v)) == len(v), "must list each augmentation once")
    augment_p: Literal["adaptive"] | float = p(lambda v: v == "adaptive" or 0 <= v <= 1,
                                               "must be 'adaptive' or a probability in [0, 1]")
    ada_target: float = p(lambda v: 0 < v < 1, "must be in (0, 1)")
    ada_kimg: float = p(lambda v: 0 < v <= 1e6, "must be in (0, 1e6]")
    checkpoint_every: int = p(lambda v: v >= 1, "must be >= 1")
    eval_every: float = p(lambda v: v >= 0, "must be >= 0")
    eval_samples: int = p(lambda v: 2 <= v <= 1000000, "must be in [2, 1000000]")
    keep: Literal["last", "best"] = p()
    backend: Literal["auto", "tensorflow", "jax"] = p()  # Keras' backend for the train stage (ganpipe.backend)
    strategy: Literal["default", "mirrored", "multi_worker"] = p()
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = p()
    jit_compile: bool = p()
    steps_per_execution: int = p(lambda v: 1 <= v <= 10000, "must be in [1, 10000]")
    deterministic: bool = p()
    sample_grid: int = p(lambda v: 1 <= v <= 32, "must be in [1, 32]")

    def validate(self):
        if (self.epochs is None) == (self.kimg is None):
            return "epochs", "set exactly one of train.epochs and train.kimg (the other null)"
        if self.jit_compile and self.deterministic:
            # Keras turns XLA off (with a warning) under TensorFlow's op determinism: say so instead.
            return "jit_compile", "XLA needs train.deterministic: false (Keras runs without XLA under op determinism)"
        if self.backend == "jax" and self.strategy != "default":
            return "strategy", f"{self.strategy} is a tf.distribute strategy; train.backend jax trains on one device"
        if self.backend == "jax" and self.precision == "mixed_float16":
            return "precision", "mixed_float16 needs TensorFlow's loss scaling; use mixed_bfloat16 or float32 under jax"
        if self.keep == "best" and self.eval_every == 0:
            return "keep", "best needs quality evaluations during training (train.eval_every > 0)"
        return None


# ``auto`` params: (value for RGB images, value for grey ones). RGB: Adam at 1e-3 with spectral normalisation in D
# (on 1,000 RGB shapes a quarter of the DCGAN values' nFD at 300 kimg: they collapse to a few colour modes);
# grey: DCGAN's 2e-4 without it (about half the FD of the RGB values on Fashion-MNIST at 1,000 and 60,000
# images). docs/training.md, "auto".
AUTO = {("model", "spectral_norm"): (True, False), ("train", "g_lr"): (1e-3, 2e-4), ("train", "d_lr"): (1e-3, 2e-4)}


def unresolved(model_cfg: Model, train_cfg: Train) -> list[str]:
    """The :data:`AUTO` keys still ``auto`` in these configs."""
    cfgs = {"model": model_cfg, "train": train_cfg}
    return [f"{section}.{key}" for section, key in AUTO if getattr(cfgs[section], key) == "auto"]


def resolve_auto(model_cfg: Model, train_cfg: Train, channels: int) -> tuple[Model, Train, dict]:
    """The configs with every ``auto`` of :data:`AUTO` replaced by its value for images of ``channels``
    channels (3: RGB, 1: grey), and those values by ``section.key`` (empty when nothing was ``auto``)."""
    cfgs = {"model": model_cfg, "train": train_cfg}
    resolved = {}
    for (section, key), (rgb, grey) in AUTO.items():
        if getattr(cfgs[section], key) == "auto":
            value = rgb if channels == 3 else grey
            cfgs[section] = dataclasses.replace(cfgs[section], **{key: value})
            resolved[f"{section}.{key}"] = value
    return cfgs["model"], cfgs["train"], resolved


@section("features")
class Features:
    epochs: int = p(lambda v: 1 <= v <= 1000, "must be in [1, 1000]")
    batch_size: int = p(lambda v: 1 <= v <= 65536, "must be in [1, 65536]")
    width: int = p(lambda v: 4 <= v <= 1024, "must be in [4, 1024]")
    feature_dim: int = p(lambda v: 2 <= v <= 4096, "must be in [2, 4096]")
    lr: float = p(lambda v: 0 < v < 1, "must be in (0, 1)")
    reference: Literal["auto", "test", "all"] = p()


@section("generate")
class Generate:
    n_samples: int = p(lambda v: v >= 1, "must be >= 1")
    batch_size: int = p(lambda v: 1 <= v <= 65536, "must be in [1, 65536]")
    grid: int = p(lambda v: 1 <= v <= 32, "must be in [1, 32]")
    interpolation_steps: int = p(lambda v: 2 <= v <= 64, "must be in [2, 64]")


@section("evaluate")
class Evaluate:
    extractor: Literal["classifier", "inception"] = p()
    batch_size: int = p(lambda v: 1 <= v <= 65536, "must be in [1, 65536]")
    kid_subsets: int = p(lambda v: 2 <= v <= 10000, "must be in [2, 10000]")
    kid_subset_size: int = p(lambda v: 2 <= v <= 100000, "must be in [2, 100000]")
    pr_k: int = p(lambda v: 1 <= v <= 100, "must be in [1, 100]")
    dc_k: int = p(lambda v: 1 <= v <= 100, "must be in [1, 100]")
    ssim_pairs: int = p(lambda v: 1 <= v <= 1000000, "must be in [1, 1000000]")
    memorisation_samples: int = p(lambda v: 1 <= v <= 1000000, "must be in [1, 1000000]")
    bootstrap: int = p(lambda v: 2 <= v <= 10000, "must be in [2, 10000]")
