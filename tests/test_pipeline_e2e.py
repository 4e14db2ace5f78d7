"""The whole pipeline (prepare -> features -> train -> generate -> evaluate) through real `dvc repro`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ganpipe.results import DETAILS, EVAL, merge
from tests.conftest import copy_repo, dvc, make_repo, set_params, sh, tiny_pipeline_params

pytestmark = pytest.mark.slow


def eval_result(repo: Path) -> dict:
    """The evaluate stage's whole result: the headline file and the details beside it."""
    return merge((repo / EVAL).read_text(), (repo / DETAILS).read_text())


def ran(stdout: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", stdout))


@pytest.fixture(scope="module")
def pipeline(tiny_run, tmp_path_factory):
    return copy_repo(tiny_run[0], tmp_path_factory.mktemp("e2e")), tiny_run[1]


def test_full_pipeline_runs_every_stage(pipeline):
    repo, out = pipeline
    assert ran(out.stdout) == {"prepare", "features", "train", "generate", "evaluate"}
    for f in ("data/generated/samples.npz", "data/generated/plots/samples.png",
              "data/generated/plots/interpolation.png", "models/classifier.keras", "metrics/eval.json",
              "metrics/eval_details.json"):
        assert (repo / f).is_file(), f
    assert json.loads((repo / "metrics/features.json").read_text())["test_accuracy"] > 0.6


def test_trained_generator_lies_between_floor_and_ceiling(pipeline):
    repo, _ = pipeline
    m = eval_result(repo)
    floor, ceiling = m["reference"]["floor_real_train"], m["reference"]["ceiling_untrained_generator"]
    for key in ("fd_clf", "kid_clf_mean"):
        assert floor[key] < m[key] < ceiling[key], (key, floor[key], m[key], ceiling[key])
    assert m["fd_clf_ci95_lo"] <= m["fd_clf"] <= m["fd_clf_ci95_hi"]
    assert 0 <= m["precision_clf"] <= 1 and 0 <= m["recall_clf"] <= 1
    assert m["protocol"]["n_generated"] == 1000 and m["protocol"]["extractor"] == "classifier"
    assert m["protocol"]["n_real"] == 512 and m["protocol"]["kid_subset_size"] == 250
    # coverage: an untrained generator covers almost none of the real k-NN balls (k-NN precision says ~1)
    cov = "coverage_clf"
    assert ceiling[cov] < 0.05 < m[cov] < floor[cov]
    # FD-infinity removes the finite-sample bias: the floor's interval reaches 0, the plain FD's does not
    assert floor["fd_inf_clf_ci95_lo"] <= 0 < floor["fd_clf_ci95_lo"]


def test_ganpipe_evaluate_scores_a_png_folder_and_an_npz_with_the_stage_protocol(pipeline, tmp_path):
    """Anyone's samples, scored like the evaluate stage: the stage's own samples as .npz give the stage's
    numbers exactly; real images as 64x64 RGB PNGs (resized, converted) score near the floor."""
    import subprocess
    import sys

    from ganpipe.splits import load_split
    from tests.conftest import write_png

    repo, _ = pipeline
    ganpipe = str(Path(sys.prefix) / "bin" / "ganpipe")
    m = eval_result(repo)
    out = subprocess.run([ganpipe, "evaluate", "--samples", "data/generated/samples.npz", "--json", str(tmp_path / "s.json")],
                         cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    scored = json.loads((tmp_path / "s.json").read_text())
    for key in ("fd_clf", "fd_inf_clf", "kid_clf_mean", "precision_clf", "coverage_clf", "clf_score"):
        assert scored[key] == m[key], key
        assert re.search(rf"^{key} [0-9.e+-]+", out.stdout, re.M), out.stdout
    assert {k: v for k, v in scored["protocol"].items() if k != "samples"} == m["protocol"]

    train_x = load_split(repo / "data/prepared/train").x
    for i in range(600):
        write_png(tmp_path / "pngs" / f"{i:04d}.png", np.repeat(np.kron(train_x[i], np.ones((2, 2, 1), np.uint8)), 3, -1))
    out = subprocess.run([ganpipe, "evaluate", "--samples", str(tmp_path / "pngs")], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    fd = float(re.search(r"^fd_clf ([0-9.e+-]+)", out.stdout, re.M).group(1))
    assert fd < 0.2 * m["fd_clf"] and "600 samples vs 512 real" in out.stdout
    bad = subprocess.run([ganpipe, "evaluate", "--samples", str(tmp_path / "nothing")], cwd=repo, capture_output=True, text=True)
    assert bad.returncode == 1 and "nothing: not a folder of PNG/JPEG images or an .npz" in bad.stderr
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 28, 28, 1), np.uint8))
    bad = subprocess.run([ganpipe, "evaluate", "--samples", str(tmp_path / "empty.npz")], cwd=repo, capture_output=True, text=True)
    assert bad.returncode == 1 and f"error: {tmp_path / 'empty.npz'}: holds no images (samples 'x' is empty)\n" in bad.stderr
    bad = subprocess.run([ganpipe, "evaluate", "--samples", "data/generated/samples.npz", "--json", str(tmp_path)],
                         cwd=repo, capture_output=True, text=True)
    assert bad.returncode == 1 and f"error: --json {tmp_path}: is a folder; name a file to write\n" in bad.stderr


def test_second_repro_runs_nothing_and_param_change_reruns_downstream_only(pipeline):
    repo, _ = pipeline
    assert ran(dvc("repro", cwd=repo).stdout) == set()
    set_params(repo, "generate", n_samples=1200)
    assert ran(dvc("repro", cwd=repo).stdout) == {"generate", "evaluate"}
    m = eval_result(repo)
    assert m["protocol"]["n_generated"] == 1200 and "fd_clf" in m  # the count is in the protocol, not the name
    set_params(repo, "train", epochs=9)
    out = dvc("repro", cwd=repo)
    assert ran(out.stdout) == {"train", "generate", "evaluate"}
    # a longer run continues from the previous run's final checkpoint
    assert "resuming from checkpoints/ckpt.npz at step 256" in out.stdout + out.stderr


def test_an_unlabelled_folder_runs_through_dvc_repro(tmp_path, fashion_slice):
    """No labels: the features stage trains its extractor on rotations, and every stage runs."""
    from tests.conftest import write_png

    x, _ = fashion_slice
    repo = make_repo(tmp_path)
    for i in range(400):
        write_png(repo / "data/raw/flat" / f"{i:04d}.png", x[i])
    tiny_pipeline_params(repo)
    set_params(repo, "prepare", source="images:data/raw/flat", max_train=None, max_test=None, test_fraction=0.5)
    set_params(repo, "features", epochs=2)
    set_params(repo, "train", epochs=None, kimg=3.2, eval_every=1.6, eval_samples=300)
    set_params(repo, "generate", n_samples=300)
    set_params(repo, "evaluate", kid_subset_size=100)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "unlabelled folder"], repo)
    out = dvc("repro", cwd=repo)
    assert ran(out.stdout) == {"prepare", "features", "train", "generate", "evaluate"}
    assert "classifier (rotation) test accuracy" in out.stdout
    assert set(json.loads((repo / "metrics/features.json").read_text())) == {"test_accuracy"}  # metrics only
    m = eval_result(repo)
    assert m["protocol"]["extractor_task"] == "rotation" and not any(k.startswith("clf_score") for k in m)
    assert m["fd_clf"] < m["reference"]["ceiling_untrained_generator"]["fd_clf"]
