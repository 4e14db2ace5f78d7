"""A write killed midway leaves `.NAME.RANDOM.tmp` beside its target (``ganpipe.io.atomic_path``): neither
DVC (directory outputs such as the persistent checkpoints/) nor git may pick it up."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

from tests.conftest import REPO, dvc, sh


def test_a_killed_atomic_write_leaves_nothing_dvc_or_git_track(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in (".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, repo / name)
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["git", "config", "user.email", "ci@ganpipe.invalid"], repo)
    sh(["git", "config", "user.name", "ganpipe tests"], repo)
    dvc("init", "-q", cwd=repo)
    # a process killed with SIGKILL while atomic_path's temporary file exists
    writer = ("import os, sys, time; sys.path.insert(0, sys.argv[1]); from ganpipe.io import atomic_path\n"
              "with atomic_path('checkpoints/ckpt.npz') as tmp:\n"
              "    tmp.write_bytes(b'x' * 1000); print('written', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", writer, str(REPO)], cwd=repo, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "written"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stale = list((repo / "checkpoints").glob(".ckpt.npz.*.tmp"))
    assert len(stale) == 1  # what a killed write leaves
    (repo / "checkpoints" / "ckpt.npz").write_bytes(b"state")
    (repo / "metrics").mkdir()
    (repo / "metrics" / ".eval.json.abc123.tmp").write_text("{")
    dvc("add", "checkpoints", cwd=repo)
    entry = json.loads(next((repo / ".dvc" / "cache").rglob("*.dir")).read_text())
    assert [e["relpath"] for e in entry] == ["ckpt.npz"]
    status = sh(["git", "status", "--porcelain", "--untracked-files=all"], repo).stdout
    assert ".tmp" not in status, status
