"""Good generators on small data: EMA ramp-up, adaptive augmentation (ADA), training length in kimg,
quality evaluations during training and the best snapshot kept."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ganpipe import build, checkpoint, params, training
from ganpipe.augment import DRAWS_PER_OP, OPS, augment
from ganpipe.errors import ParamsError
from ganpipe.models import build_models
from ganpipe.tracking import QualityTracker
from tests.conftest import TINY_MODEL, default_params, tiny_cfgs, train_as_on_a_gpu


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------ EMA ramp-up


def _gan(train=None):
    mc, tc = tiny_cfgs(train=train)
    build.configure(tc, 0)
    return build.build_gan(mc, tc, 28, 1, 10, seed=0)


def test_ema_decay_ramps_up_with_images_seen():
    gan = _gan({"ema_decay": 0.999, "ema_rampup": 0.05, "batch_size": 64})
    beta = lambda n: float(gan.ema_beta(tf.constant(n, tf.int64)))  # noqa: E731
    assert beta(1) < 1e-5  # the first steps copy the live weights: the random start is forgotten at once
    assert beta(200) == pytest.approx(0.5 ** (64 / (0.05 * 200 * 64)), rel=1e-5)  # 0.933
    assert beta(10) < beta(100) < beta(1000) < beta(10000) < 0.999
    assert beta(10**6) == pytest.approx(0.999, rel=1e-6)  # capped at train.ema_decay
    # weight of the initialisation left after N steps: prod of betas; without ramp-up 0.999^N
    left = math.prod(beta(n) for n in range(1, 201))
    assert left < 1e-6 < 0.999 ** 200
    plain = _gan({"ema_decay": 0.999, "ema_rampup": None})
    assert float(plain.ema_beta(tf.constant(5, tf.int64))) == pytest.approx(0.999)


# ------------------------------------------------------------------------------------------ augmentation


def test_augment_gates_each_op_per_image_by_p():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(-1, 1, (6, 8, 8, 3)), tf.float32)
    names = tuple(OPS)
    u = rng.random((6, DRAWS_PER_OP * len(names))).astype(np.float32)
    assert np.array_equal(augment(x, names, tf.constant(u), p=0.0).numpy(), x.numpy())  # p = 0: untouched
    always = augment(x, names, tf.constant(u)).numpy()
    assert np.array_equal(augment(x, names, tf.constant(u), p=1.0).numpy(), always)
    assert (np.abs(always - x.numpy()).reshape(6, -1).max(1) > 0).all()  # every image changed
    # gate per image: an image whose gates are all >= p stays as it was, the others change
    u2 = u.copy()
    u2[:3, ::DRAWS_PER_OP] = 0.9
    u2[3:, ::DRAWS_PER_OP] = 0.1
    half = augment(x, names, tf.constant(u2), p=0.5).numpy()
    assert np.array_equal(half[:3], x.numpy()[:3]) and np.array_equal(half[3:], always[3:])


@pytest.mark.parametrize("name", ["brightness", "saturation", "contrast"])
def test_colour_ops_follow_diffaugment(name):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (4, 5, 5, 3)).astype(np.float32)
    u = rng.random((4, 2)).astype(np.float32)
    got = OPS[name](tf.constant(x), tf.constant(u)).numpy()
    m = u[:, 0, None, None, None]
    if name == "brightness":
        want = x + (m - 0.5)
    elif name == "saturation":
        mean = x.mean(3, keepdims=True)
        want = (x - mean) * (2 * m) + mean
    else:
        mean = x.mean((1, 2, 3), keepdims=True)
        want = (x - mean) * (m + 0.5) + mean
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_ada_moves_p_toward_the_target_every_interval_and_clips():
    """The controller runs in the step (no host round trip): driven here through the GAN's own update with
    chosen r_t values, 0.2 per adjustment (batch 50, ada_kimg 1)."""
    from ganpipe.augment import ADA_INTERVAL
    from ganpipe.gan_tf import TFGAN as GAN

    g, d = build_models(params.from_dict(params.Model, TINY_MODEL), 28, 1, 0)
    gan = GAN(g, d, augment=("translation",), augment_p="adaptive", ada_target=0.6, ada_kimg=1.0, batch_size=50)

    def steps(rt, n):
        ps = []
        for _ in range(n):
            gan._adapt(tf.constant(rt), gan.step)
            gan.step.assign_add(1)
            ps.append(float(gan.aug_p.numpy()))
        return ps

    assert steps(0.9, ADA_INTERVAL) == [0.0] * (ADA_INTERVAL - 1) + [pytest.approx(0.2)]
    assert steps(1.0, ADA_INTERVAL * 10)[-1] == 1.0  # clipped
    assert steps(0.1, ADA_INTERVAL)[-1] == pytest.approx(0.8)
    steps(0.7, 1)
    assert gan.ada_acc.numpy() == pytest.approx(0.7)  # mid-interval: in the checkpoint's variables


# ------------------------------------------------------------------------------------------ params


def test_kimg_gives_the_same_training_to_any_dataset_size():
    _, tc = tiny_cfgs(train={"epochs": None, "kimg": 10.0, "batch_size": 64})
    small, big = training.plan(500, tc), training.plan(60000, tc)
    assert small.total_steps == big.total_steps == math.ceil(10000 / 64)
    assert small.steps_per_epoch == 7 and big.steps_per_epoch == 937


@pytest.mark.parametrize("train,key", [
    ({"epochs": None, "kimg": None}, "train.epochs: set exactly one of train.epochs and train.kimg"),
    ({"epochs": 3, "kimg": 10.0}, "train.epochs: set exactly one of train.epochs and train.kimg"),
    ({"augment_p": 1.5}, "train.augment_p: must be 'adaptive' or a probability"),
    ({"augment_p": "sometimes"}, "train.augment_p: must be 'adaptive' or float"),
    ({"augment": ["hue"]}, "train.augment: must be a list of"),
    ({"keep": "best", "eval_every": 0.0}, "train.keep: best needs quality evaluations"),
    ({"g_lr": "fast"}, "train.g_lr: must be 'auto' or float"),
    ({"d_lr": 0.0}, "train.d_lr: must be 'auto' or in "),
])
def test_bad_train_params_name_the_key(train, key):
    with pytest.raises(ParamsError, match=key.replace("(", r"\(")):
        tiny_cfgs(train=train)


def test_defaults_are_sensible_for_small_data():
    t = params.from_dict(params.Train, default_params()["train"])
    assert t.kimg is not None and t.epochs is None  # the same amount of training on 500 or 60,000 images
    assert t.ema_rampup is not None and t.augment_p == "adaptive" and t.augment
    assert t.eval_every > 0 and t.keep == "best"


def test_auto_params_take_the_rgb_recipe_for_colour_and_dcgans_for_grey_and_keep_explicit_values():
    d = default_params()
    mc, tc = params.from_dict(params.Model, d["model"]), params.from_dict(params.Train, d["train"])
    assert params.unresolved(mc, tc) == ["model.spectral_norm", "train.g_lr", "train.d_lr"]  # the committed defaults
    rgb_m, rgb_t, rgb = params.resolve_auto(mc, tc, 3)
    grey_m, grey_t, grey = params.resolve_auto(mc, tc, 1)
    assert rgb == {"model.spectral_norm": True, "train.g_lr": 1e-3, "train.d_lr": 1e-3}
    assert (rgb_m.spectral_norm, rgb_t.g_lr, rgb_t.d_lr) == (True, 1e-3, 1e-3)
    assert (grey_m.spectral_norm, grey_t.g_lr, grey_t.d_lr) == (False, 2e-4, 2e-4)  # Fashion-MNIST as before
    assert params.unresolved(rgb_m, rgb_t) == [] and rgb_t.beta1 == tc.beta1  # nothing else changes
    explicit = params.from_dict(params.Train, d["train"] | {"g_lr": 5e-4})
    _, t, resolved = params.resolve_auto(mc, explicit, 3)
    assert t.g_lr == 5e-4 and "train.g_lr" not in resolved and t.d_lr == 1e-3
    with pytest.raises(Exception, match=r"model.spectral_norm: auto is resolved from the training data's channels"):
        build.build_gan(mc, tc, 28, 1, 10, seed=0)


def test_yaml_11_exponent_floats_are_accepted():
    import yaml

    raw = yaml.safe_load("g_lr: 4e-4")["g_lr"]
    assert raw == "4e-4"  # what YAML 1.1 gives
    _, tc = tiny_cfgs(train={"g_lr": raw})
    assert tc.g_lr == 4e-4


# ------------------------------------------------------------------------------ evaluations, resume, keep


@pytest.fixture(scope="module")
def quality_files(tmp_path_factory, fashion_slice):
    """A small classifier and the real statistics of 1,000 real images (the features stage's outputs)."""
    from ganpipe.features import ClassifierExtractor, save_real_stats, train_classifier
    from ganpipe.saving import save_model

    x, y = fashion_slice
    x = x[..., None]
    out = tmp_path_factory.mktemp("features")
    cfg = params.from_dict(params.Features, dict(epochs=2, batch_size=64, width=16, feature_dim=32, lr=1e-3, reference="test"))
    model, _ = train_classifier(x[:1000], y[:1000], x[1000:], y[1000:], 10, cfg, 0, progress=False)
    save_model(model, out / "classifier.keras")
    feats, _ = ClassifierExtractor(model, out / "classifier.keras")(x[1000:])
    save_real_stats(out / "real_stats.npz", feats, out / "classifier.keras")
    return out / "classifier.keras", out / "real_stats.npz"


def _train(out: Path, x, y, quality_files, model=None, train=None, eval_samples=500):
    mc, tc = tiny_cfgs(model, train)
    tracker = QualityTracker(*quality_files, eval_samples, 0, batch_size=250) if tc.eval_every else None
    log = []
    m = training.train(x, y, 10, "digest", mc, tc, 0, checkpoint_dir=out / "ckpt", models_dir=out / "models",
                       metrics_path=out / "train.json", live_dir=out / "live", quality=tracker, progress=False,
                       log=log.append)
    return m, log, tracker


# D is given a head start (d_lr) so that it overfits 256 images quickly and p moves within 24 steps
ADAPTIVE = {"augment": ["translation", "cutout", "brightness", "contrast"], "augment_p": "adaptive", "ada_kimg": 1.0,
            "ada_target": 0.2, "d_lr": 2e-3, "eval_every": 0.16, "keep": "best", "epochs": 3}


def test_resume_with_adaptive_augmentation_and_evaluations_equals_uninterrupted(tmp_path, fashion_slice, quality_files,
                                                                               monkeypatch):
    """The resumed half runs under the one-device strategy that a GPU machine trains under (the CPU standing
    in for the GPU): the checkpoint, the evaluations and the kept snapshot do not depend on it."""
    x, y = fashion_slice[0][:256, ..., None], fashion_slice[1][:256]
    full, _, _ = _train(tmp_path / "full", x, y, quality_files, train=ADAPTIVE)  # 24 steps, evaluated every 5
    _train(tmp_path / "cut", x, y, quality_files, train=ADAPTIVE | {"max_steps": 13})
    cpu = train_as_on_a_gpu(monkeypatch)
    resumed, log, tracker = _train(tmp_path / "cut", x, y, quality_files, train=ADAPTIVE)
    assert resumed["devices"][0].endswith(cpu) and resumed["devices"] != full["devices"]
    assert any("resuming" in m and "step 13" in m for m in log), log
    for name in ("models/generator.keras", "models/discriminator.keras", "ckpt/ckpt.npz",
                 "live/plots/metrics/augment_p.tsv", f"live/plots/metrics/{tracker.fd_key}.tsv"):
        assert digest(tmp_path / "full" / name) == digest(tmp_path / "cut" / name), name
    assert full["kept"] == resumed["kept"]
    ckpt, _ = checkpoint.read_checkpoint(tmp_path / "full/ckpt/ckpt.npz")
    assert [e["step"] for e in ckpt.evals] == [5, 10, 15, 20]  # and the final step's (not in the checkpoint)
    assert full["last_eval"]["step"] == 24 and full["last_eval"] == resumed["last_eval"]
    ps = [r["augment_p"] for r in ckpt.history]
    assert 0 < ps[0] < ps[1] < ps[2]  # D is ahead: p rose
    rows = (tmp_path / "full/live/plots/metrics/rt.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:2] == ["step", "rt"] and len(rows) == 4


def test_keep_best_exports_the_best_evaluated_snapshot(tmp_path, fashion_slice, quality_files):
    from ganpipe.saving import load_model

    x, y = fashion_slice[0][:256, ..., None], fashion_slice[1][:256]
    m, _, tracker = _train(tmp_path, x, y, quality_files, train=ADAPTIVE)
    ckpt, _ = checkpoint.read_checkpoint(tmp_path / "ckpt/ckpt.npz")
    best = min(ckpt.evals + [m["last_eval"]], key=lambda e: e[tracker.fd_key])
    assert m["kept"] == {"snapshot": "best", **best}
    saved = json.loads((tmp_path / "train.json").read_text())
    assert saved["kept"]["step"] == best["step"] and saved["last_eval"]["step"] == 24
    # the exported generator scores what the evaluation of that snapshot scored
    again = tracker(load_model(tmp_path / "models/generator.keras"))
    assert again[tracker.fd_key] == pytest.approx(best[tracker.fd_key], rel=1e-9)
    if best["step"] != 24:
        last = m["last_eval"]
        assert again[tracker.fd_key] != pytest.approx(last[tracker.fd_key], rel=1e-9)


def test_a_short_run_with_the_defaults_on_a_few_hundred_images_is_far_from_untrained(tmp_path, fashion_slice,
                                                                                       quality_files):
    """The new user's case: a few hundred images, the default train params, 200 steps. Before the EMA
    ramp-up the saved (EMA) generator was 82% random initialisation here and scored at the ceiling."""
    from ganpipe.evaluation import untrained_like
    from ganpipe.saving import load_model

    x, y = fashion_slice[0][:400, ..., None], fashion_slice[1][:400]
    defaults = default_params()["train"] | {"kimg": 200 * 64 / 1000, "checkpoint_every": 1000}
    model = {"g_width": 32, "d_width": 32, "latent_dim": 64, "spectral_norm": default_params()["model"]["spectral_norm"]}
    m, log, tracker = _train(tmp_path, x, y, quality_files, model=model, train=defaults, eval_samples=1000)
    assert m["steps"] == 200
    assert m["auto"] == {"model.spectral_norm": False, "train.g_lr": 2e-4, "train.d_lr": 2e-4}  # grey images
    assert "train: auto params for grey images: model.spectral_norm false, train.g_lr 0.0002, train.d_lr 0.0002" in log
    g = load_model(tmp_path / "models/generator.keras")
    trained = tracker(g)[tracker.fd_key]
    ceiling = tracker(untrained_like(g, 0))[tracker.fd_key]
    assert trained < 0.5 * ceiling, (trained, ceiling)
    from ganpipe.generation import generate

    samples, _ = generate(g, 64, 0, progress=False)
    assert samples.std(axis=0).mean() > 20  # not one grey image: the samples differ from each other


def test_eval_samples_too_few_for_fd_are_refused_before_training(tmp_path, fashion_slice, quality_files):
    from ganpipe.errors import GanpipeError

    x, y = fashion_slice[0][:256, ..., None], fashion_slice[1][:256]
    with pytest.raises(GanpipeError, match=r"train.eval_samples: 32 samples are too few for FD on 32-dimensional"):
        _train(tmp_path, x, y, quality_files, train={"eval_every": 0.16}, eval_samples=32)
    assert not (tmp_path / "live").exists() and not (tmp_path / "ckpt").exists()  # refused before any step
