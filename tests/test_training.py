"""Training: every arch x loss x conditioning runs; EMA math; NaN guard; determinism; resume."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest

from ganpipe import build, checkpoint, feed, training
from ganpipe.errors import GanpipeError
from ganpipe.gan_tf import ema_update
from ganpipe.saving import load_model
from tests.conftest import tiny_cfgs, train_as_on_a_gpu


@pytest.fixture(scope="module")
def small_data(fashion_slice):
    x, y = fashion_slice
    return x[:256, ..., None], y[:256]


def run_train(out: Path, data, model=None, train=None, seed=0, log=None):
    x, y = data
    mc, tc = tiny_cfgs(model, train)
    messages = [] if log is None else log
    m = training.train(x, y, 10, "digest", mc, tc, seed, checkpoint_dir=out / "ckpt", models_dir=out / "models",
                       metrics_path=out / "train.json", live_dir=out / "live", progress=False, log=messages.append)
    return m, messages


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Every architecture with every loss; conditioning alternates so that each architecture and each loss runs
# both conditional and unconditional (the loss code does not depend on the architecture: the full 18-way
# product cost the suite minutes and tested nothing more).
ARCH_LOSS = [(arch, loss, (i + j) % 2 == 1) for i, arch in enumerate(("dcgan", "resnet", "mlp"))
             for j, loss in enumerate(("ns", "hinge", "wgan-gp"))]


@pytest.mark.parametrize("arch, loss, conditional", ARCH_LOSS)
def test_every_arch_loss_and_conditioning_trains(tmp_path, small_data, arch, loss, conditional):
    model = {"arch": arch, "loss": loss, "conditional": conditional, "g_width": 8, "d_width": 8,
             "spectral_norm": arch == "resnet", "critic_steps": 2 if loss == "wgan-gp" else 1}
    m, _ = run_train(tmp_path, small_data, model, {"max_steps": 3, "augment": ["translation", "cutout"]})
    assert m["steps"] == 3 and np.isfinite(m["d_loss"]) and np.isfinite(m["g_loss"])
    g = load_model(tmp_path / "models/generator.keras")
    z = np.zeros((2, 16), np.float32)
    out = g([z, np.array([[1], [2]], np.int32)] if conditional else z)
    assert tuple(out.shape) == (2, 28, 28, 1)


def test_ema_update_math():
    ema = [keras.Variable(np.array([1.0, 2.0], np.float32))]
    live = [keras.Variable(np.array([3.0, -2.0], np.float32))]
    ema_update(ema, live, 0.9)
    np.testing.assert_allclose(ema[0].numpy(), [0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * -2], rtol=1e-6)
    ema_update(ema, live, 0.0)  # decay 0 copies the live weights
    np.testing.assert_allclose(ema[0].numpy(), [3.0, -2.0])
    # the XLA-fused version the train step uses computes the same
    from ganpipe.gan_tf import fused_ema_update

    ema = [keras.Variable(np.array([1.0, 2.0], np.float32))]
    fused_ema_update(ema, live)(np.float32(0.9))
    np.testing.assert_allclose(ema[0].numpy(), [0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * -2], rtol=1e-6)


def test_epoch_order_is_a_seeded_permutation():
    a = feed.epoch_indices(100, 32, epoch=0, seed=1)
    assert len(a) == 96 and len(set(a)) == 96
    assert (a == feed.epoch_indices(100, 32, 0, 1)).all()
    assert not (a == feed.epoch_indices(100, 32, 1, 1)).all()


def test_same_params_same_bytes_in_one_process(tmp_path, small_data):
    run_train(tmp_path / "a", small_data, train={"max_steps": 12})
    run_train(tmp_path / "b", small_data, train={"max_steps": 12})
    for name in ("models/generator.keras", "models/discriminator.keras", "ckpt/ckpt.npz"):
        assert digest(tmp_path / "a" / name) == digest(tmp_path / "b" / name), name
    run_train(tmp_path / "c", small_data, train={"max_steps": 12}, seed=1)
    assert digest(tmp_path / "a/models/generator.keras") != digest(tmp_path / "c/models/generator.keras")


def test_resume_equals_uninterrupted(tmp_path, small_data):
    # 256 images / 32 = 8 steps per epoch; stop mid-epoch 1 at step 13, then finish 2 epochs.
    full, _ = run_train(tmp_path / "full", small_data)
    run_train(tmp_path / "cut", small_data, train={"max_steps": 13})
    resumed, log = run_train(tmp_path / "cut", small_data)
    assert any("resuming" in m and "step 13" in m for m in log), log
    assert resumed["resumed_from_step"] == 13
    for name in ("models/generator.keras", "models/discriminator.keras", "ckpt/ckpt.npz",
                 "live/plots/metrics/d_loss.tsv", "live/plots/metrics/g_loss.tsv"):
        assert digest(tmp_path / "full" / name) == digest(tmp_path / "cut" / name), name
    assert full["d_loss"] == resumed["d_loss"]


def test_checkpoint_from_other_params_is_not_resumed(tmp_path, small_data):
    run_train(tmp_path, small_data, train={"max_steps": 10})
    m, log = run_train(tmp_path, small_data, train={"g_lr": 1e-3})
    assert any("with other params (train.g_lr: 0.0002 there, 0.001 now); starting fresh" in msg for msg in log), log
    assert m["resumed_from_step"] == 0


def test_a_checkpoint_of_other_code_in_any_imported_module_is_refused_naming_it(tmp_path, small_data, monkeypatch):
    import shutil

    from tests.conftest import REPO

    files = checkpoint.code_files()
    assert {"ganpipe/seeds.py", "ganpipe/gan.py", "ganpipe/augment.py", "ganpipe/losses.py"} <= set(files)
    run_train(tmp_path / "run", small_data, train={"max_steps": 10})
    root = tmp_path / "code"
    shutil.copytree(REPO / "ganpipe", root / "ganpipe", ignore=shutil.ignore_patterns("__pycache__"))
    with open(root / "ganpipe/seeds.py", "a") as f:
        f.write("# a comment is other code too\n")
    monkeypatch.setattr(checkpoint, "ROOT", root)
    m, log = run_train(tmp_path / "run", small_data)
    assert any("with other code (ganpipe/seeds.py differs); starting fresh" in msg for msg in log), log
    assert m["resumed_from_step"] == 0


def _poison_d_after_resume(monkeypatch):
    """D's last layer becomes NaN once the run has started (or resumed): the next step's d_loss is NaN."""
    real = training.start_or_resume

    def poisoned(gan, *args, **kwargs):
        ckpt = real(gan, *args, **kwargs)
        w = gan.discriminator.get_layer("logit").kernel
        w.assign(np.full(w.shape, np.nan, np.float32))
        return ckpt

    monkeypatch.setattr(training, "start_or_resume", poisoned)


@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_nan_loss_stops_with_step_and_loss_named_and_keeps_last_checkpoint(tmp_path, small_data, monkeypatch,
                                                                           steps_per_execution):
    """The non-finite flag is kept on the device and read once per execution: the message still names
    the first bad step, and no checkpoint is written after it."""
    train = {"checkpoint_every": 2, "steps_per_execution": steps_per_execution}
    run_train(tmp_path, small_data, train=train | {"max_steps": 2})
    path = tmp_path / "ckpt" / training.CHECKPOINT
    before = path.read_bytes()
    _poison_d_after_resume(monkeypatch)
    with pytest.raises(training.TrainingDiverged, match=r"d_loss is nan at step 3; stopped \(last good checkpoint: step 2\)"):
        run_train(tmp_path, small_data, train=train)
    assert path.read_bytes() == before
    assert not (tmp_path / "live").exists()


def test_dvclive_is_written_live_and_a_run_that_fails_midway_leaves_no_partial_tables(tmp_path, small_data,
                                                                                         monkeypatch):
    """Every epoch is published in place (summary and tables: what VS Code and Studio read during a run);
    a run that then fails deletes the folder, as DVC deletes a stage's outputs before running it."""
    run_train(tmp_path, small_data)  # a finished run: its DVCLive tables
    real_save, seen = training.save_checkpoint, []

    def full_disk(path, gan, ckpt):  # the disk fills up at the checkpoint after the first epoch
        if ckpt.step == 8:
            rows = (tmp_path / "live/plots/metrics/g_loss.tsv").read_text().splitlines()
            seen.append(([r.split("\t")[0] for r in rows[1:]], json.loads((tmp_path / "live/metrics.json").read_text())))
            raise OSError(28, "No space left on device", str(path))
        real_save(path, gan, ckpt)

    monkeypatch.setattr(training, "save_checkpoint", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        run_train(tmp_path, small_data, train={"g_lr": 1e-3, "checkpoint_every": 5})
    (steps, summary), = seen
    assert steps == ["8"] and summary["step"] == 8  # the new run's first epoch, live (the old run's are gone)
    assert not (tmp_path / "live").exists()  # not a truncated run's tables
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_train_metrics_and_logs(tmp_path, small_data):
    m, _ = run_train(tmp_path, small_data)
    saved = json.loads((tmp_path / "train.json").read_text())
    assert saved["devices"] == ["/device:CPU:0"]  # what the steps ran on, recorded (no GPU here)
    assert saved["steps"] == 16 and saved["images_seen"] == 16 * 32 and saved["img_per_sec"] > 0
    rows = (tmp_path / "live/plots/metrics/g_loss.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:2] == ["step", "g_loss"] and [r.split("\t")[0] for r in rows[1:]] == ["8", "16"]
    grids = (tmp_path / "live/plots/images/samples").iterdir()
    assert sorted(g.name for g in grids) == ["16.png", "8.png"]  # DVCLive's step layout: one grid per epoch


def test_lazy_r1_and_r2_train_resume_exactly_and_log_their_curves(tmp_path, small_data):
    reg = {"r1_gamma": 1.0, "r2_gamma": 0.5, "reg_interval": 4}
    m, _ = run_train(tmp_path / "a", small_data, model=reg, train={"checkpoint_every": 5})
    assert np.isfinite(m["d_loss"])
    for name in ("r1", "r2"):  # every *_step output is a DVCLive curve, no allow-list
        rows = (tmp_path / f"a/live/plots/metrics/{name}.tsv").read_text().splitlines()
        assert rows[0].split("\t")[:2] == ["step", name] and float(rows[-1].split("\t")[1]) > 0
    plain, _ = run_train(tmp_path / "b", small_data)
    assert digest(tmp_path / "a/models/generator.keras") != digest(tmp_path / "b/models/generator.keras")
    # interrupted after 7 steps (between two lazy updates), then resumed: the same bytes
    run_train(tmp_path / "c", small_data, model=reg, train={"checkpoint_every": 5, "max_steps": 7})
    run_train(tmp_path / "c", small_data, model=reg, train={"checkpoint_every": 5})
    assert digest(tmp_path / "c/models/generator.keras") == digest(tmp_path / "a/models/generator.keras")


def test_gradient_penalties_under_float16_are_refused():
    x = np.zeros((64, 28, 28, 1), np.uint8)
    mc, tc = tiny_cfgs({"r1_gamma": 1.0}, {"precision": "mixed_float16"})
    with pytest.raises(GanpipeError, match=r"model.r1_gamma/r2_gamma: .*mixed_bfloat16"):
        build.check_inputs(x, None, 0, mc, tc, None)


def test_conditional_needs_labels(tmp_path, small_data):
    x, _ = small_data
    mc, tc = tiny_cfgs({"conditional": True})
    with pytest.raises(GanpipeError, match="model.conditional"):
        training.train(x, None, 0, "d", mc, tc, 0, checkpoint_dir=tmp_path, models_dir=tmp_path,
                       metrics_path=tmp_path / "m.json", live_dir=tmp_path / "l", progress=False)


# --------------------------------------------------------------------------- precision and XLA paths


def _trained(out, data, train):
    from ganpipe.saving import load_model

    m, _ = run_train(out, data, {"conditional": True}, {"batch_size": 32, "epochs": 3, "deterministic": False} | train)
    ckpt, arrays = checkpoint.read_checkpoint(out / "ckpt" / training.CHECKPOINT)
    g = load_model(out / "models/generator.keras")
    z, labels = training.fixed_noise(16, 4, 10, 1)
    return ckpt.history, np.asarray(g([z, labels], training=False)), arrays, g


@pytest.fixture(scope="module")
def float32_run(tmp_path_factory, small_data):
    return _trained(tmp_path_factory.mktemp("fp32"), small_data, {})


@pytest.mark.parametrize("train,loss_rtol,image_atol", [
    # XLA: same maths, other fusion and reduction order, and other noise: XLA's kernels of TensorFlow's
    # stateless generators give other numbers for the same key (philox and auto_select alike, TF 2.21), so
    # the step's device-side draws (gan.step_noise) differ in value, not in distribution. Measured after
    # 24 steps: losses within 0.4%, images within 0.015 (mean 0.002)
    ({"jit_compile": True}, 1e-2, 3e-2),
    ({"precision": "mixed_bfloat16"}, 1e-2, 2e-2),  # 8-bit mantissa compute
    ({"precision": "mixed_float16"}, 1e-2, 2e-2),  # 11-bit mantissa, dynamic loss scaling
    # as on a GPU: under the one-device strategy (the CPU standing in for the GPU), the loss scaler's
    # cross-replica code path
    ({"precision": "mixed_float16", "one_device": True}, 1e-2, 2e-2),
], ids=["xla", "mixed_bfloat16", "mixed_float16", "mixed_float16-one-device"])
def test_xla_and_mixed_precision_train_what_float32_trains(tmp_path, small_data, float32_run, train, loss_rtol, image_atol,
                                                           monkeypatch):
    train = dict(train)
    if train.pop("one_device", False):
        train_as_on_a_gpu(monkeypatch)
    ref_history, ref_images, _, _ = float32_run
    history, images, arrays, g = _trained(tmp_path, small_data, train)
    assert [r["step"] for r in history] == [r["step"] for r in ref_history] == [8, 16, 24]
    for a, b in zip(ref_history, history):
        assert b["d_loss"] == pytest.approx(a["d_loss"], rel=loss_rtol)
        assert b["g_loss"] == pytest.approx(a["g_loss"], rel=loss_rtol)
    assert images.dtype == np.float32 and np.isfinite(images).all()
    np.testing.assert_allclose(images, ref_images, atol=image_atol)
    assert np.abs(images - ref_images).max() > 0  # it did run another path
    assert g.dtype_policy.name == "float32" or g.layers[-1].dtype == "float32"  # images come out in float32
    if train.get("precision") == "mixed_float16":  # the loss scale is part of the checkpointed state
        assert any(a.shape == () and a.dtype == np.float32 and a > 1 for k, a in arrays.items() if k.startswith("v"))


def test_xla_under_op_determinism_is_refused_with_the_key_named():
    from ganpipe.errors import ParamsError

    with pytest.raises(ParamsError, match=r"train.jit_compile: XLA needs train.deterministic: false"):
        tiny_cfgs(train={"jit_compile": True, "deterministic": True})


def test_nan_guard_never_names_a_checkpoint_of_another_run(tmp_path, small_data, monkeypatch):
    """A checkpoint file from other params is not resumed: before this run writes its own, the guard
    says none was written."""
    run_train(tmp_path, small_data, train={"max_steps": 10})
    _poison_d_after_resume(monkeypatch)
    with pytest.raises(training.TrainingDiverged, match=r"at step 1; stopped \(last good checkpoint: none was written\)"):
        run_train(tmp_path, small_data, train={"g_lr": 1e-3})


def test_a_sharded_split_trains_to_the_same_bytes_as_memory(tmp_path, small_data, monkeypatch):
    """The train stage's reader (memory-mapped shards, pages dropped as it goes: here after every batch)
    feeds training exactly the images of the in-memory array: the same generator, byte for byte."""
    from ganpipe import splits
    from ganpipe.splits import Split

    monkeypatch.setattr(splits, "MAPPED_BUDGET", -1)
    x, y = small_data
    splits.write_split(tmp_path / "split", Split(x, y), shard_bytes=x[0].nbytes * 100)
    mapped = splits.load_split(tmp_path / "split", mmap=True)
    assert len(mapped.x._arrays) > 1
    train = {"epochs": 1, "max_steps": 6}
    run_train(tmp_path / "memory", (x, y), train=train)
    run_train(tmp_path / "shards", (mapped.x, mapped.y), train=train)
    for name in ("models/generator.keras", "models/discriminator.keras"):
        assert digest(tmp_path / "memory" / name) == digest(tmp_path / "shards" / name), name


# --------------------------------------------------------------------------- larger images
@pytest.mark.parametrize("arch, size", [("dcgan", 64), ("resnet", 64), ("dcgan", 128)])
def test_large_rgb_images_train_and_resume_exactly(tmp_path, arch, size):
    """64 and 128 px RGB: the architectures' shapes, a few steps from a memory-mapped split, and resume."""
    from ganpipe.splits import Split
    from ganpipe.splits import ShardedImages, load_split, write_split

    rng = np.random.default_rng(0)
    write_split(tmp_path / "train", Split(rng.integers(0, 256, (48, size, size, 3), dtype=np.uint8),
                                          rng.integers(0, 3, 48)), shard_bytes=20 * size * size * 3)
    split = load_split(tmp_path / "train", mmap=True)  # three memory-mapped shards of 20, 20 and 8 images
    assert isinstance(split.x, ShardedImages) and len(split.x) == 48
    data = (split.x, split.y)
    small = {"arch": arch, "g_width": 8, "d_width": 8}
    train = {"batch_size": 8, "checkpoint_every": 2, "augment": ["translation", "cutout"]}
    full, _ = run_train(tmp_path / "full", data, small, train | {"epochs": 1})
    run_train(tmp_path / "cut", data, small, train | {"epochs": 1, "max_steps": 3})
    resumed, log = run_train(tmp_path / "cut", data, small, train | {"epochs": 1})
    assert resumed["resumed_from_step"] == 3 and full["steps"] == 6
    assert load_model(tmp_path / "full/models/generator.keras").output_shape == (None, size, size, 3)
    for name in ("models/generator.keras", "models/discriminator.keras", "ckpt/ckpt.npz"):
        assert digest(tmp_path / "full" / name) == digest(tmp_path / "cut" / name), name


def test_steps_per_execution_and_the_gpu_input_path_give_the_same_bytes_and_resume_across_it(
        tmp_path, small_data, monkeypatch):
    """Several steps per fit() call (the device runs them back to back; the host reads the step, the sums
    and the non-finite flag once per call) train exactly what one step per call does, with adaptive
    augmentation (its controller in the step) and lazy R1, and checkpoints and segments that do not fall
    on the executions' boundaries (epochs of 8 steps, checkpoints every 5, 3 steps per call).

    And ``train.strategy: default`` as it runs on a GPU machine: ``OneDeviceStrategy`` on the first GPU,
    its input prefetched onto the device by the distributed dataset's iterator. Here the CPU stands in for
    the GPU (``make_strategy``'s device list), so the whole path runs (the distributed dataset and its
    multi-device iterator, the step in a replica context, Keras' reduction of its outputs) and must train
    the same bytes as no strategy (one replica: the fused EMA update and per-batch batch norm, as without
    a strategy)."""
    model = {"r1_gamma": 1.0, "reg_interval": 3}
    train = {"checkpoint_every": 5, "augment": ["translation", "brightness"], "augment_p": "adaptive",
             "ada_kimg": 0.5, "ada_target": 0.1, "d_lr": 2e-3}  # D ahead: it overfits and p rises
    run_train(tmp_path / "one", small_data, model, train)
    run_train(tmp_path / "three", small_data, model, train | {"steps_per_execution": 3})
    run_train(tmp_path / "cut", small_data, model, train | {"steps_per_execution": 3, "max_steps": 7})
    m, log = run_train(tmp_path / "cut", small_data, model, train | {"steps_per_execution": 2})
    assert m["resumed_from_step"] == 7, log  # the length keys include steps_per_execution
    cpu = train_as_on_a_gpu(monkeypatch)
    m, log = run_train(tmp_path / "device", small_data, model, train | {"steps_per_execution": 3})
    assert len(m["devices"]) == 1 and m["devices"][0].endswith(cpu) and f"train: on {m['devices'][0]}" in log
    for name in ("models/generator.keras", "models/discriminator.keras", "ckpt/ckpt.npz",
                 "live/plots/metrics/d_loss.tsv", "live/plots/metrics/augment_p.tsv", "live/plots/metrics/r1.tsv"):
        assert (digest(tmp_path / "one" / name) == digest(tmp_path / "three" / name) == digest(tmp_path / "cut" / name)
                == digest(tmp_path / "device" / name)), name
    p = [float(r.split("\t")[1]) for r in (tmp_path / "one/live/plots/metrics/augment_p.tsv").read_text().splitlines()[1:]]
    assert max(p) > 0  # the controller moved p


def test_a_skipped_mixed_float16_update_does_not_hold_back_the_step(small_data):
    """Under mixed_float16 the loss scaler skips the update of a step with non-finite gradients and does not
    advance its optimizer's iterations. The GAN's own step still advances, and it is what the data position,
    the noise key, the lazy regularisers, the EMA ramp and ADA follow: the run stays in step."""
    from ganpipe.feed import Feed

    x, y = small_data
    mc, tc = tiny_cfgs(train={"precision": "mixed_float16", "deterministic": False})
    build.configure(tc, 0)
    try:
        gan = build.build_gan(mc, tc, 28, 1, 10, seed=0)
        for opt in (gan.d_optimizer, gan.g_optimizer):  # every gradient overflows float16: both updates skipped
            opt.dynamic_scale.assign(2.0 ** 120)
        feed = Feed(x, y.astype(np.int32), tc.batch_size, 0)
        assert training.run_steps(gan, feed, 1) == 1
        assert gan.g_optimizer.iterations.numpy() == 0 and gan.d_optimizer.iterations.numpy() == 0  # skipped
        for opt in (gan.d_optimizer, gan.g_optimizer):
            opt.dynamic_scale.assign(1.0)
        assert training.run_steps(gan, feed, 2) == 3 and int(gan.step.numpy()) == 3
        assert gan.g_optimizer.iterations.numpy() == 2  # these two were applied; the GAN's step is one ahead
        assert gan.diverged() is None  # the losses were finite: a skipped update is not a divergence
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_training_on_the_cpu_beside_an_nvidia_driver_is_announced():
    """A CPU-only TensorFlow (or missing CUDA libraries) on a GPU machine: the stage says so and how to fix
    it, instead of training on the CPU in silence; nothing is said on a CPU machine or when a GPU is used."""
    line = build.cpu_fallback_warning(["/device:CPU:0"], driver=True)
    assert line.startswith("train: warning: ") and "make setup GPU=1" in line
    assert build.cpu_fallback_warning(["/device:CPU:0"], driver=False) is None
    assert build.cpu_fallback_warning(["/job:localhost/replica:0/task:0/device:GPU:0"], driver=True) is None
    assert build.cpu_fallback_warning(build.steps().devices(None)) is None  # this machine: no driver, no GPU
    # JAX's devices ("cpu:0 (cpu)", "gpu:0 (NVIDIA H200)"): its own fix is named
    jax_line = build.cpu_fallback_warning(["cpu:0 (cpu)"], driver=True, backend="jax")
    assert "JAX sees no GPU" in jax_line and "jax[cuda13]" in jax_line
    assert build.cpu_fallback_warning(["gpu:0 (NVIDIA H200)"], driver=True, backend="jax") is None


def test_lr_schedule_decays_from_the_step_counter_over_the_planned_length(tmp_path, small_data):
    """``train.lr_schedule: linear`` runs both optimizers at lr x (1 - step / planned steps): a run cut by
    max_steps and resumed is the uninterrupted run, byte for byte (max_steps does not shorten the schedule),
    it trains other weights than the constant schedule, and a longer planned run (another decay) does not
    resume a shorter one's checkpoint."""
    import tensorflow as tf

    assert [float(build.lr_factor("linear", s, 8)) for s in (0, 2, 8, 9)] == [1.0, 0.75, 0.0, 0.0]
    assert float(build.lr_factor("cosine", 4, 8)) == pytest.approx(0.5)
    assert float(build.lr_factor("cosine", 2, 8)) == pytest.approx(0.5 + 0.5 * math.cos(math.pi / 4))
    assert float(build.lr_factor("constant", 5, 8)) == 1.0

    mc, tc = tiny_cfgs(train={"lr_schedule": "linear", "g_lr": 1e-3})
    build.configure(tc, 0)
    gan = build.build_gan(mc, tc, 28, 1, 10, seed=0, schedule_steps=16)
    gan.step.assign(4)
    assert float(tf.convert_to_tensor(gan.g_optimizer.learning_rate)) == pytest.approx(1e-3 * 0.75)
    assert float(tf.convert_to_tensor(gan.d_optimizer.learning_rate)) == pytest.approx(2e-4 * 0.75)
    with pytest.raises(GanpipeError, match="train.lr_schedule"):
        build.build_gan(mc, tc, 28, 1, 10, seed=0)

    linear = {"lr_schedule": "linear"}
    run_train(tmp_path / "full", small_data, train=linear)  # 2 epochs of 8 steps
    run_train(tmp_path / "cut", small_data, train=linear | {"max_steps": 5})
    resumed, _ = run_train(tmp_path / "cut", small_data, train=linear)
    assert resumed["resumed_from_step"] == 5
    for name in ("models/generator.keras", "models/discriminator.keras", "live/plots/metrics/g_loss.tsv"):
        assert digest(tmp_path / "full" / name) == digest(tmp_path / "cut" / name), name
    run_train(tmp_path / "constant", small_data)
    assert digest(tmp_path / "full/models/generator.keras") != digest(tmp_path / "constant/models/generator.keras")
    longer, log = run_train(tmp_path / "full", small_data, train=linear | {"epochs": 3})
    assert longer["resumed_from_step"] == 0
    assert any("train.schedule_steps: 16 there, 24 now" in m for m in log), log
