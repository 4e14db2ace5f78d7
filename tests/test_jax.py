"""Training on Keras' JAX backend (``train.backend: jax``): the same recipe as on TensorFlow, many steps per
``jax.jit`` call, the same bytes at any steps per call and across a resume, and no TensorFlow anywhere on
the path. The runs happen in fresh processes (tests/jax_run.py): this one runs Keras on TensorFlow."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def jax_runs(out: Path, jobs: list[dict]) -> dict:
    proc = subprocess.run([sys.executable, "-m", "tests.jax_run", str(out), json.dumps(jobs)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    result = json.loads(line[len("RESULT "):])
    assert result["tensorflow_modules"] == [], result["tensorflow_modules"][:5]
    return result["jobs"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_jax_trains_the_same_bytes_at_any_steps_per_call_twice_and_across_a_resume(tmp_path):
    """Adaptive augmentation (ADA's controller in the step), lazy R1 and a cosine learning-rate schedule,
    checkpoints and segments off the calls' boundaries (epochs of 8 steps, checkpoints every 5): 1 and 3
    steps per call, a second identical run, batches gathered on the host instead of from the split on the
    device (what a split too large for the device takes), and a run cut at step 7 and resumed at 2 steps
    per call give the same bytes, and no TensorFlow module is loaded."""
    model = {"r1_gamma": 1.0, "reg_interval": 3}
    train = {"checkpoint_every": 5, "augment": ["translation", "cutout", "brightness", "saturation", "contrast"],
             "augment_p": "adaptive", "ada_kimg": 0.5, "ada_target": 0.1, "d_lr": 2e-3, "lr_schedule": "cosine"}
    jobs = jax_runs(tmp_path, [
        {"name": "one", "model": model, "train": train},
        {"name": "again", "model": model, "train": train},
        {"name": "three", "model": model, "train": train | {"steps_per_execution": 3}},
        {"name": "host", "model": model, "train": train | {"steps_per_execution": 3}, "device_data_bytes": 0},
        {"name": "cut", "model": model, "train": train | {"steps_per_execution": 3, "max_steps": 7}},
        {"name": "cut", "model": model, "train": train | {"steps_per_execution": 2}},
    ])
    m = jobs["cut"]["metrics"]
    assert m["resumed_from_step"] == 7 and m["backend"] == "jax", jobs["cut"]["log"]
    assert m["devices"][0].startswith("cpu:0") and jobs["one"]["finite"]
    for name in ("models/generator.keras", "models/discriminator.keras", "ckpt/ckpt.npz",
                 "live/plots/metrics/d_loss.tsv", "live/plots/metrics/augment_p.tsv", "live/plots/metrics/r1.tsv"):
        assert (digest(tmp_path / "one" / name) == digest(tmp_path / "again" / name) == digest(tmp_path / "three" / name)
                == digest(tmp_path / "host" / name) == digest(tmp_path / "cut" / name)), name
    p = [float(r.split("\t")[1]) for r in (tmp_path / "one/live/plots/metrics/augment_p.tsv").read_text().splitlines()[1:]]
    assert max(p) > 0  # the controller moved p
    r1 = [float(r.split("\t")[1]) for r in (tmp_path / "one/live/plots/metrics/r1.tsv").read_text().splitlines()[1:]]
    assert all(v > 0 for v in r1)  # the lazy regulariser ran and reported


# each architecture and each loss once, conditional and not (the loss code does not depend on the
# architecture; each job compiles its own step, about 10 s on a 2-core CPU)
ARCH_LOSS = [("dcgan", "hinge", True), ("resnet", "wgan-gp", False), ("mlp", "ns", True)]


def test_every_arch_loss_conditioning_and_precision_trains_on_jax(tmp_path):
    jobs = [{"name": f"{arch}-{loss}-{cond}", "model": {"arch": arch, "loss": loss, "conditional": cond,
                                                        "spectral_norm": arch == "resnet"},
             "train": {"max_steps": 3}} for arch, loss, cond in ARCH_LOSS]
    jobs.append({"name": "bf16", "train": {"max_steps": 3, "precision": "mixed_bfloat16"}})
    jobs.append({"name": "critic2-r2", "model": {"critic_steps": 2, "r2_gamma": 1.0, "reg_interval": 2},
                 "train": {"max_steps": 3, "augment": ["translation"], "augment_p": 0.5}})
    done = jax_runs(tmp_path, jobs)
    for job in jobs:
        r = done[job["name"]]
        assert r["finite"] and r["metrics"]["steps"] == 3 and r["metrics"]["backend"] == "jax", (job, r)
    assert set(json.loads((tmp_path / "critic2-r2/train.json").read_text())) >= {"d_loss", "g_loss", "rt"}


@pytest.mark.parametrize("value, key", [({"backend": "jax", "strategy": "mirrored"}, "train.strategy"),
                                        ({"backend": "jax", "precision": "mixed_float16"}, "train.precision")])
def test_what_jax_cannot_run_is_refused_with_the_key_named(value, key):
    from ganpipe import params
    from ganpipe.errors import ParamsError
    from tests.conftest import TINY_TRAIN

    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        params.from_dict(params.Train, TINY_TRAIN | value, where="params.yaml")


SITECUSTOMIZE = '''
import atexit, json, os, sys

def _report():  # what this process loaded, as it exits: one JSON line per process
    keras = sys.modules.get("keras")
    tf = sorted(k for k, v in sys.modules.items() if v is not None and k.split(".")[0] == "tensorflow")
    with open(os.environ["GANPIPE_MODULES_LOG"], "a") as f:
        f.write(json.dumps({"argv": sys.argv, "keras": keras.backend.backend() if keras else None,
                            "tensorflow": tf[:5], "xla_flags": os.environ.get("XLA_FLAGS", "")}) + "\\n")

atexit.register(_report)
'''


@pytest.mark.slow
def test_the_pipeline_on_jax_loads_no_tensorflow_in_any_stage_and_trains_as_well_as_tensorflow(tiny_run, tmp_path):
    """`dvc repro` of the tiny profile with train.backend: jax and KERAS_BACKEND=jax: every stage runs on
    JAX and no process loads a TensorFlow module (each reports its modules as it exits); prepare's
    outputs are the TensorFlow run's bytes. Its samples, scored with the TensorFlow run's classifier (the
    same features for both), have an FD near the TensorFlow run's: measured over three seeds each (2-core
    AMD EPYC, avx512f), JAX 29.6, 27.7, 33.7 and TensorFlow 31.5, 29.9, 35.6, intervals about +-1: the
    seeds' spread is the noise, so the bound is a third of the TensorFlow run's FD; both are under half
    the untrained generator's (85 with the tiny profile's 32-d classifier)."""
    from ganpipe.score import score
    from tests.conftest import make_repo, set_params, sh, tiny_pipeline_params

    repo = make_repo(tmp_path)
    tiny_pipeline_params(repo)
    set_params(repo, "train", backend="jax")
    sh(["git", "commit", "-qam", "tiny profile on jax"], repo)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "modules.log"
    sh([str(Path(sys.prefix) / "bin" / "dvc"), "repro"], repo,
       env={"KERAS_BACKEND": "jax", "PYTHONPATH": str(site), "GANPIPE_MODULES_LOG": str(log)})
    records = [json.loads(line) for line in log.read_text().splitlines()]
    stages = {Path(r["argv"][0]).stem: r for r in records if r["argv"][0].startswith("stages/")}
    assert set(stages) == {"prepare", "features", "train", "generate", "evaluate"}, records
    assert all(r["tensorflow"] == [] for r in records), records
    assert all(stages[s]["keras"] == "jax" for s in ("features", "train", "generate", "evaluate")), stages
    # XLA's deterministic GPU ops, but not for the classifier's training (max-pooling's gradient has no
    # deterministic XLA GPU kernel: the flag would fail its compilation on a GPU)
    deterministic = {s: "--xla_gpu_deterministic_ops=true" in r["xla_flags"] for s, r in stages.items()}
    assert deterministic == {"prepare": True, "features": False, "train": True, "generate": True, "evaluate": True}
    train = json.loads((repo / "metrics/train.json").read_text())
    details = json.loads((repo / "metrics/eval_details.json").read_text())
    assert train["backend"] == "jax" and details["protocol"]["backend"] == "jax", (train, details["protocol"])
    assert details["protocol"]["matmul_precision"] == "highest"
    tf_repo = tiny_run[0]
    assert (json.loads((repo / "metrics/data.json").read_text()) == json.loads((tf_repo / "metrics/data.json").read_text()))

    ours = score(repo / "data/generated/samples.npz", tf_repo)["fd_clf"]
    theirs = json.loads((tf_repo / "metrics/eval.json").read_text())["fd_clf"]
    ceiling = json.loads((tf_repo / "metrics/eval_details.json").read_text())["reference"]["ceiling_untrained_generator"]["fd_clf"]
    assert abs(ours - theirs) < theirs / 3, (ours, theirs)
    assert max(ours, theirs) < ceiling / 2, (ours, theirs, ceiling)  # the tiny profile's ceiling: 85


def test_the_backend_is_chosen_before_keras_and_auto_keeps_tensorflow_on_a_cpu(monkeypatch):
    import typing

    import keras

    from ganpipe import backend, params
    from ganpipe.errors import GanpipeError

    assert set(backend.BACKENDS) | {"auto"} == set(typing.get_args(typing.get_type_hints(params.Train)["backend"]))
    assert backend.resolve("auto") == "tensorflow"  # this machine: TensorFlow, and JAX without CUDA
    assert backend.resolve("jax") == "jax"
    monkeypatch.setattr(backend, "jax_has_cuda", lambda: True)
    assert backend.resolve("auto") == "jax"  # a JAX GPU build beside a CPU-only TensorFlow
    assert backend.resolve("auto", strategy="mirrored") == "tensorflow"
    monkeypatch.setattr(backend, "tensorflow_has_cuda", lambda: True)
    assert backend.resolve("auto") == "tensorflow"
    assert keras.backend.backend() == "tensorflow"  # this process
    with pytest.raises(GanpipeError, match=r"train\.backend: jax was asked for, but Keras was already imported"):
        backend.use("jax")
    monkeypatch.setattr(backend, "installed", lambda name: False)
    with pytest.raises(GanpipeError, match=r"train\.backend: tensorflow is not installed here"):
        backend.use("tensorflow")


def test_on_jax_tensorflow_cannot_be_imported_and_a_later_choice_of_tensorflow_undoes_it():
    code = """
import os
from ganpipe import backend
assert backend.use("jax", deterministic=True) == "jax"
assert os.environ["KERAS_BACKEND"] == "jax" and "--xla_gpu_deterministic_ops=true" in os.environ["XLA_FLAGS"]
try:
    import tensorflow
    raise SystemExit("tensorflow imported")
except ImportError:
    pass
assert backend.use("tensorflow") == "tensorflow" and "XLA_FLAGS" not in os.environ
import keras, tensorflow
assert keras.backend.backend() == "tensorflow"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "XLA_FLAGS")})
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
