"""Shared fixtures: real Fashion-MNIST from the Debian package, small real image folders, stage runners."""

from __future__ import annotations

import gzip
import json
import os
import runpy
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def default_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    from ganpipe.decoders import find_fashion_mnist

    return find_fashion_mnist()  # fails loudly (with the fix) if the dataset is not installed


@pytest.fixture(scope="session")
def fashion_slice(fashion_dir):
    """The first 2,000 Fashion-MNIST training images and labels (real data, small)."""
    from ganpipe.decoders import read_idx

    x, _ = read_idx(fashion_dir / "train-images-idx3-ubyte.gz")
    y, _ = read_idx(fashion_dir / "train-labels-idx1-ubyte.gz")
    return x[:2000].copy(), y[:2000].astype(np.int64)


def write_idx(path: Path, arr: np.ndarray, gz: bool = True) -> Path:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    data = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def write_png(path: Path, arr: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.squeeze() if arr.ndim == 3 and arr.shape[-1] == 1 else arr).save(path)
    return path


@pytest.fixture
def class_folder(tmp_path, fashion_slice) -> Path:
    """An image folder with one subfolder per class, made of real Fashion-MNIST images as PNG/JPEG."""
    x, y = fashion_slice
    root = tmp_path / "imgs"
    for name, label in (("bag", 8), ("sneaker", 7), ("trouser", 1)):
        for i, idx in enumerate(np.flatnonzero(y == label)[:12]):
            suffix = ".jpg" if i % 4 == 0 else ".png"
            write_png(root / name / f"{i:03d}{suffix}", x[idx])
    return root


def run_stage_in(workdir: Path, stage: str, params: dict, capsys) -> tuple[int, str]:
    """Run ``stages/<stage>.py`` in-process with ``workdir`` as the working directory."""
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cwd = os.getcwd()
    os.chdir(workdir)
    code = 0
    try:
        runpy.run_path(str(REPO / "stages" / f"{stage}.py"), run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(cwd)
    return code, capsys.readouterr().err


@pytest.fixture
def run_prepare(tmp_path, capsys):
    """Run the prepare stage in tmp_path with ``prepare`` params overridden; returns (exit code, stderr)."""

    def run(**overrides):
        params = default_params()
        params["prepare"].update(overrides)
        return run_stage_in(tmp_path, "prepare", params, capsys)

    return run


# ---------------------------------------------------------------------------------------------
# real DVC in a temporary git repository

PROJECT_FILES = ["dvc.yaml", "params.yaml", "stages", "ganpipe", "profiles", "data/raw", ".dvc/config", ".dvc/plots",
                 ".dvcignore", ".gitignore"]


def sh(cmd: list[str], cwd: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    # as in an activated venv: `dvc queue` workers start `dvc` by name
    path = f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return sh([str(Path(sys.prefix) / "bin" / "dvc"), *args], cwd, check)


@pytest.fixture
def dvc_repo(tmp_path) -> Path:
    """A git repo holding a copy of the project (code, dvc.yaml, params.yaml, DVC config), committed."""
    return make_repo(tmp_path)


def make_repo(base: Path) -> Path:
    repo = base / "repo"
    repo.mkdir()
    for name in PROJECT_FILES:
        src, dst = REPO / name, repo / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    (repo / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    os.symlink(sys.prefix, repo / ".venv")  # stage commands run .venv/bin/python, as in the real repo
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["git", "config", "user.email", "ci@ganpipe.invalid"], repo)
    sh(["git", "config", "user.name", "ganpipe tests"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "project"], repo)
    return repo


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One tiny-profile `dvc repro` of the whole pipeline in a fresh git repo (committed params, outputs
    not committed), made once per test run: modules take their own copy (:func:`copy_repo`). Under
    pytest-xdist the first worker that needs it makes it in the run's shared temporary folder (under a
    file lock) and the others wait for it and reuse it, so the run is made once, not once per worker."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return _tiny_run(tmp_path_factory.mktemp("tiny-run"))
    from filelock import FileLock  # DVC's own dependency

    shared = tmp_path_factory.getbasetemp().parent  # this run's folder, above every worker's own
    with FileLock(str(shared / "tiny-run.lock")):
        base, record = shared / "tiny-run", shared / "tiny-run.json"
        if record.exists():
            out = json.loads(record.read_text())
            return base / "repo", subprocess.CompletedProcess(out["args"], 0, out["stdout"], out["stderr"])
        base.mkdir()
        repo, out = _tiny_run(base)
        record.write_text(json.dumps({"args": out.args, "stdout": out.stdout, "stderr": out.stderr}))
        return repo, out


def _tiny_run(base: Path):
    repo = make_repo(base)
    tiny_pipeline_params(repo)
    sh(["git", "commit", "-qam", "tiny profile"], repo)
    return repo, dvc("repro", cwd=repo)


def copy_repo(src: Path, base: Path) -> Path:
    """A copy of repo ``src`` (git history, DVC cache and outputs; not DVC's locks and state) at ``base/repo``."""
    dst = base / "repo"
    shutil.copytree(src, dst, symlinks=True,
                    ignore=lambda d, names: ["tmp"] if Path(d).name == ".dvc" and "tmp" in names else [])
    return dst


def set_params(repo: Path, section: str, **values) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


# ---------------------------------------------------------------------------------------------
# tiny training profiles

TINY_MODEL = dict(arch="dcgan", loss="ns", latent_dim=16, g_width=16, d_width=16, spectral_norm=False,
                  conditional=False, gp_weight=10.0, r1_gamma=0.0, r2_gamma=0.0, reg_interval=16, critic_steps=1)
TINY_TRAIN = dict(batch_size=32, epochs=2, kimg=None, max_steps=None, g_lr=2e-4, d_lr=2e-4, beta1=0.5, beta2=0.999, lr_schedule="constant",
                  ema_decay=0.99, ema_rampup=0.05, augment=[], augment_p=1.0, ada_target=0.6, ada_kimg=100.0,
                  checkpoint_every=10, eval_every=0.0, eval_samples=2000, keep="last", backend="auto", strategy="default",
                  precision="float32", jit_compile=False, steps_per_execution=1, deterministic=True, sample_grid=4)


def train_as_on_a_gpu(monkeypatch) -> str:
    """From here on, ``training.train`` runs under the strategy ``train.strategy: default`` gives a GPU
    machine (``OneDeviceStrategy``, the input prefetched onto the device), with the CPU standing in for
    the GPU; returns that device's name."""
    import tensorflow as tf

    from ganpipe import distribute, gan_tf

    cpu = tf.config.list_logical_devices("CPU")[0].name
    monkeypatch.setattr(gan_tf, "make_strategy", lambda kind: distribute.make_strategy(kind, gpus=[cpu]))
    return cpu


def tiny_cfgs(model: dict | None = None, train: dict | None = None):
    from ganpipe import params

    return (params.from_dict(params.Model, TINY_MODEL | (model or {})),
            params.from_dict(params.Train, TINY_TRAIN | (train or {})))


def tiny_pipeline_params(repo: Path) -> None:
    """The tests' tiny profile, ``profiles/tiny.yaml`` (the README's ``ganpipe exp tiny``): 2,048 real
    Fashion-MNIST images, 256 steps of a small DCGAN."""
    from ganpipe.profiles import load_profile

    for section, values in load_profile("tiny", REPO).items():
        set_params(repo, section, **values)
