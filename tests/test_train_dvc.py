"""The train stage through real `dvc repro`: tiny profile, caching, SIGKILL and resume, identical outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from ganpipe.saving import load_model
from tests.conftest import copy_repo, dvc, make_repo, sh, tiny_pipeline_params

pytestmark = pytest.mark.slow

TIMING = {"metrics/train.json"}  # wall seconds and img/s: the only outputs allowed to differ between runs


def lock_hashes(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    out = {}
    for stage in lock["stages"].values():
        for o in stage.get("outs", []):
            out[o["path"]] = o["md5"]
    return out


def ckpt_step(repo: Path) -> int:
    from ganpipe.io import load_npz

    try:
        return json.loads(load_npz(repo / "checkpoints/ckpt.npz")["meta"].item())["step"]
    except Exception:
        return -1


@pytest.fixture(scope="module")
def uninterrupted(tiny_run, tmp_path_factory):
    """One uninterrupted tiny-profile `dvc repro` of the whole pipeline (a copy of the session's)."""
    return copy_repo(tiny_run[0], tmp_path_factory.mktemp("a")), tiny_run[1]


def _new_repo(base: Path) -> Path:
    repo = make_repo(base)
    tiny_pipeline_params(repo)
    sh(["git", "commit", "-qam", "tiny profile"], repo)
    return repo


def test_tiny_profile_trains_through_dvc(uninterrupted):
    repo, out = uninterrupted
    assert "Running stage 'prepare'" in out.stdout and "Running stage 'train'" in out.stdout
    g = load_model(repo / "models/generator.keras")
    assert g.output_shape == (None, 28, 28, 1)
    m = json.loads((repo / "metrics/train.json").read_text())
    assert m["steps"] == 256 and m["images_seen"] == 256 * 64 and m["img_per_sec"] > 0
    assert np.isfinite(m["d_loss"]) and np.isfinite(m["g_loss"])
    grid_steps = sorted(int(p.stem) for p in (repo / "metrics/train/plots/images/samples").glob("*.png"))
    assert len(grid_steps) == 8 and grid_steps[-1] == 256  # one grid per epoch, named by its step (DVCLive)
    shown = json.loads(dvc("metrics", "show", "--json", cwd=repo).stdout)
    assert "metrics/eval.json" in json.dumps(shown)  # train.json is in git, but not a metric column
    assert "metrics/train.json" not in json.dumps(shown)
    again = dvc("repro", "train", cwd=repo)
    assert "Running stage" not in again.stdout


def test_a_change_in_the_decoders_changes_only_prepare(tiny_run, tmp_path):
    """Every stage reads its params, and params checks prepare.source against the source registry; the
    decoders behind it are prepare's alone, so a comment there changes prepare's dependencies and no
    other stage's (before the split, all five stages were listed)."""
    repo = copy_repo(tiny_run[0], tmp_path)
    assert json.loads(dvc("status", "--json", cwd=repo).stdout) == {}
    with open(repo / "ganpipe/decoders.py", "a") as f:
        f.write("# a comment\n")
    status = json.loads(dvc("status", "--json", cwd=repo).stdout)
    assert set(status) == {"prepare"}, status
    assert "ganpipe/decoders.py" in json.dumps(status["prepare"])


def _stage_running(stage: str, group: int) -> bool:
    """Whether a process of process group ``group`` runs `stages/<stage>.py` (the stage's own command,
    not DVC around it)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            pgrp = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
            if pgrp == group and f"stages/{stage}.py".encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except (OSError, IndexError, ValueError):
            pass
    return False


def _kill_during(repo: Path, stage: str, ready, rng) -> None:
    """Start `dvc repro STAGE`, wait until ``ready(process group)``, then a random moment more, and
    SIGKILL it all."""
    proc = subprocess.Popen([str(Path(sys.prefix) / "bin" / "dvc"), "repro", "--single-item", stage], cwd=repo,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not ready(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(rng.uniform(0, 0.5))
    assert proc.poll() is None, f"{stage} finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_sigkill_in_every_stage_then_repro_recovers_identical_outputs(uninterrupted, tmp_path):
    """SIGKILL each stage at a random moment while it runs; `dvc repro` then finishes the pipeline with
    the uninterrupted run's outputs, byte for byte (train resumes from its checkpoint). The two runs are in
    different repos, so this is also the check that two runs of the same params give the same bytes."""
    ref, _ = uninterrupted
    repo = _new_repo(tmp_path)
    rng = np.random.default_rng(int(time.time()))
    for stage in ("prepare", "features"):
        _kill_during(repo, stage, lambda group, s=stage: _stage_running(s, group), rng)
        dvc("repro", "--single-item", stage, cwd=repo)
    _kill_during(repo, "train", lambda group: ckpt_step(repo) >= 40, rng)
    killed_at = ckpt_step(repo)
    assert 40 <= killed_at < 256, f"checkpoint at step {killed_at}: the run was not interrupted mid-training"
    assert not (repo / "models/generator.keras").exists()
    out = dvc("repro", "train", cwd=repo)
    assert f"resuming from checkpoints/ckpt.npz at step {killed_at}" in out.stdout + out.stderr
    assert (repo / "models/generator.keras").read_bytes() == (ref / "models/generator.keras").read_bytes()
    for stage in ("generate", "evaluate"):
        _kill_during(repo, stage, lambda group, s=stage: _stage_running(s, group), rng)
        dvc("repro", "--single-item", stage, cwd=repo)
    assert ".tmp" not in sh(["git", "status", "--porcelain", "--untracked-files=all"], repo).stdout
    assert "Running stage" not in dvc("repro", cwd=repo).stdout
    a, b = lock_hashes(ref), lock_hashes(repo)
    assert a.keys() == b.keys()
    differ = {k for k in a if a[k] != b[k]}
    assert differ <= TIMING, f"outputs differ between the interrupted and the uninterrupted run: {differ}"
