"""Sample-quality metrics as pure functions of features or images (float64 throughout).

- :func:`frechet_distance` (Heusel et al. 2017) in the eigenvalue formulation,
  tr(S1) + tr(S2) - 2 sum sqrt(eig(sqrt(S1) S2 sqrt(S1))), which is symmetric and never complex;
  numerical trouble (NaN/Inf input, clearly negative eigenvalues) raises instead of returning garbage.
- :func:`kid` (Binkowski et al. 2018): unbiased MMD^2 with the kernel (x.y/d + 1)^3 over random subsets.
- :func:`precision_recall` (Kynkaanniemi et al. 2019): k-NN manifolds, k = 3.
- :func:`classifier_score`: exp(E_x KL(p(y|x) || p(y))), the Inception-score analogue on our classifier.
- :func:`ssim`: mean SSIM of image pairs in [0, 1], scikit-image's Gaussian-window settings
  (sigma 1.5, K1 0.01, K2 0.03, population covariance), computed batched.
- :func:`bootstrap_ci`: normal-approximation bootstrap 95% intervals (estimate +- 1.96 SE).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from .errors import GanpipeError


class MetricError(GanpipeError, ArithmeticError):
    """A metric cannot be computed reliably from these inputs."""


# ------------------------------------------------------------------------------------ statistics


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, D) features, in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise MetricError(f"need (N, D) features with N >= 2, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise MetricError("features contain NaN or Inf")
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
        if not np.isfinite(a).all():
            raise MetricError(f"{name} contains NaN or Inf")
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


def fd_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
    for f in (f1, f2):
        if len(f) <= f.shape[1]:
            raise MetricError(
                f"{len(f)} samples for {f.shape[1]}-dimensional features: the covariance is singular; "
                f"use more than {f.shape[1]} samples")
    return frechet_distance(*feature_stats(f1), *feature_stats(f2))


# ------------------------------------------------------------------------------------------- KID


def _poly_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid(f_real: np.ndarray, f_fake: np.ndarray, n_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance on our features: mean and std of unbiased MMD^2 over random subsets."""
    f_real, f_fake = np.asarray(f_real, np.float64), np.asarray(f_fake, np.float64)
    size = min(subset_size, len(f_real), len(f_fake))
    if size < 2:
        raise MetricError("KID needs at least 2 samples on each side")
    rng = np.random.default_rng(seed)
    vals = [_poly_mmd2(f_real[rng.choice(len(f_real), size, replace=False)],
                       f_fake[rng.choice(len(f_fake), size, replace=False)]) for _ in range(n_subsets)]
    return float(np.mean(vals)), float(np.std(vals))


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


def precision_recall(f_real: np.ndarray, f_fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision (fakes inside the real manifold) and recall (reals inside the fake manifold)."""
    f_real, f_fake = np.asarray(f_real, np.float32), np.asarray(f_fake, np.float32)
    if min(len(f_real), len(f_fake)) <= k:
        raise MetricError(f"precision/recall with k={k} needs more than {k} samples on each side")
    precision = _coverage(f_real, _knn_radii(f_real, k), f_fake)
    recall = _coverage(f_fake, _knn_radii(f_fake, k), f_real)
    return precision, recall


# --------------------------------------------------------------------------- classifier-based


def classifier_score(probs: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))): high when samples are confidently classified and classes are diverse."""
    p = np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)
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
    from numpy.lib.stride_tricks import sliding_window_view

    k = len(g)
    x = sliding_window_view(x, k, axis=1) @ g
    x = sliding_window_view(x, k, axis=2) @ g
    return x


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """SSIM of each pair (a[i], b[i]) of (N, H, W, C) images; scikit-image's gaussian_weights=True settings.

    Equals ``skimage.metrics.structural_similarity(a[i], b[i], data_range=..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, channel_axis=-1)``.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
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
    """Index into ``pool`` of each query's nearest neighbour in pixel L2 (both (N, ...) arrays)."""
    q = queries.reshape(len(queries), -1).astype(np.float32)
    p = pool.reshape(len(pool), -1).astype(np.float32)
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
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    vals = np.array([stat(rng.integers(0, n, n)) for _ in range(reps)])
    estimate = float(stat(np.arange(n)))
    half = float(norm.ppf((1 + level) / 2) * vals.std(ddof=1))
    return estimate - half, estimate + half
