"""Evaluation on real parts: feature extraction, stage inputs checked, clear errors naming files."""

from __future__ import annotations

import numpy as np
import pytest

from ganpipe import metrics as M
from ganpipe import params
from ganpipe.errors import DataError, GanpipeError
from ganpipe.evaluation import check_samples, load_samples
from ganpipe.features import ClassifierExtractor, InceptionExtractor, load_real_stats, save_real_stats, train_classifier
from ganpipe.io import save_npz
from ganpipe.saving import save_model


@pytest.fixture(scope="module")
def classifier(fashion_slice, tmp_path_factory):
    x, y = fashion_slice
    cfg = params.from_dict(params.Features, dict(epochs=4, batch_size=32, width=16, feature_dim=16, lr=1e-3, reference="test"))
    model, acc = train_classifier(x[:1500, ..., None], y[:1500], x[1500:, ..., None], y[1500:], 10, cfg, 0,
                                  progress=False)
    path = tmp_path_factory.mktemp("clf") / "classifier.keras"
    save_model(model, path)
    return model, acc, path


def test_classifier_learns_and_features_do_not_depend_on_batch_size(classifier, fashion_slice):
    model, acc, path = classifier
    assert acc > 0.6  # 10 classes: chance is 0.1
    ex = ClassifierExtractor(model, path)
    x = fashion_slice[0][:300, ..., None]
    f1, p1 = ex(x, batch_size=300)
    f2, p2 = ex(x, batch_size=7)
    assert f1.shape == (300, 16) and p1.shape == (300, 10)
    np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p1.sum(1), 1, rtol=1e-5)


def test_classifier_that_does_not_fit_the_images_is_named(classifier):
    model, _, path = classifier
    with pytest.raises(DataError, match=r"classifier.keras: the classifier takes images of shape \(28, 28, 1\)"):
        ClassifierExtractor(model, path).check(np.zeros((5, 32, 32, 3), np.uint8), "generated samples")


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((10, 28, 28, 1), np.float32)}, "must be uint8 images"),
    ({"x": np.zeros((10, 28, 28), np.uint8)}, "must have shape (N, H, W, C)"),
    ({"images": np.zeros((10, 28, 28, 1), np.uint8)}, "missing array 'x'"),
])
def test_bad_samples_name_the_file(tmp_path, arrays, message):
    f = tmp_path / "samples.npz"
    save_npz(f, **arrays)
    with pytest.raises(DataError) as err:
        load_samples(f)
    assert str(err.value).startswith(str(f)) and message in str(err.value)


def test_missing_and_mismatched_stats_files(tmp_path, classifier, fashion_slice):
    model, _, path = classifier
    with pytest.raises(DataError, match="real_stats.npz: file not found"):
        load_real_stats(tmp_path / "real_stats.npz", path)
    feats, _ = ClassifierExtractor(model, path)(fashion_slice[0][:200, ..., None])
    other = tmp_path / "other.keras"
    other.write_bytes(path.read_bytes() + b"\0")
    save_real_stats(tmp_path / "real_stats.npz", feats, other)
    with pytest.raises(DataError, match="real_stats.npz: was computed with another classifier"):
        load_real_stats(tmp_path / "real_stats.npz", path)
    save_real_stats(tmp_path / "real_stats.npz", feats, path)
    stats = load_real_stats(tmp_path / "real_stats.npz", path)
    assert stats["sigma"].dtype == np.float64 and stats["sigma"].shape == (16, 16)


def test_too_few_samples_is_a_clear_error(classifier, fashion_slice):
    from ganpipe.evaluation import quality

    model, _, path = classifier
    feats, _ = ClassifierExtractor(model, path)(fashion_slice[0][:40, ..., None])
    cfg = params.from_dict(params.Evaluate, dict(extractor="classifier", batch_size=100, kid_subsets=2,
                                                 kid_subset_size=10, pr_k=3, dc_k=5, ssim_pairs=10,
                                                 memorisation_samples=5, bootstrap=2))
    with pytest.raises(DataError, match="16 generated samples are too few for 16-dimensional features"):
        quality(feats[:16], feats, feats.mean(0), np.cov(feats, rowvar=False), cfg, 0, "clf")
    # the real side is checked too (it was not: FD against a singular real covariance)
    with pytest.raises(DataError, match="16 real reference images are too few .* features.reference: all"):
        quality(feats, feats[:16], feats.mean(0), np.cov(feats, rowvar=False), cfg, 0, "clf")
    bad = feats.copy()
    bad[3, 0] = np.nan
    with pytest.raises(M.MetricError, match="generated features contains NaN"):
        quality(bad, feats, feats.mean(0), np.cov(feats, rowvar=False), cfg, 0, "clf")


def test_nan_generator_output_stops_generate_naming_the_generator():
    import keras

    from ganpipe.generation import generate

    z = keras.Input((4,))
    g = keras.Model(z, keras.layers.Reshape((2, 2, 1))(keras.layers.Lambda(lambda t: keras.ops.log(t))(z)))
    with pytest.raises(DataError, match=r"models/g.keras: the generator's output is NaN or Inf \(first at sample 0, 4 of its batch of 4\)"):
        generate(g, 8, seed=0, batch_size=4, progress=False, path="models/g.keras")


def test_inception_without_cached_weights_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(GanpipeError, match="evaluate.extractor: inception needs the ImageNet weights at .* never downloaded"):
        InceptionExtractor.open()


def test_metric_names_do_not_depend_on_the_sample_count():
    """DVC matches metrics by key: the count lives in the protocol, so two counts give the same names."""
    from types import SimpleNamespace

    from ganpipe.evaluation import quality

    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 8))
    cfg = SimpleNamespace(bootstrap=20, kid_subsets=10, kid_subset_size=100, pr_k=3, dc_k=5)
    mu, sigma = real.mean(0), np.cov(real, rowvar=False)
    a, b = (quality(rng.normal(size=(n, 8)), real, mu, sigma, cfg, 0, "clf") for n in (300, 1000))
    assert set(a) == set(b) and {"fd_clf", "fd_inf_clf", "kid_clf_mean", "precision_clf", "recall_clf"} <= set(a)


def test_check_samples_accepts_uint8_images():
    check_samples(np.zeros((2, 28, 28, 1), np.uint8), "x.npz")
