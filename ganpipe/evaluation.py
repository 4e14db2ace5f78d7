"""The evaluate stage's logic: every metric, its CIs and reference points, and the protocol beside them.

Names are stable, ``<metric>_<extractor>`` with extractor ``clf`` (our classifier) or ``inc`` (InceptionV3):
``fd_clf``, ``fd_inf_clf``, ``kid_clf_mean``, ``precision_clf``, ... DVC matches metrics by key, so a run
with another sample count shows a change of ``fd_clf``, not one metric removed and another added. What a
number depends on besides the generator (the generated and real counts, real split, extractor hash, KID
subset size actually used, the k of precision/recall) is in ``protocol``, which ``ganpipe report`` checks
before it compares two runs' metric.
Reference points are measured with the same protocol: ``floor`` = real train images vs the real test set;
``ceiling`` = an untrained generator of the same architecture vs the real test set.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import metrics as M
from . import seeds
from .errors import DataError
from .io import load_npz, sha256_file


def check_samples(x, path) -> None:
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        raise DataError(f"{path}: samples 'x' must be uint8 images in [0, 255], got dtype {getattr(x, 'dtype', None)}")
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(f"{path}: samples 'x' must have shape (N, H, W, C) with C in 1, 3; got {x.shape}")


def load_samples(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    arrays = load_npz(path)
    if "x" not in arrays:
        raise DataError(f"{path}: missing array 'x'")
    check_samples(arrays["x"], path)
    return arrays["x"], arrays.get("y")


@dataclass(frozen=True)
class Compared:
    """One generated feature set against the real one: what every metric of :data:`METRICS` reads."""

    gen: np.ndarray
    real: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    cfg: object  # params.Evaluate
    seed: int
    tag: str  # clf | inc
    ci: bool = True  # the intervals too (the evaluations during training need only the values)


def _with_ci(name: str, value: float, lo: float, hi: float) -> dict:
    return {name: value, f"{name}_ci95_lo": lo, f"{name}_ci95_hi": hi}


def _fd(c: Compared) -> dict:
    fd = M.frechet_distance(*M.feature_stats(c.gen, "generated features"), c.mu, c.sigma)
    if not c.ci:
        return {f"fd_{c.tag}": fd}
    lo, hi = M.bootstrap_ci(lambda i: M.frechet_distance(*M.feature_stats(c.gen[i]), c.mu, c.sigma),
                            len(c.gen), c.cfg.bootstrap, c.seed)
    return _with_ci(f"fd_{c.tag}", fd, lo, hi)


def _fd_inf(c: Compared) -> dict:
    if M.fd_infinity_min_fraction(len(c.gen), len(c.real), c.gen.shape[1]) is None:
        return {}  # too few samples to extrapolate; the protocol says so
    v = M.fd_infinity(c.gen, c.real, reps=c.cfg.bootstrap, seed=c.seed)
    return _with_ci(f"fd_inf_{c.tag}", v.value, v.ci95_lo, v.ci95_hi)


def _kid(c: Compared) -> dict:
    size = M.kid_subset_size(c.cfg.kid_subset_size, len(c.real), len(c.gen))
    k = M.kid(c.real, c.gen, c.cfg.kid_subsets, size, c.seed)
    name = f"kid_{c.tag}"
    return {f"{name}_mean": k.mean, f"{name}_std": k.std, f"{name}_mean_ci95_lo": k.ci95_lo,
            f"{name}_mean_ci95_hi": k.ci95_hi}


def _precision_recall(c: Compared) -> dict:
    prec, rec = M.precision_recall(c.real, c.gen, c.cfg.pr_k)
    return {f"precision_{c.tag}": prec, f"recall_{c.tag}": rec}


def _density_coverage(c: Compared) -> dict:
    dens, cov = M.density_coverage(c.real, c.gen, c.cfg.dc_k)
    return {f"density_{c.tag}": dens, f"coverage_{c.tag}": cov}


@dataclass(frozen=True)
class Metric:
    """A registry entry: the function of a :class:`Compared` that gives the metric's named numbers, the
    prefixes of those names, and the protocol entries that move their expected value (``ganpipe report``
    compares two runs' metric only when these agree)."""

    compute: Callable[[Compared], dict]
    prefixes: tuple[str, ...]
    protocol: tuple[str, ...]


EXTRACTOR_PROTOCOL = ("extractor", "extractor_task", "extractor_sha256", "feature_dim", "real_split")
COUNTS_PROTOCOL = EXTRACTOR_PROTOCOL + ("n_generated", "n_real")
# The metrics of one generated feature set against the real one. FD-infinity and KID are free of the sample
# counts' bias (the counts still set their intervals, which say so). Adding a metric: its function in
# ganpipe/metrics.py, an entry here, a test.
METRICS: dict[str, Metric] = {
    "fd": Metric(_fd, ("fd_",), COUNTS_PROTOCOL),
    "fd_inf": Metric(_fd_inf, ("fd_inf_",), EXTRACTOR_PROTOCOL),
    "kid": Metric(_kid, ("kid_",), EXTRACTOR_PROTOCOL),
    "precision_recall": Metric(_precision_recall, ("precision_", "recall_"), COUNTS_PROTOCOL + ("pr_k",)),
    "density_coverage": Metric(_density_coverage, ("density_", "coverage_"), COUNTS_PROTOCOL + ("dc_k",)),
}
# name prefix -> protocol entries, for every metric of metrics/eval.json (the longest matching prefix wins)
PROTOCOL_KEYS = {prefix: m.protocol for m in METRICS.values() for prefix in m.prefixes} | {
    "clf_": ("extractor_sha256", "n_generated"), "ssim_": ("ssim",)}


def quality(gen_feats, real_feats, real_mu, real_sigma, cfg, seed: int, tag: str, only: tuple[str, ...] | None = None,
            ci: bool = True) -> dict:
    """Every metric of :data:`METRICS` (or those named in ``only``) for one generated feature set against
    the real set; ``ci``: with their intervals. The one path to these numbers: the evaluate stage, its
    reference points and the evaluations during training (``ganpipe.tracking``) all come through here."""
    for f, what, fix in ((gen_feats, "generated samples", "raise generate.n_samples"),
                         (real_feats, "real reference images", "use features.reference: all, bring more images")):
        if len(f) <= f.shape[1]:
            raise DataError(f"{len(f)} {what} are too few for {f.shape[1]}-dimensional features (need more "
                            f"than {f.shape[1]}; {fix} or lower features.feature_dim)")
    gen_feats = M.finite(gen_feats, "generated features")
    c = Compared(gen_feats, real_feats, real_mu, real_sigma, cfg, seed, tag, ci)
    out = {}
    for name, metric in METRICS.items():
        if only is None or name in only:
            out |= metric.compute(c)
    return out


def protocol(extractor, n_generated: int, real_feats: np.ndarray, cfg, real_split: str = "test",
             numerics: dict | None = None) -> dict:
    """What every number depends on besides the generator (``ganpipe report`` compares these per metric);
    ``numerics``: how TensorFlow computed them (``seeds.exact_inference``)."""
    n_real = int(len(real_feats))
    frac = M.fd_infinity_min_fraction(n_generated, n_real, real_feats.shape[1])
    out = {
        "extractor": extractor.kind, "extractor_task": extractor.task,
        "extractor_sha256": sha256_file(extractor.path) if extractor.path else None,
        "feature_dim": int(real_feats.shape[1]), "n_generated": int(n_generated), "real_split": real_split,
        "n_real": n_real, "kid_subsets": cfg.kid_subsets, "kid_subset_size_requested": cfg.kid_subset_size,
        "kid_subset_size": M.kid_subset_size(cfg.kid_subset_size, n_real, n_generated),
        "pr_k": cfg.pr_k, "dc_k": cfg.dc_k,
        "fd_inf_counts": (list(M.fd_infinity_counts(n_generated, frac)) if frac else
                          "not computed: need at least 4 x feature_dim samples on each side"),
        "ssim": "scikit-image gaussian (sigma 1.5), data_range 1; ssim_nn_train_gen: SSIM to the training image "
                "nearest in pixel L2",
        "ssim_pairs": cfg.ssim_pairs, "memorisation_samples": cfg.memorisation_samples,
        "ci": f"estimate +- 1.96 SE, SE from {cfg.bootstrap} bootstrap resamples of the generated set; KID: "
              f"+- t(m-1) SE from m disjoint blocks of kid_subset_size",
    }
    out |= numerics or {}
    missing = sorted({k for keys in PROTOCOL_KEYS.values() for k in keys} - set(out))
    if missing:  # the registry declares what a metric depends on; the protocol must record each of them
        raise RuntimeError(f"evaluation.protocol records no {missing}, which PROTOCOL_KEYS declares")
    return out


def ssim_block(gen, gen_y, real, real_y, train, cfg, seed: int) -> dict:
    """Diversity (pairwise SSIM within a set, lower = more diverse) and memorisation (SSIM to nearest train)."""
    g, r = gen.astype(np.float64) / 255.0, real.astype(np.float64) / 255.0
    out = {}
    for name, imgs in (("gen", g), ("real", r)):
        vals = M.pairwise_ssim(imgs, cfg.ssim_pairs, seed)
        lo, hi = M.bootstrap_ci(lambda i: vals[i].mean(), len(vals), cfg.bootstrap, seed)
        out |= {f"ssim_pairwise_{name}": float(vals.mean()), f"ssim_pairwise_{name}_ci95_lo": lo,
                f"ssim_pairwise_{name}_ci95_hi": hi}
    for name, imgs, labels in (("gen", g, gen_y), ("real", r, real_y)):
        if labels is None:
            continue
        per = {}
        for c in np.unique(labels):
            sel = imgs[labels.ravel() == c]
            if len(sel) >= 2:
                per[str(int(c))] = float(M.pairwise_ssim(sel, max(cfg.ssim_pairs // 10, 10), seed).mean())
        out[f"ssim_pairwise_{name}_per_class"] = per
    m = min(cfg.memorisation_samples, len(gen))
    idx = seeds.rng(seed, "evaluate").choice(len(gen), m, replace=False)
    nn = M.nearest_neighbours(gen[idx], train)
    vals = M.ssim(g[idx], train[nn].astype(np.float64) / 255.0)
    lo, hi = M.bootstrap_ci(lambda i: vals[i].mean(), len(vals), cfg.bootstrap, seed)
    out |= {"ssim_nn_train_gen": float(vals.mean()), "ssim_nn_train_gen_ci95_lo": lo,
            "ssim_nn_train_gen_ci95_hi": hi, "ssim_nn_train_gen_max": float(vals.max()),
            "ssim_nn_train_samples": int(m)}
    return out


def evaluate(samples, sample_labels, extractor, real, train_x, test_x, test_y, ceiling_samples, cfg,
             seed: int, progress: bool = False, numerics: dict | None = None) -> dict:
    """All metrics of ``samples`` against ``real`` (a ``features.RealSet``) plus floor and ceiling
    reference points, as one flat-ish dict. ``progress``: a bar over the phases (it appears after 2 s)."""
    from tqdm import tqdm  # here: ganpipe report imports this module's protocol table

    bar = tqdm(total=5, desc="evaluate", unit="phase", delay=2.0, disable=not progress, file=sys.stderr,
               bar_format="{desc}: {n}/{total} phases [{elapsed}] {postfix}")
    bar.set_postfix_str("features of the samples")
    tag = extractor.tag
    extractor.check(samples, "generated samples")
    real_feats, mu, sigma = real.features, real.mu, real.sigma
    feats, probs = extractor(samples, cfg.batch_size)
    n = len(samples)
    bar.update(1)
    bar.set_postfix_str("FD, KID, precision/recall, density/coverage")
    out = quality(feats, real_feats, mu, sigma, cfg, seed, tag)
    bar.update(1)
    bar.set_postfix_str("SSIM diversity and memorisation")
    if probs is not None:
        out["clf_score"] = M.classifier_score(probs)
        if sample_labels is not None:
            per = M.per_class_accuracy(probs, sample_labels, probs.shape[1])
            out["clf_accuracy_conditional"] = float(np.mean(list(per.values())))
            out["clf_accuracy_conditional_per_class"] = per
    out |= ssim_block(samples, sample_labels, test_x, test_y, train_x, cfg, seed)
    bar.update(1)

    # reference points, same protocol and sample count
    bar.set_postfix_str("floor: real training images")
    rng = seeds.rng(seed, "evaluate")
    floor_x = train_x[rng.choice(len(train_x), min(n, len(train_x)), replace=False)]
    floor_f, _ = extractor(floor_x, cfg.batch_size)
    floor = quality(floor_f, real_feats, mu, sigma, cfg, seed, tag)
    bar.update(1)
    bar.set_postfix_str("ceiling: an untrained generator")
    ceil_f, _ = extractor(ceiling_samples, cfg.batch_size)
    out["reference"] = {
        "floor_real_train": floor,
        "ceiling_untrained_generator": quality(ceil_f, real_feats, mu, sigma, cfg, seed, tag),
    }
    bar.update(1)
    bar.close()
    out["protocol"] = protocol(extractor, n, real_feats, cfg, getattr(real, "split", "test"), numerics)
    json.dumps(out, allow_nan=False)  # fail here, with the metric in the traceback, rather than on write
    return out


def untrained_like(generator, seed: int):
    """A freshly initialised generator of the same architecture (the ceiling reference)."""
    import keras  # here: ganpipe report imports this module's protocol table and needs no TensorFlow

    keras.utils.set_random_seed(seed)
    return keras.models.clone_model(generator)
