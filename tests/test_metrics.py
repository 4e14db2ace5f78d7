"""Metrics by property (torch-fidelity style): identity, symmetry, closed forms, agreement, determinism."""

import numpy as np
import pytest
from scipy import linalg
from skimage.metrics import structural_similarity

from ganpipe import metrics as M


def gaussian(n, d, seed, shift=0.0, scale=1.0):
    return np.random.default_rng(seed).standard_normal((n, d)) * scale + shift


# ------------------------------------------------------------------------------------- Frechet


def test_fd_of_a_distribution_with_itself_is_zero():
    f = gaussian(2000, 16, 0)
    mu, s = M.feature_stats(f)
    assert M.frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)


def test_fd_is_symmetric():
    a, b = M.feature_stats(gaussian(3000, 16, 1)), M.feature_stats(gaussian(3000, 16, 2, shift=0.3, scale=1.5))
    assert M.frechet_distance(*a, *b) == pytest.approx(M.frechet_distance(*b, *a), rel=1e-10)


def test_fd_closed_form_for_known_gaussians():
    # diagonal covariances: FD = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0
    assert M.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    # rotation invariance: rotate both the same way
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))
    got = M.frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-9)


def test_fd_agrees_with_the_sqrtm_formulation():
    s1 = np.cov(gaussian(500, 32, 3), rowvar=False)
    s2 = np.cov(gaussian(500, 32, 4, scale=2.0), rowvar=False)
    mu1, mu2 = np.zeros(32), np.full(32, 0.1)
    covmean = linalg.sqrtm(s1 @ s2).real
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert M.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-6)


def test_fd_raises_instead_of_returning_garbage():
    mu = np.zeros(2)
    with pytest.raises(M.MetricError, match="NaN or Inf"):
        M.frechet_distance(mu, np.array([[np.nan, 0], [0, 1]]), mu, np.eye(2))
    with pytest.raises(M.MetricError, match="not positive semi-definite"):
        M.frechet_distance(mu, np.diag([1.0, -1.0]), mu, np.eye(2))
    with pytest.raises(M.MetricError, match="shape mismatch"):
        M.frechet_distance(mu, np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(M.MetricError, match="use more than 16 samples"):
        M.fd_from_features(gaussian(16, 16, 0), gaussian(100, 16, 1))


def test_feature_stats_accumulate_in_float64():
    f = gaussian(100, 4, 0).astype(np.float32)
    mu, s = M.feature_stats(f)
    assert mu.dtype == np.float64 and s.dtype == np.float64
    np.testing.assert_allclose(s, np.cov(f.astype(np.float64), rowvar=False), rtol=1e-12)


# ------------------------------------------------------------------------------------------ KID


def test_kid_near_zero_for_one_distribution_and_positive_for_two():
    a, b = gaussian(2000, 16, 0), gaussian(2000, 16, 1)
    c = gaussian(2000, 16, 2, shift=0.5)
    same_mean, same_std = M.kid(a, b, 20, 500, seed=0)
    diff_mean, _ = M.kid(a, c, 20, 500, seed=0)
    assert abs(same_mean) < 3 * same_std + 1e-3
    assert diff_mean > 20 * abs(same_mean) and diff_mean > 0.05


def test_kid_is_unbiased_on_average():
    vals = [M.kid(gaussian(200, 8, s), gaussian(200, 8, s + 100), 1, 200, seed=s)[0] for s in range(30)]
    assert abs(np.mean(vals)) < 3 * np.std(vals) / np.sqrt(len(vals))


# ------------------------------------------------------------------------------ precision/recall


def test_precision_recall_identical_and_disjoint():
    a = gaussian(500, 8, 0)
    assert M.precision_recall(a, a.copy()) == (1.0, 1.0)
    p, r = M.precision_recall(a, gaussian(500, 8, 1, shift=50.0))
    assert p == 0.0 and r == 0.0


def test_precision_high_recall_low_for_a_collapsed_generator():
    real = gaussian(1000, 4, 0)
    collapsed = gaussian(1000, 4, 1, scale=0.05)  # all samples near the mode
    p, r = M.precision_recall(real, collapsed)
    assert p > 0.9 and r < 0.2


# ------------------------------------------------------------------------------- classifier score


def test_classifier_score_bounds():
    k = 10
    onehot = np.eye(k)[np.arange(1000) % k]
    assert M.classifier_score(onehot) == pytest.approx(k, rel=1e-6)  # confident and diverse
    assert M.classifier_score(np.full((100, k), 1 / k)) == pytest.approx(1.0)  # uninformative
    assert M.classifier_score(np.eye(k)[np.zeros(100, int)]) == pytest.approx(1.0, rel=1e-6)  # one class


def test_per_class_accuracy():
    probs = np.eye(3)[[0, 1, 1, 2]]
    assert M.per_class_accuracy(probs, np.array([0, 1, 2, 2]), 3) == {"0": 1.0, "1": 1.0, "2": 0.5}


# ----------------------------------------------------------------------------------------- SSIM


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_equals_scikit_image(channels):
    rng = np.random.default_rng(channels)
    a = rng.random((6, 28, 28, channels))
    b = np.clip(a + 0.3 * rng.standard_normal(a.shape), 0, 1)
    ours = M.ssim(a, b)
    ref = [structural_similarity(a[i], b[i], data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, channel_axis=-1) for i in range(6)]
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(M.ssim(a, a), 1.0)


def test_ssim_rejects_small_or_mismatched_images():
    with pytest.raises(M.MetricError, match="smaller than"):
        M.ssim(np.zeros((1, 8, 8, 1)), np.zeros((1, 8, 8, 1)))
    with pytest.raises(M.MetricError, match="one shape"):
        M.ssim(np.zeros((1, 28, 28, 1)), np.zeros((2, 28, 28, 1)))


def test_nearest_neighbours_finds_copies():
    pool = np.random.default_rng(0).integers(0, 256, (50, 28, 28, 1), dtype=np.uint8)
    assert (M.nearest_neighbours(pool[[7, 3, 41]], pool) == [7, 3, 41]).all()


# ------------------------------------------------------------------------------- determinism, CI


def test_two_runs_give_identical_results():
    a, b = gaussian(800, 8, 0), gaussian(800, 8, 1, shift=0.2)
    assert M.kid(a, b, 10, 200, seed=5) == M.kid(a, b, 10, 200, seed=5)
    assert M.precision_recall(a, b) == M.precision_recall(a, b)
    stat = lambda i: M.frechet_distance(*M.feature_stats(b[i]), *M.feature_stats(a))  # noqa: E731
    assert M.bootstrap_ci(stat, len(b), 20, seed=1) == M.bootstrap_ci(stat, len(b), 20, seed=1)


def test_bootstrap_ci_covers_the_estimate():
    x = gaussian(500, 1, 0).ravel()
    lo, hi = M.bootstrap_ci(lambda i: x[i].mean(), len(x), 200, seed=0)
    assert lo < x.mean() < hi and hi - lo == pytest.approx(2 * 1.96 / np.sqrt(500), rel=0.3)
