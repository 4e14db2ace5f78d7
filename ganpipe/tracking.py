"""Quality during training: ``fd_clf`` and KID of the sampling generator every ``train.eval_every`` kimg,
against the ``features`` stage's real statistics (the evaluate stage's extractor and real set, fewer
generated samples: ``train.eval_samples``), and the host-side controller of adaptive augmentation."""

from __future__ import annotations

import hashlib
import os

import numpy as np

from . import metrics as M
from .errors import GanpipeError
from .features import ClassifierExtractor, load_real_stats
from .generation import generate
from .io import sha256_file

KID_SUBSETS = 10
ADA_INTERVAL = 4  # steps between adjustments of the augmentation probability (StyleGAN2-ADA's value)


class QualityTracker:
    """``tracker(generator)`` -> ``{"fd_clf": ..., "kid_clf": ...}`` (stable names: the curves of DVC's plots;
    the sample count is ``train.eval_samples``, in params). The classifier is loaded on
    first use (after the GAN is built, so that Keras' layer names of the saved GAN stay the same)."""

    def __init__(self, classifier_path: str | os.PathLike, real_stats_path: str | os.PathLike, n_samples: int,
                 seed: int, batch_size: int = 500):
        self.classifier_path, self.real_stats_path = classifier_path, real_stats_path
        self.n, self.seed, self.batch_size = n_samples, seed, batch_size
        self.fd_key, self.kid_key = "fd_clf", "kid_clf"
        self._extractor = self._stats = None

    def digest(self) -> str:
        """What the numbers depend on besides the generator: the classifier, the real statistics, n."""
        h = hashlib.sha256(f"{self.n}:{self.seed}".encode())
        for path in (self.classifier_path, self.real_stats_path):
            h.update(sha256_file(path).encode())
        return h.hexdigest()

    def _load(self) -> None:
        if self._stats is None:  # check() may have read them already
            self._stats = load_real_stats(self.real_stats_path, self.classifier_path)
        if self._extractor is None:
            self._extractor = ClassifierExtractor.open(self.classifier_path)

    def check(self) -> None:
        """Refuse, before training starts, a sample count the evaluations' FD and KID cannot use: more
        samples than feature dimensions (the rule of the evaluate stage) and room for two KID blocks."""
        # the statistics only: loading the classifier now would shift Keras' layer names of the GAN built next
        if self._stats is None:
            self._stats = load_real_stats(self.real_stats_path, self.classifier_path)
        dim, n_real = self._stats["features"].shape[1], len(self._stats["features"])
        need = max(dim + 1, 4)
        if self.n < need:
            raise GanpipeError(f"train.eval_samples: {self.n} samples are too few for FD on {dim}-dimensional "
                               f"features (need at least {need}; raise it or lower features.feature_dim)")
        size = M.kid_subset_size(1000, n_real, self.n)
        if 2 * size > min(n_real, self.n):
            raise GanpipeError(f"train.eval_samples: KID subsets of {size} do not fit twice in the {n_real} real "
                               f"features of {self.real_stats_path}")

    def __call__(self, generator) -> dict:
        self._load()
        x, _ = generate(generator, self.n, self.seed, self.batch_size, progress=False)
        self._extractor.check(x, "the generator's samples")
        feats, _ = self._extractor(x, self.batch_size)
        real = self._stats["features"]
        fd = M.frechet_distance(*M.feature_stats(feats), self._stats["mu"], self._stats["sigma"])
        kid = M.kid(real, feats, KID_SUBSETS, M.kid_subset_size(1000, len(real), len(feats)), self.seed)
        return {self.fd_key: fd, self.kid_key: kid.mean}


class AdaController:
    """StyleGAN2-ADA's controller of the augmentation probability p: every ``ADA_INTERVAL`` steps,
    r_t = E[sign(D(real))] over those steps; p moves by ``batch * interval / (ada_kimg * 1000)`` up when
    r_t is above ``target`` (D overfits), down when below, clipped to [0, 1]. Runs on the host between
    steps, from the steps' outputs: deterministic, and saved in checkpoints (``state``)."""

    def __init__(self, target: float, ada_kimg: float, batch: int, state: dict | None = None):
        self.target = target
        self.rate = batch * ADA_INTERVAL / (ada_kimg * 1000)
        state = state or {}
        self.p, self.acc, self.n = float(state.get("p", 0.0)), float(state.get("acc", 0.0)), int(state.get("n", 0))

    def update(self, rt: float) -> bool:
        """Record one step's r_t; True when p was adjusted."""
        self.acc += rt
        self.n += 1
        if self.n < ADA_INTERVAL:
            return False
        self.p = float(np.clip(self.p + np.sign(self.acc / self.n - self.target) * self.rate, 0.0, 1.0))
        self.acc, self.n = 0.0, 0
        return True

    def state(self) -> dict:
        return {"p": self.p, "acc": self.acc, "n": self.n}
