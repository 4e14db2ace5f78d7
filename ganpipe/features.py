"""Feature extractors for the metrics: our small CNN classifier (default) or Keras' InceptionV3.

The classifier is trained on the prepared train split by the ``features`` stage. Its ``features`` layer
(``features.feature_dim`` units, ReLU) gives the embedding behind ``fd_clf``/``kid_clf``/precision/recall,
its softmax the class probabilities behind the classifier score. Nothing is downloaded: InceptionV3 is
used only when its ImageNet weights are already in Keras' cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from . import seeds
from .errors import DataError, GanpipeError
from .io import load_npz, save_npz, sha256_file
from .metrics import feature_stats
from .splits import load_split
from .saving import load_model

INCEPTION_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


def build_classifier(size: int, channels: int, num_classes: int, width: int, feature_dim: int,
                     name: str = "classifier"):
    x = inp = keras.Input((size, size, channels), name="image")
    for ch in (width, width * 2):
        x = layers.Conv2D(ch, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(ch, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    feats = layers.Dense(feature_dim, activation="relu", name="features")(x)
    x = layers.Dropout(0.3)(feats)
    out = layers.Dense(num_classes, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inp, out, name=name)


def to_unit(x: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1] (the classifier's input scale)."""
    return np.asarray(x, np.float32) / 255.0


# Without labels (or with one class) the extractor is trained on a task that needs none: which of the four
# rotations (0, 90, 180, 270 degrees) an image shows (Gidaris et al. 2018, "RotNet"). Its features still
# separate what images look like; its class probabilities mean nothing for samples, so no classifier score.
ROTATION = "rotation"


