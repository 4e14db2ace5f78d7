"""Sample-quality metrics as pure functions of features or images (float64 throughout).

- :func:`frechet_distance` (Heusel et al. 2017) in the eigenvalue formulation,
  tr(S1) + tr(S2) - 2 sum sqrt(eig(sqrt(S1) S2 sqrt(S1))), which is symmetric and never complex;
  numerical trouble (NaN/Inf input, clearly negative eigenvalues) raises instead of returning garbage.
- :func:`fd_infinity` (Chong and Forsyth 2020): FD at several sample counts (both sides subsampled by the
  same fraction), extrapolated linearly in 1/n to n -> infinity, which removes FD's O(1/n) bias.
- :func:`kid` (Binkowski et al. 2018): unbiased MMD^2 with the kernel (x.y/d + 1)^3 over random subsets,
  with an interval from disjoint blocks.
- :func:`precision_recall` (Kynkaanniemi et al. 2019): k-NN manifolds, k = 3.
- :func:`density_coverage` (Naeem et al. 2020, the ``prdc`` formulation): outlier-robust fidelity and
  diversity from k-NN balls around the real samples only.
- :func:`classifier_score`: exp(E_x KL(p(y|x) || p(y))), the Inception-score analogue on our classifier.
- :func:`ssim`: mean SSIM of image pairs in [0, 1], scikit-image's Gaussian-window settings
  (sigma 1.5, K1 0.01, K2 0.03, population covariance), computed batched.
- :func:`bootstrap_ci`: normal-approximation bootstrap 95% intervals (estimate +- 1.96 SE).

Every function refuses NaN/Inf input with a :class:`MetricError` naming the input. k-NN distances are
computed in float64 on features centred on the real mean, so a shift of both sets changes nothing.
(Over 300 lines: pure functions, one per metric and its interval; no state, no I/O.)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import linalg
from scipy.stats import norm
from scipy.stats import t as t_dist

from .errors import GanpipeError


class MetricError(GanpipeError, ArithmeticError):
    """A metric cannot be computed reliably from these inputs."""


Z95 = float(norm.ppf(0.975))


def finite(a, name: str, dtype=np.float64) -> np.ndarray:
    """``a`` as an array of ``dtype``; a MetricError naming ``name`` when it holds NaN or Inf."""
    a = np.asarray(a, dtype)
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise MetricError(f"{name} contains NaN or Inf ({bad} of {a.size} values)")
    return a


def _features(f, name: str, min_n: int = 2) -> np.ndarray:
    f = finite(f, name)
    if f.ndim != 2 or len(f) < min_n:
        raise MetricError(f"{name}: need (N, D) features with N >= {min_n}, got shape {f.shape}")
    return f


# ------------------------------------------------------------------------------------ statistics


def feature_stats(features: np.ndarray, name: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, D) features, in float64."""
    f = _features(features, name)
    mu = f.mean(axis=0)
    centred = f - mu
    return mu, centred.T @ centred / (len(f) - 1)


def _sqrtm_psd(s: np.ndarray, name: str) -> np.ndarray:
    w, v = linalg.eigh(s)
    if w.min() < -1e-6 * max(w.max(), 1e-12):
        raise MetricError(f"{name} is not positive semi-definite (eigenvalue {w.min():.3g})")
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), eigenvalue formulation, float64."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise MetricError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    for name, a in (("mu1", mu1), ("mu2", mu2), ("sigma1", s1), ("sigma2", s2)):
        finite(a, name)
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    r1 = _sqrtm_psd(s1, "sigma1")
    m = r1 @ s2 @ r1
    w = linalg.eigvalsh((m + m.T) / 2)
    if w.min() < -1e-6 * max(w.max(), 1e-12):
        raise MetricError(f"sqrt(S1) S2 sqrt(S1) has a negative eigenvalue ({w.min():.3g})")
    tr_covmean = np.sqrt(np.clip(w, 0, None)).sum()
    fd = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)
    if not np.isfinite(fd):
        raise MetricError("Frechet distance is not finite")
    return max(fd, 0.0)


def check_more_than_dim(f: np.ndarray, name: str) -> None:
    """FD needs N > D on each side (else the covariance is singular)."""
    if len(f) <= f.shape[1]:
        raise MetricError(f"{name}: {len(f)} samples for {f.shape[1]}-dimensional features: the covariance is "
                          f"singular; use more than {f.shape[1]} samples")


