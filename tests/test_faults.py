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


# ------------------------------------------------------------------------------ interruptions


class _Stderr:
    """A child's stderr read in the background (tqdm writes \\r, not lines)."""

    def __init__(self, proc):
        import threading

        self.text = ""
        self._t = threading.Thread(target=self._pump, args=(proc,), daemon=True)
        self._t.start()

    def _pump(self, proc):
        for chunk in iter(lambda: proc.stderr.read1(4096), b""):
            self.text += chunk.decode(errors="replace")

    def wait_for(self, needle: str, timeout: float) -> None:
        import re

        self.wait_for_match(re.escape(needle), timeout)

    def wait_for_match(self, pattern: str, timeout: float) -> None:
        import re
        import time

        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            assert time.monotonic() < deadline, f"{pattern!r} never matched: {self.text[-500:]!r}"
            time.sleep(0.05)

    def done(self) -> str:
        self._t.join(timeout=30)
        return self.text


@pytest.mark.parametrize("sig, code, last", [("SIGINT", 130, "interrupted"),
                                             ("SIGTERM", 143, "terminated (SIGTERM); previous outputs are unchanged")])
def test_ctrl_c_or_sigterm_in_prepares_worker_pool_leaves_no_worker_and_no_output(tmp_path, sig, code, last):
    """Ctrl-C reaches the whole process group (workers too), SIGTERM the stage alone: either way one line,
    no traceback from a worker, no worker left running, no prepared data and no temporary file."""
    import signal
    import time

    import numpy as np
    import psutil
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(3):
        (tmp_path / "imgs" / f"c{c}").mkdir(parents=True)
        first = tmp_path / "imgs" / f"c{c}" / "0.png"
        Image.fromarray(rng.integers(0, 256, (320, 288, 3), dtype=np.uint8)).save(first)
        for i in range(1, 3000):  # links to one large noisy PNG: quick to write, tens of seconds to decode,
            os.link(first, first.with_name(f"{i}.png"))  # so the signal lands mid-pool on a busy machine too
    work = tmp_path / "w"
    work.mkdir()
    params = default_params()
    params["prepare"] |= {"source": f"images:{tmp_path / 'imgs'}"}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # SIG_DFL for SIGINT, as in a terminal's foreground job: a suite started from a background job (`make test &`)
    # inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler (the stage ran to its end)
    proc = subprocess.Popen([sys.executable, str(REPO / "stages/prepare.py")], cwd=work, stderr=subprocess.PIPE,
                            env=os.environ | {"PYTHONPATH": str(REPO)}, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    err = _Stderr(proc)
    err.wait_for("img/s", 120)
    err.wait_for_match(r"\| *[1-9]\d*/9000 ", 120)  # the pool has decoded a first chunk, not all of them
    assert "9000/9000" not in err.text, err.text[-300:]
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert len(workers) >= 2, workers  # the forkserver and its pool
    if sig == "SIGINT":
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == code, err.done()[-800:]
    text = err.done()
    assert text.rstrip("\n").rsplit("\n", 1)[-1] == last, text[-800:]
    assert "Traceback" not in text and "Process " not in text and "leaked" not in text, text[-800:]
    time.sleep(0.5)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    left = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file() and p.name != "params.yaml")
    assert left == [] and not (work / "data" / "prepared").exists(), left


def test_sigterm_during_evaluate_keeps_the_previous_metrics(tiny_run, tmp_path):
    """A stopped queue or a CI timeout sends SIGTERM: evaluate stops with one line and exit 143, the
    committed metrics unchanged and no temporary file beside them."""
    import signal

    from tests.conftest import copy_repo

    repo = copy_repo(tiny_run[0], tmp_path)
    before = {p: (repo / p).read_bytes() for p in ("metrics/eval.json", "metrics/eval_details.json")}
    proc = subprocess.Popen([sys.executable, "stages/evaluate.py"], cwd=repo, stderr=subprocess.PIPE,
                            env=os.environ | {"PYTHONPATH": str(repo)})
    err = _Stderr(proc)
    err.wait_for("evaluate: ", 300)  # its progress bar: minutes of scoring under way
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    text = err.done()
    assert text.rstrip("\n").rsplit("\n", 1)[-1] == "terminated (SIGTERM); previous outputs are unchanged", text[-800:]
    assert "Traceback" not in text
    assert {p: (repo / p).read_bytes() for p in before} == before
    assert not [p for p in (repo / "metrics").iterdir() if p.name.startswith(".")]


def test_a_second_dvc_repro_while_one_runs_is_refused_and_the_first_finishes(dvc_repo):
    """DVC's repository lock: the second run stops at once with DVC's message; the first is unharmed."""
    from tests.conftest import dvc

    env = os.environ | {"PATH": f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    first = subprocess.Popen([str(Path(sys.prefix) / "bin" / "dvc"), "repro", "prepare"], cwd=dvc_repo,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = _Stderr.__new__(_Stderr)  # the same background reader, on stdout
    out.text = ""
    import threading

    out._t = threading.Thread(target=lambda: [setattr(out, "text", out.text + c.decode(errors="replace"))
                                              for c in iter(lambda: first.stdout.read1(4096), b"")], daemon=True)
    out._t.start()
    out.wait_for("Running stage 'prepare'", 120)
    second = dvc("repro", cwd=dvc_repo, check=False)
    said = second.stdout + second.stderr  # DVC's lock of the repo, or of the stage's outputs (rwlock)
    assert second.returncode != 0 and ("Unable to acquire lock" in said or "is busy" in said), said
    assert first.wait(timeout=600) == 0, out.done()[-2000:]
    assert "up to date" in dvc("status", "prepare", cwd=dvc_repo).stdout