def rotations(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each (square) image in its four rotations, and the rotation index as the label."""
    return (np.concatenate([np.rot90(x, k, axes=(1, 2)) for k in range(4)]),
            np.repeat(np.arange(4, dtype=np.int64), len(x)))


def classifier_task(y, num_classes: int) -> str:
    return "classes" if y is not None and num_classes >= 2 else ROTATION


def train_classifier(x, y, x_test, y_test, num_classes: int, cfg, seed: int, progress: bool = True):
    """Train the classifier (on the labels, or on rotations when there are fewer than 2 classes); return
    it and its test accuracy."""
    seeds.seed_keras(seed)
    name = "classifier"
    if classifier_task(y, num_classes) == ROTATION:
        (x, y), (x_test, y_test), num_classes, name = rotations(x), rotations(x_test), 4, f"classifier_{ROTATION}"
    model = build_classifier(x.shape[1], x.shape[3], num_classes, cfg.width, cfg.feature_dim, name)
    model.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(to_unit(x), y, batch_size=cfg.batch_size, epochs=cfg.epochs, shuffle=True,
              verbose=2 if progress else 0)
    _, acc = model.evaluate(to_unit(x_test), y_test, batch_size=500, verbose=0)
    return model, float(acc)


def _batched(fn, images: np.ndarray, batch_size: int) -> list:
    return [fn(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]


class ClassifierExtractor:
    """Features (the ``features`` layer) and class probabilities from the ``features`` stage's classifier;
    its real statistics are that stage's ``real_stats.npz``. ``task``: ``classes``, or ``rotation`` when
    it was trained without labels (its probabilities are then not the data's classes: none are returned)."""

    kind, tag = "classifier", "clf"

    def __init__(self, model, path: str | os.PathLike | None = None):
        self.path = path
        self.task = ROTATION if model.name.endswith(ROTATION) else "classes"
        self.input_shape = tuple(model.input_shape[1:])
        self.net = keras.Model(model.input, [model.get_layer("features").output, model.output])

    @classmethod
    def open(cls, classifier_path: str | os.PathLike) -> "ClassifierExtractor":
        return cls(load_model(classifier_path), classifier_path)

    def real_set(self, stats_path, test_path, batch_size: int) -> "RealSet":
        stats = load_real_stats(stats_path, self.path)
        return RealSet(stats["features"].astype(np.float64), stats["mu"], stats["sigma"], self.input_shape,
                       str(stats["split"]) if "split" in stats else "test")

    def check(self, images: np.ndarray, what: str) -> None:
        if tuple(images.shape[1:]) != self.input_shape:
            raise DataError(f"{self.path}: the classifier takes images of shape {self.input_shape}, "
                            f"but {what} has {tuple(images.shape[1:])}")

    def __call__(self, images: np.ndarray, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray | None]:
        out = _batched(lambda b: [np.asarray(a, np.float64) for a in self.net(to_unit(b), training=False)],
                       images, batch_size)
        feats, probs = np.concatenate([f for f, _ in out]), np.concatenate([p for _, p in out])
        return feats, (probs if self.task == "classes" else None)


class InceptionExtractor:
    """InceptionV3's 2048 pooled features (ImageNet weights from Keras' cache, never downloaded); its real
    statistics are computed from the prepared test split. No class probabilities."""

    kind, tag, task, input_shape = "inception", "inc", None, None

    def __init__(self, model, path: str | os.PathLike | None = None):
        self.net, self.path = model, path

    @classmethod
    def open(cls, classifier_path=None) -> "InceptionExtractor":
        cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / INCEPTION_WEIGHTS
        if not cache.is_file():
            raise GanpipeError(
                f"evaluate.extractor: inception needs the ImageNet weights at {cache}, which are absent and are "
                f"never downloaded here; copy the file there (from a machine where keras.applications.InceptionV3"
                f"(weights='imagenet', include_top=False) has run), or use extractor: classifier")
        model = keras.applications.InceptionV3(include_top=False, weights=str(cache), pooling="avg",
                                               input_shape=(299, 299, 3))
        return cls(model, cache)

    def real_set(self, stats_path, test_path, batch_size: int) -> "RealSet":
        test_x = load_split(test_path).x
        feats, _ = self(test_x, batch_size)
        return RealSet(feats, *feature_stats(feats, "real features"), tuple(test_x.shape[1:]), "test")

    def check(self, images: np.ndarray, what: str) -> None:
        """Any size and 1 or 3 channels: images are resized to 299x299 RGB."""

    def __call__(self, images: np.ndarray, batch_size: int = 500) -> tuple[np.ndarray, None]:
        feats = _batched(lambda b: np.asarray(self.net(_inception_input(b), training=False), np.float64),
                         images, batch_size)
        return np.concatenate(feats), None


# The registry of extractors: its keys are the values ``evaluate.extractor`` accepts (a test checks the schema).
EXTRACTORS = {cls.kind: cls for cls in (ClassifierExtractor, InceptionExtractor)}


@dataclass
class RealSet:
    """The real side of every comparison: features of the real test images, their mean and covariance,
    and the image shape samples must have (resized to it when scored from a folder)."""

    features: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    image_shape: tuple
    split: str = "test"  # which real images: test, or all (train + test)


def open_extractor(kind: str, classifier_path, stats_path, test_path, batch_size: int):
    """The extractor ``evaluate.extractor`` names and the real set it compares with."""
    extractor = EXTRACTORS[kind].open(classifier_path)
    return extractor, extractor.real_set(stats_path, test_path, batch_size)


def _inception_input(batch: np.ndarray):
    """uint8 NHWC -> 299x299 RGB in [-1, 1] with anti-aliased resize (grey replicated to RGB)."""
    x = ops.convert_to_tensor(batch, "float32")
    if x.shape[-1] == 1:
        x = ops.repeat(x, 3, axis=-1)
    x = ops.image.resize(x, (299, 299), interpolation="bilinear", antialias=True)
    return x / 127.5 - 1.0


AUTO_TEST_PER_DIM = 10  # reference: auto takes the test split alone when it has this many images per dimension


def reference_split(reference: str, n_test: int, feature_dim: int) -> str:
    """``features.reference`` resolved: ``test`` or ``all`` (train + test, StyleGAN2-ADA's ``_full``
    protocol). ``auto``: the held-out test split when it holds at least ``AUTO_TEST_PER_DIM x feature_dim``
    images (Fashion-MNIST's 10,000 at 128 dims), else every image, so a folder of a few hundred still
    gives FD, whose real covariance needs many more images than dimensions."""
    if reference != "auto":
        return reference
    return "test" if n_test >= AUTO_TEST_PER_DIM * feature_dim else "all"


class ConcatImages:
    """Two image arrays (either may be memory-mapped) read as one, batch by batch, never copied whole."""

    def __init__(self, *parts):
        self.parts = parts
        self.shape = (sum(len(p) for p in parts), *parts[0].shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, sl: slice) -> np.ndarray:
        start, stop, _ = sl.indices(len(self))
        out, offset = [], 0
        for part in self.parts:
            lo, hi = max(start - offset, 0), min(stop - offset, len(part))
            if lo < hi:
                out.append(np.asarray(part[lo:hi]))
            offset += len(part)
        return np.concatenate(out) if out else np.zeros((0, *self.shape[1:]), np.uint8)


def reference_images(split: str, train_x, test_x):
    """The real images of the reference set ``split`` (``test`` or ``all``)."""
    return test_x if split == "test" else ConcatImages(train_x, test_x)


def check_real_count(n: int, feature_dim: int, what: str = "the real reference set") -> None:
    """FD and KID need more real images than feature dimensions (else the covariance is singular and FD
    is confident and meaningless): refuse, naming the keys that fix it."""
    if n <= feature_dim:
        raise DataError(f"{what} has {n} images, not more than features.feature_dim={feature_dim}: the real "
                        f"feature covariance would be singular; lower features.feature_dim (below {n}), use "
                        f"features.reference: all, or bring more images")


def save_real_stats(path: str | os.PathLike, features: np.ndarray, classifier_path: str | os.PathLike,
                    split: str = "test") -> None:
    mu, sigma = feature_stats(features)
    # ``split`` is stored only for ``all``: a test-split file keeps the bytes it had before the option existed
    extra = {} if split == "test" else {"split": np.asarray(split)}
    save_npz(path, mu=mu, sigma=sigma, features=features.astype(np.float32), n=np.int64(len(features)),
             classifier_sha256=np.asarray(sha256_file(classifier_path)), **extra)


def load_real_stats(path: str | os.PathLike, classifier_path: str | os.PathLike) -> dict:
    path = Path(path)
    arrays = load_npz(path)
    need = {"mu", "sigma", "features", "classifier_sha256"}
    if not need <= set(arrays):
        raise DataError(f"{path}: not a real-statistics file (missing {sorted(need - set(arrays))})")
    if arrays["classifier_sha256"].item() != sha256_file(classifier_path):
        raise DataError(f"{path}: was computed with another classifier than {classifier_path}; rerun the features stage")
    d = arrays["features"].shape[1]
    if arrays["mu"].shape != (d,) or arrays["sigma"].shape != (d, d):
        raise DataError(f"{path}: inconsistent shapes mu {arrays['mu'].shape}, sigma {arrays['sigma'].shape}")
    return arrays
