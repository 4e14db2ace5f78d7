"""Real `dvc` in a temporary git repository: the pipeline as a user runs it."""

import json

import pytest

from ganpipe.splits import load_split
from tests.conftest import dvc, set_params, sh

pytestmark = pytest.mark.slow


def test_prepare_repro_is_cached_and_reruns_on_param_change(dvc_repo):
    set_params(dvc_repo, "prepare", max_train=500, max_test=100)
    out = dvc("repro", "prepare", cwd=dvc_repo)
    assert "Running stage 'prepare'" in out.stdout
    assert load_split(dvc_repo / "data/prepared/train").x.shape == (500, 28, 28, 1)
    lock1 = (dvc_repo / "dvc.lock").read_text()

    again = dvc("repro", "prepare", cwd=dvc_repo)
    assert "Running stage" not in again.stdout and "didn't change" in again.stdout
    assert "up to date" in dvc("status", "prepare", cwd=dvc_repo).stdout

    set_params(dvc_repo, "prepare", image_size=32)
    rerun = dvc("repro", "prepare", cwd=dvc_repo)
    assert "Running stage 'prepare'" in rerun.stdout
    assert load_split(dvc_repo / "data/prepared/train").x.shape == (500, 32, 32, 1)
    assert (dvc_repo / "dvc.lock").read_text() != lock1

    # the data summary (hashes, per-class counts) is an output, not a metric column of `dvc exp show`
    assert "data.json" not in dvc("metrics", "show", "--json", cwd=dvc_repo).stdout
    data = json.loads((dvc_repo / "metrics/data.json").read_text())
    assert data["image_shape"] == [32, 32, 1]
    # outputs are tracked by DVC's cache, not git (so that `prepare` keeps DVC's run-cache)
    status = sh(["git", "status", "--porcelain", "--untracked-files=all"], dvc_repo).stdout
    assert "data/prepared" not in status and "metrics/data.json" not in status
    # back to the first params: restored from the run-cache, not rerun
    set_params(dvc_repo, "prepare", image_size="auto")
    back = dvc("repro", "prepare", cwd=dvc_repo)
    assert "Running stage 'prepare'" not in back.stdout and "is cached - skipping run" in back.stdout, back.stdout
    assert (dvc_repo / "dvc.lock").read_text() == lock1


def test_failed_stage_reports_the_error_and_leaves_no_output(dvc_repo):
    set_params(dvc_repo, "prepare", source="npz:data/raw/missing.npz")
    out = dvc("repro", "prepare", cwd=dvc_repo, check=False)
    assert out.returncode != 0
    assert "data/raw/missing.npz: file not found" in out.stderr + out.stdout
    assert not (dvc_repo / "data/prepared").exists()
