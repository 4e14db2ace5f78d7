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
    same = M.kid(a, b, 20, 500, seed=0)
    diff = M.kid(a, c, 20, 500, seed=0)
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert diff.mean > 20 * abs(same.mean) and diff.mean > 0.05
    assert same.subset_size == 500 and same.blocks == 4 and same.ci95_lo < same.mean < same.ci95_hi


def test_kid_interval_is_calibrated_against_independent_data_sets():
    """The standard error must match how much KID moves between independent samples of the same two
    distributions. The subsets' spread (the report's old interval) and its standard error of the mean
    over subsets both miss it, because random subsets of one sample overlap."""
    rows = []
    for s in range(30):
        rng = np.random.default_rng(s)
        real, fake = rng.standard_normal((2000, 16)), rng.standard_normal((2000, 16)) * 1.1 + 0.05
        k = M.kid(real, fake, 50, 200, seed=s)
        rows.append((k.mean, k.std, k.se, k.std / np.sqrt(50), k.ci95_lo, k.ci95_hi))
    mean, std, se, sem, lo, hi = np.array(rows).T
    truth = mean.std(ddof=1)
    assert 0.7 < se.mean() / truth < 1.5
    assert std.mean() / truth > 2.5 and sem.mean() / truth < 0.6
    assert ((lo <= mean.mean()) & (mean.mean() <= hi)).mean() >= 0.85


def test_kid_is_unbiased_on_average():
    vals = [M.kid(gaussian(200, 8, s), gaussian(200, 8, s + 100), 2, 100, seed=s).mean for s in range(30)]
    assert abs(np.mean(vals)) < 3 * np.std(vals) / np.sqrt(len(vals))


def test_kid_subset_size_never_silently_exceeds_a_set():
    a = gaussian(300, 4, 0)
    with pytest.raises(M.MetricError, match="subset size 200 does not fit twice in the 300 real features"):
        M.kid(a, gaussian(1000, 4, 1), 10, 200)
    with pytest.raises(M.MetricError, match="at least 2 subsets"):
        M.kid(a, a, 1, 100)
    # the size the evaluate stage uses: at most half the smaller set, so that subsets differ (std > 0)
    assert M.kid_subset_size(1000, 10000, 10000) == 1000
    assert M.kid_subset_size(1000, 300, 5000) == 150
    assert M.kid(a, gaussian(300, 4, 1), 10, M.kid_subset_size(1000, 300, 300)).std > 0


# -------------------------------------------------------------------------------- FD-infinity


def correlated(n, d, seed, shift=0.0):
    mix = np.random.default_rng(12345).standard_normal((d, d)) / np.sqrt(d)
    return gaussian(n, d, seed) @ mix.T * 2 + shift


def test_fd_infinity_of_one_distribution_has_a_ci_containing_zero():
    covered, plain_above = 0, 0
    for seed in range(8):
        gen, real = correlated(1500, 24, seed), correlated(4000, 24, 100 + seed)
        inf = M.fd_infinity(gen, real, reps=20, seed=seed)
        covered += inf.ci95_lo <= 0 <= inf.ci95_hi
        plain_above += M.fd_from_features(gen, real) > max(inf.value, 0) + 0.1  # plain FD: finite-sample bias
        assert inf.counts[0] == 300 and inf.counts[-1] == 1500
    assert covered >= 7 and plain_above >= 7


def test_fd_infinity_recovers_a_known_distance():
    true = 24 * 0.15**2  # a mean shift of 0.15 in each of 24 dimensions, same covariance
    vals = [M.fd_infinity(correlated(2000, 24, s, 0.15), correlated(4000, 24, 50 + s), reps=10, seed=s).value
            for s in range(6)]
    plain = [M.fd_from_features(correlated(2000, 24, s, 0.15), correlated(4000, 24, 50 + s)) for s in range(6)]
    assert abs(np.mean(vals) - true) < 0.1 < np.mean(plain) - true


def test_fd_infinity_needs_enough_samples_after_subsampling():
    # small sets: the smallest fraction rises so that every subset keeps 2 x dim samples
    assert M.fd_infinity_min_fraction(10000, 10000, 128) == 0.2
    assert M.fd_infinity_min_fraction(300, 200, 32) == 0.32
    assert M.fd_infinity_counts(200, 0.32)[0] == 64
    with pytest.raises(M.MetricError, match="100 generated and 1000 real samples are too few .* at least 128"):
        M.fd_infinity(gaussian(100, 32, 0), gaussian(1000, 32, 1))


