"""Your own images with the default params: the prepared size and channels chosen from the data, and an
evaluation that works for a folder of a few hundred images (real statistics from every image)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganpipe import params
from ganpipe.features import reference_images, reference_split
from ganpipe.prepare import FOLDER_IMAGE_SIZE, prepare
from ganpipe.splits import load_split
from tests.conftest import REPO, default_params, dvc, set_params, sh

sys.path.insert(0, str(REPO / "bench"))
from sets import photo_crops, write_folder  # noqa: E402


def prep(tmp_path, source: str, **overrides):
    cfg = params.from_dict(params.Prepare, default_params()["prepare"] | {"source": source, **overrides})
    m = prepare(cfg, 0, tmp_path / "prepared", tmp_path / "data.json", workers=1)
    return m, load_split(tmp_path / "prepared/train")


def _folder(root: Path, images: dict[str, Image.Image]) -> Path:
    for name, im in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        im.save(root / name)
    return root


def test_defaults_are_auto_and_fashion_mnist_keeps_its_28px_grey():
    prep_defaults = default_params()["prepare"]
    assert prep_defaults["image_size"] == "auto" and prep_defaults["channels"] == "auto"


def test_auto_channels_follow_the_images_and_folders_get_the_folder_size(tmp_path):
    rng = np.random.default_rng(0)
    grey = {f"g{i}.png": Image.fromarray(rng.integers(0, 255, (40, 30), np.uint8)) for i in range(6)}
    palette = Image.fromarray(rng.integers(0, 255, (40, 30), np.uint8)).convert("P")  # a grey palette
    m, split = prep(tmp_path / "a", f"images:{_folder(tmp_path / 'grey', grey | {'p.png': palette})}")
    assert m["image_shape"] == [FOLDER_IMAGE_SIZE, FOLDER_IMAGE_SIZE, 1] and split.x.shape[1:] == (32, 32, 1)
    colour = Image.fromarray(rng.integers(0, 255, (25, 50, 3), np.uint8))
    m, split = prep(tmp_path / "b", f"images:{_folder(tmp_path / 'mixed', grey | {'c.jpg': colour})}")
    assert m["image_shape"] == [32, 32, 3]  # one colour image makes the set RGB
    m, _ = prep(tmp_path / "c", f"images:{tmp_path / 'mixed'}", channels=1, image_size=16)
    assert m["image_shape"] == [16, 16, 1]  # set values win


def test_auto_size_of_an_array_source_is_its_own_short_side(tmp_path):
    from ganpipe.io import save_npz

    x = np.random.default_rng(0).integers(0, 255, (20, 30, 42, 3), np.uint8)
    save_npz(tmp_path / "a.npz", x=x)
    m, split = prep(tmp_path / "p", f"npz:{tmp_path / 'a.npz'}")
    assert m["image_shape"] == [28, 28, 3]  # 30, rounded down to a multiple of 4


def test_reference_auto_takes_the_test_split_only_when_it_is_large():
    assert reference_split("auto", 10000, 128) == "test"  # Fashion-MNIST: unchanged protocol
    assert reference_split("auto", 60, 128) == "all"
    assert reference_split("test", 60, 128) == "test" and reference_split("all", 10**5, 128) == "all"
    a, b = np.arange(5 * 2).reshape(5, 2, 1, 1), np.arange(100, 106).reshape(3, 2, 1, 1)
    both = reference_images("all", a, b)
    assert len(both) == 8 and np.array_equal(both[3:7], np.concatenate([a, b])[3:7])
    assert reference_images("test", a, b) is b


@pytest.mark.slow
def test_a_folder_of_300_odd_sized_photos_runs_with_only_the_source_set(dvc_repo):
    """`dvc repro` with `prepare.source` set and every other data, features and evaluate param at its
    default (training and the sample count shortened for the suite): 32 px RGB, FD and KID reported."""
    images, labels = photo_crops(300, 0)
    assert len({im.shape for im in images}) > 50  # odd, mixed sizes
    write_folder(dvc_repo / "data/raw/photos", images, labels)
    set_params(dvc_repo, "prepare", source="images:data/raw/photos")
    set_params(dvc_repo, "train", max_steps=8)
    set_params(dvc_repo, "generate", n_samples=1000)
    sh(["git", "add", "-A"], dvc_repo)
    sh(["git", "commit", "-qm", "my photos"], dvc_repo)
    dvc("repro", cwd=dvc_repo)
    data = json.loads((dvc_repo / "metrics/data.json").read_text())
    assert data["image_shape"] == [32, 32, 3] and data["train"]["count"] + data["test"]["count"] == 300
    assert data["test"]["count"] == 60  # too few alone for 128-dimensional features
    train = json.loads((dvc_repo / "metrics/train.json").read_text())
    assert train["auto"] == {"model.spectral_norm": True, "train.g_lr": 0.001, "train.d_lr": 0.001}  # RGB's recipe
    ev = json.loads((dvc_repo / "metrics/eval.json").read_text())
    fd, kid = ev["fd_clf"], ev["kid_clf_mean"]
    assert np.isfinite(fd) and fd > 0 and np.isfinite(kid)
    details = json.loads((dvc_repo / "metrics/eval_details.json").read_text())
    assert details["protocol"]["real_split"] == "all" and details["protocol"]["n_real"] == 300
