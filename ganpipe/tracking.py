"""Quality during training: ``fd_clf`` and KID of the sampling generator every ``train.eval_every`` kimg,
against the ``features`` stage's real statistics (the evaluate stage's extractor and real set, fewer
generated samples: ``train.eval_samples``), computed by the evaluate stage's own metric functions and
guards (``evaluation.quality``). KID's settings here are :data:`KID` (recorded in the checkpoint's
provenance), not ``evaluate``'s: a change of the final evaluation's KID must not retrain."""

from __future__ import annotations

import hashlib
import os

from types import SimpleNamespace

from . import metrics as M
from .errors import GanpipeError
from .evaluation import quality
from .features import ClassifierExtractor, load_real_stats
from .generation import generate
from .io import sha256_file

# The evaluations' KID: 10 subsets of up to 1,000 (fewer when the sample or real count is small:
# ``metrics.kid_subset_size``); keras.io's gan_ada tracks KID per epoch the same way.
KID = SimpleNamespace(kid_subsets=10, kid_subset_size=1000)


class QualityTracker:
    """``tracker(generator)`` -> ``{"fd_clf": ..., "kid_clf": ...}`` (stable names: the curves of DVC's plots;
    the sample count is ``train.eval_samples``, in params). ``kid``: KID's ``kid_subsets`` and
    ``kid_subset_size`` (:data:`KID`). The classifier is loaded on first use (after the GAN is built, so
    that Keras' layer names of the saved GAN stay the same)."""

    def __init__(self, classifier_path: str | os.PathLike, real_stats_path: str | os.PathLike, n_samples: int,
                 seed: int, kid=KID, batch_size: int = 500):
        self.classifier_path, self.real_stats_path = classifier_path, real_stats_path
        self.n, self.seed, self.kid, self.batch_size = n_samples, seed, kid, batch_size
        self.fd_key, self.kid_key = "fd_clf", "kid_clf"
        self._extractor = self._stats = None

    def digest(self) -> str:
        """What the numbers depend on besides the generator: the classifier, the real statistics, n, KID's settings."""
        h = hashlib.sha256(f"{self.n}:{self.seed}:{self.kid.kid_subsets}:{self.kid.kid_subset_size}".encode())
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
        samples than feature dimensions (the rule of ``evaluation.quality``, which would refuse it at the
        first evaluation) and room for two KID blocks."""
        # the statistics only: loading the classifier now would shift Keras' layer names of the GAN built next
        if self._stats is None:
            self._stats = load_real_stats(self.real_stats_path, self.classifier_path)
        dim, n_real = self._stats["features"].shape[1], len(self._stats["features"])
        need = max(dim + 1, 4)
        if self.n < need:
            raise GanpipeError(f"train.eval_samples: {self.n} samples are too few for FD on {dim}-dimensional "
                               f"features (need at least {need}; raise it or lower features.feature_dim)")
        size = M.kid_subset_size(self.kid.kid_subset_size, n_real, self.n)
        if 2 * size > min(n_real, self.n):
            raise GanpipeError(f"train.eval_samples: KID subsets of {size} do not fit twice in the {n_real} real "
                               f"features of {self.real_stats_path}")

    def __call__(self, generator) -> dict:
        self._load()
        x, _ = generate(generator, self.n, self.seed, self.batch_size, progress=False)
        self._extractor.check(x, "the generator's samples")
        feats, _ = self._extractor(x, self.batch_size)
        s = self._stats
        out = quality(feats, s["features"], s["mu"], s["sigma"], self.kid, self.seed, "clf", only=("fd", "kid"), ci=False)
        return {self.fd_key: out["fd_clf"], self.kid_key: out["kid_clf_mean"]}
