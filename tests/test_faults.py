"""Faults from outside: a full disk and a read-only output folder (real tmpfs mounts; skipped where this
user cannot mount) stop a stage with one line and leave the previous outputs as they were."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, default_params


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.decode().strip()})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _prepare(cwd: Path, **overrides) -> subprocess.CompletedProcess:
    params = default_params()
    params["prepare"] |= overrides
    (cwd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "stages/prepare.py")], cwd=cwd, capture_output=True,
                          text=True, env=env)


def _digests(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "params.yaml"}


def test_a_full_disk_is_one_line_and_keeps_the_previous_outputs(tmpfs):
    assert _prepare(tmpfs, max_train=100, max_test=50).returncode == 0
    before = _digests(tmpfs)
    proc = _prepare(tmpfs, max_train=3000, max_test=500)  # 2.8 MB of images: more than the 1 MB disk
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: cannot write data/prepared: No space left on device")
    assert _digests(tmpfs) == before  # the previous outputs, and no temporary files


def test_a_read_only_output_folder_is_one_line_and_keeps_the_previous_outputs(tmpfs):
    assert _prepare(tmpfs, max_train=100, max_test=50).returncode == 0
    before = _digests(tmpfs)
    (tmpfs / "params.yaml").write_text("")  # written before the folder becomes read-only
    params = default_params()
    params["prepare"] |= {"max_train": 120, "max_test": 50}
    (tmpfs / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "stages/prepare.py")], cwd=tmpfs, capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: cannot write data/prepared:") and "Read-only file system" in proc.stderr
    assert _digests(tmpfs) == before