def fd_from_features(f1: np.ndarray, f2: np.ndarray, names=("features 1", "features 2")) -> float:
    for f, name in zip((f1, f2), names):
        check_more_than_dim(_features(f, name), name)
    return frechet_distance(*feature_stats(f1, names[0]), *feature_stats(f2, names[1]))


class FDInfinity(NamedTuple):
    value: float  # the intercept of FD against 1/n
    ci95_lo: float
    ci95_hi: float
    counts: tuple  # generated sample counts of the fit (real counts scale by the same fraction)


def fd_infinity_min_fraction(n_gen: int, n_real: int, dim: int, default: float = 0.2) -> float | None:
    """The smallest subsampling fraction of :func:`fd_infinity`: ``default``, raised so that every subset
    keeps at least 2 x ``dim`` samples; None when that needs more than half of a set (too few samples)."""
    frac = max(default, 2 * dim / min(n_gen, n_real))
    return frac if frac <= 0.5 else None


def fd_infinity_counts(n: int, min_fraction: float, points: int = 8) -> tuple[int, ...]:
    """The subset sizes of :func:`fd_infinity` for a set of ``n``: fractions evenly spaced in 1/fraction."""
    return tuple(round(n / inv) for inv in np.linspace(1.0 / min_fraction, 1.0, points))


def fd_infinity(f_gen: np.ndarray, f_real: np.ndarray, points: int = 8, min_fraction: float = 0.2,
                reps: int = 50, seed: int = 0) -> FDInfinity:
    """FD extrapolated to infinitely many samples on both sides (Chong and Forsyth 2020).

    FD's estimator has a bias that is linear in 1/n_gen and 1/n_real. Both sets are subsampled (without
    replacement) by ``points`` fractions from ``min_fraction`` (raised by :func:`fd_infinity_min_fraction`
    where sets are small) to 1, evenly spaced in 1/fraction; a least-squares line of FD against 1/n_gen
    gives the intercept. The interval is the intercept +- 1.96 bootstrap SEs: each of ``reps`` resamples
    draws every point's subsets with replacement.
    """
    f_gen, f_real = _features(f_gen, "generated features"), _features(f_real, "real features")
    frac = fd_infinity_min_fraction(len(f_gen), len(f_real), f_gen.shape[1], min_fraction)
    if frac is None:
        raise MetricError(f"FD-infinity: {len(f_gen)} generated and {len(f_real)} real samples are too few for "
                          f"{f_gen.shape[1]}-dimensional features (need at least {4 * f_gen.shape[1]} on each side)")
    sizes = list(zip(fd_infinity_counts(len(f_gen), frac, points), fd_infinity_counts(len(f_real), frac, points)))
    x = 1.0 / np.array([ng for ng, _ in sizes], np.float64)
    design = np.stack([np.ones_like(x), x], axis=1)
    rng = np.random.default_rng(seed)

    def intercept(replace: bool) -> float:
        fds = [frechet_distance(*feature_stats(f_gen[rng.choice(len(f_gen), ng, replace=replace)]),
                                *feature_stats(f_real[rng.choice(len(f_real), nr, replace=replace)]))
               for ng, nr in sizes]
        return float(np.linalg.lstsq(design, np.array(fds), rcond=None)[0][0])

    value = intercept(replace=False)
    se = float(np.std([intercept(replace=True) for _ in range(reps)], ddof=1))
    return FDInfinity(value, value - Z95 * se, value + Z95 * se, tuple(ng for ng, _ in sizes))


# ------------------------------------------------------------------------------------------- KID


def _poly_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


class KID(NamedTuple):
    mean: float  # mean of the random subsets' unbiased MMD^2 (torch-fidelity's kid_mean)
    std: float  # their spread (torch-fidelity's kid_std); not an uncertainty of the mean
    se: float  # standard error of the estimate from disjoint blocks (see :func:`kid`)
    ci95_lo: float
    ci95_hi: float
    subset_size: int
    blocks: int