# ------------------------------------------------------------------------------ precision/recall


def test_precision_recall_identical_and_disjoint():
    a = gaussian(500, 8, 0)
    assert M.precision_recall(a, a.copy()) == (1.0, 1.0)
    p, r = M.precision_recall(a, gaussian(500, 8, 1, shift=50.0))
    assert p == 0.0 and r == 0.0


def test_precision_recall_and_density_coverage_do_not_move_when_both_sets_shift():
    real, fake = gaussian(1500, 16, 0).astype(np.float32), gaussian(1500, 16, 1, scale=1.2).astype(np.float32)
    for fn in (M.precision_recall, M.density_coverage):
        assert fn(real + 1000, fake + 1000) == pytest.approx(fn(real, fake), abs=1e-3)


def test_density_coverage_agree_with_the_prdc_formulation():
    from scipy.spatial.distance import cdist

    real, fake = gaussian(400, 6, 0), gaussian(300, 6, 1, shift=0.3)
    k = 5
    radii = np.sort(cdist(real, real), axis=1)[:, k]
    inside = cdist(real, fake) < radii[:, None]
    density, coverage = M.density_coverage(real, fake, k)
    assert density == pytest.approx(inside.sum() / (k * len(fake)), abs=1e-12)
    assert coverage == pytest.approx(inside.any(axis=1).mean(), abs=1e-12)


def test_density_coverage_identical_collapsed_and_disjoint():
    real = gaussian(1000, 8, 0)
    same_d, same_c = M.density_coverage(real, gaussian(1000, 8, 1))
    assert 0.8 < same_d < 1.2 and same_c > 0.9
    far_d, far_c = M.density_coverage(real, gaussian(1000, 8, 2, shift=50.0))
    assert far_d == 0.0 and far_c == 0.0
    collapsed_d, collapsed_c = M.density_coverage(real, gaussian(1000, 8, 3, scale=0.05))
    assert collapsed_c < 0.1  # one mode: most real balls hold no sample


NAN_CASES = {
    "feature_stats": lambda bad, ok: M.feature_stats(bad, "generated features"),
    "fd_from_features": lambda bad, ok: M.fd_from_features(ok, bad, ("real features", "generated features")),
    "fd_infinity": lambda bad, ok: M.fd_infinity(bad, ok),
    "kid": lambda bad, ok: M.kid(ok, bad, 5, 100),
    "precision_recall": lambda bad, ok: M.precision_recall(ok, bad),
    "density_coverage": lambda bad, ok: M.density_coverage(ok, bad),
    "classifier_score": lambda bad, ok: M.classifier_score(np.abs(bad[:, :4])),
}


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("name", NAN_CASES)
def test_every_metric_refuses_nan_and_inf_naming_the_input(name, value):
    ok, bad = gaussian(1000, 8, 0), gaussian(1000, 8, 1)
    bad[17, 3] = value
    want = "class probabilities" if name == "classifier_score" else "generated features"
    with pytest.raises(M.MetricError, match=f"{want} contains NaN or Inf \\(1 of"):
        NAN_CASES[name](bad, ok)
    # and on the real side
    if name in ("kid", "precision_recall", "density_coverage"):
        with pytest.raises(M.MetricError, match="real features contains NaN or Inf"):
            NAN_CASES[name](ok, bad)


def test_image_metrics_refuse_nan():
    a = np.random.default_rng(0).random((2, 16, 16, 1))
    b = a.copy()
    b[1, 5, 5, 0] = np.nan
    with pytest.raises(M.MetricError, match="SSIM images b contains NaN"):
        M.ssim(a, b)
    with pytest.raises(M.MetricError, match="query images contains NaN"):
        M.nearest_neighbours(b, a)


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
    assert M.density_coverage(a, b) == M.density_coverage(a, b)
    assert M.fd_infinity(a, b, reps=5, seed=3) == M.fd_infinity(a, b, reps=5, seed=3)
    stat = lambda i: M.frechet_distance(*M.feature_stats(b[i]), *M.feature_stats(a))  # noqa: E731
    assert M.bootstrap_ci(stat, len(b), 20, seed=1) == M.bootstrap_ci(stat, len(b), 20, seed=1)


def test_bootstrap_ci_covers_the_estimate():
    x = gaussian(500, 1, 0).ravel()
    lo, hi = M.bootstrap_ci(lambda i: x[i].mean(), len(x), 200, seed=0)
    assert lo < x.mean() < hi and hi - lo == pytest.approx(2 * 1.96 / np.sqrt(500), rel=0.3)