def kid_subset_size(requested: int, n_real: int, n_fake: int) -> int:
    """The subset size actually used: at most half the smaller set, so that subsets differ and at least
    two disjoint blocks give the standard error."""
    return max(2, min(requested, min(n_real, n_fake) // 2))


def kid(f_real: np.ndarray, f_fake: np.ndarray, n_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> KID:
    """Kernel Inception Distance: unbiased MMD^2 over ``n_subsets`` random subsets of ``subset_size``.

    The interval: random subsets overlap, so neither their spread (4x too wide) nor its standard error of
    the mean (2.5x too narrow: it measures only which subsets were drawn, not which samples) is the
    uncertainty of the estimate (``tests/test_metrics.py`` measures both against independent data sets).
    The sets are split into m disjoint blocks of ``subset_size`` instead; the block estimates are
    independent, and std(blocks) / sqrt(m) with Student's t at m - 1 degrees of freedom gives the interval
    (slightly conservative for the mean over random subsets, which has the same expectation).
    """
    f_real, f_fake = _features(f_real, "real features"), _features(f_fake, "generated features")
    for f, name in ((f_real, "real features"), (f_fake, "generated features")):
        if not 2 <= subset_size <= len(f) // 2:
            raise MetricError(f"KID subset size {subset_size} does not fit twice in the {len(f)} {name}")
    if n_subsets < 2:
        raise MetricError(f"KID needs at least 2 subsets, got {n_subsets}")
    rng = np.random.default_rng(seed)
    vals = np.array([_poly_mmd2(f_real[rng.choice(len(f_real), subset_size, replace=False)],
                                f_fake[rng.choice(len(f_fake), subset_size, replace=False)])
                     for _ in range(n_subsets)])
    m = min(len(f_real), len(f_fake)) // subset_size
    pr, pf = rng.permutation(len(f_real)), rng.permutation(len(f_fake))
    blocks = np.array([_poly_mmd2(f_real[pr[i * subset_size:(i + 1) * subset_size]],
                                  f_fake[pf[i * subset_size:(i + 1) * subset_size]]) for i in range(m)])
    se = float(blocks.std(ddof=1) / np.sqrt(m))
    half = float(t_dist.ppf(0.975, m - 1)) * se
    mean = float(vals.mean())
    return KID(mean, float(vals.std()), se, mean - half, mean + half, subset_size, m)


# ----------------------------------------------------------------------------- precision / recall


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(d, 0)


def _knn_radii(f: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    radii = np.empty(len(f))
    for i in range(0, len(f), chunk):
        d = _sq_dists(f[i:i + chunk], f)
        radii[i:i + chunk] = np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself
    return radii


def _coverage(manifold: np.ndarray, radii: np.ndarray, probes: np.ndarray, chunk: int = 2048) -> float:
    inside = 0
    for i in range(0, len(probes), chunk):
        d = _sq_dists(probes[i:i + chunk], manifold)
        inside += int((d <= radii[None, :]).any(axis=1).sum())
    return inside / len(probes)


def _centred_pair(f_real, f_fake, k: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Both feature sets in float64, centred on the real mean (|a|^2 + |b|^2 - 2ab loses no digits)."""
    f_real, f_fake = _features(f_real, "real features"), _features(f_fake, "generated features")
    if min(len(f_real), len(f_fake)) <= k:
        raise MetricError(f"{what} with k={k} needs more than {k} samples on each side")
    mu = f_real.mean(axis=0)
    return f_real - mu, f_fake - mu


def precision_recall(f_real: np.ndarray, f_fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision (fakes inside the real manifold) and recall (reals inside the fake manifold)."""
    f_real, f_fake = _centred_pair(f_real, f_fake, k, "precision/recall")
    precision = _coverage(f_real, _knn_radii(f_real, k), f_fake)
    recall = _coverage(f_fake, _knn_radii(f_fake, k), f_real)
    return precision, recall


def density_coverage(f_real: np.ndarray, f_fake: np.ndarray, k: int = 5, chunk: int = 2048) -> tuple[float, float]:
    """Density (mean number of real k-NN balls holding a fake, over k; 1 when the distributions match)
    and coverage (share of real balls holding at least one fake), as in Naeem et al.'s ``prdc`` (strict <)."""
    f_real, f_fake = _centred_pair(f_real, f_fake, k, "density/coverage")
    radii = _knn_radii(f_real, k)
    inside_total, covered = 0, 0
    for i in range(0, len(f_real), chunk):
        inside = _sq_dists(f_real[i:i + chunk], f_fake) < radii[i:i + chunk, None]
        inside_total += int(inside.sum())
        covered += int(inside.any(axis=1).sum())
    return inside_total / (k * len(f_fake)), covered / len(f_real)


# --------------------------------------------------------------------------- classifier-based


def classifier_score(probs: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))): high when samples are confidently classified and classes are diverse."""
    p = np.clip(finite(probs, "class probabilities"), 1e-12, 1.0)
    marginal = p.mean(axis=0, keepdims=True)
    return float(np.exp((p * (np.log(p) - np.log(marginal))).sum(axis=1).mean()))


def per_class_accuracy(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    pred = np.asarray(probs).argmax(axis=1)
    labels = np.asarray(labels).ravel()
    return {str(c): float((pred[labels == c] == c).mean()) for c in range(num_classes) if (labels == c).any()}


# ------------------------------------------------------------------------------------------ SSIM


def _gauss_window(sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    # scikit-image: win_size = 2 * int(truncate * sigma + 0.5) + 1 = 11 for sigma 1.5
    r = int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation over axes 1 and 2 of (N, H, W, C)."""
    k = len(g)
    x = sliding_window_view(x, k, axis=1) @ g
    x = sliding_window_view(x, k, axis=2) @ g
    return x


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """SSIM of each pair (a[i], b[i]) of (N, H, W, C) images; scikit-image's gaussian_weights=True settings.

    Equals ``skimage.metrics.structural_similarity(a[i], b[i], data_range=..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, channel_axis=-1)``.
    """
    a, b = finite(a, "SSIM images a"), finite(b, "SSIM images b")
    if a.shape != b.shape or a.ndim != 4:
        raise MetricError(f"SSIM needs two (N, H, W, C) arrays of one shape, got {a.shape} and {b.shape}")
    g = _gauss_window()
    if min(a.shape[1:3]) < len(g):
        raise MetricError(f"images of {a.shape[1]}x{a.shape[2]} are smaller than the {len(g)}-pixel SSIM window")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    out = np.empty(len(a))
    for i in range(0, len(a), 256):
        x, y = a[i:i + 256], b[i:i + 256]
        ux, uy = _filter_valid(x, g), _filter_valid(y, g)
        vx = _filter_valid(x * x, g) - ux * ux
        vy = _filter_valid(y * y, g) - uy * uy
        vxy = _filter_valid(x * y, g) - ux * uy
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
        out[i:i + 256] = s.mean(axis=(1, 2, 3))
    return out


def pairwise_ssim(images: np.ndarray, n_pairs: int, seed: int) -> np.ndarray:
    """SSIM of ``n_pairs`` random distinct pairs from ``images`` (N, H, W, C) in [0, 1]."""
    n = len(images)
    if n < 2:
        raise MetricError("pairwise SSIM needs at least 2 images")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, n_pairs)
    j = (i + rng.integers(1, n, n_pairs)) % n  # j != i
    return ssim(images[i], images[j])


def nearest_neighbours(queries: np.ndarray, pool: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Index into ``pool`` of each query's nearest neighbour in pixel L2 (both (N, ...) arrays).

    ``ssim_nn_train_gen`` is the SSIM to this pixel-nearest training image, not a search by SSIM."""
    q = finite(queries, "query images", np.float32).reshape(len(queries), -1)
    p = finite(pool, "pool images", np.float32).reshape(len(pool), -1)
    pn = (p * p).sum(1)
    out = np.empty(len(q), np.int64)
    for i in range(0, len(q), chunk):
        out[i:i + chunk] = np.argmin(pn[None, :] - 2 * q[i:i + chunk] @ p.T, axis=1)
    return out


# ------------------------------------------------------------------------------------- bootstrap


def bootstrap_ci(stat, n: int, reps: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Normal-approximation bootstrap interval: stat(all) +- z * SE, SE over ``reps`` resamples.

    ``stat(idx)`` evaluates the statistic on the items ``idx`` of range(n). The percentile interval is not
    used because FD's estimator is biased by O(d/n): resamples with repeated items give larger values,
    and for near-zero distances the percentile interval can miss the estimate altogether.
    """
    rng = np.random.default_rng(seed)
    vals = np.array([stat(rng.integers(0, n, n)) for _ in range(reps)])
    estimate = float(stat(np.arange(n)))
    half = float(norm.ppf((1 + level) / 2) * vals.std(ddof=1))
    return estimate - half, estimate + half
