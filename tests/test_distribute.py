"""train.strategy: a mirrored run on 2 logical CPU devices, and a 2-process MultiWorkerMirroredStrategy run
on localhost, compute what one device computes.

Tolerance: per-epoch mean losses agree to 1e-3 (relative) and the trained generator's images to 1e-3
(absolute). Only the order of floating-point reductions differs (per-replica sums, then an all-reduce);
measured here after 18 steps: losses within 6e-5 relative, images within 4e-5.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from ganpipe.distribute import replica_slices
from ganpipe.errors import GanpipeError
from tests.conftest import REPO

LOSS_RTOL, IMAGE_ATOL = 1e-3, 1e-3


def _run(strategy, out, model, train, env=None, wait=True):
    cmd = [sys.executable, "-m", "tests.distributed_run", strategy, str(out), json.dumps(model), json.dumps(train)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ | (env or {}))
    return _result(proc) if wait else proc


def _result(proc):
    out, err = proc.communicate(timeout=600)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, err[-4000:]
    return json.loads(lines[0][7:])


def _assert_same(single, multi):
    assert len(single["history"]) == len(multi["history"]) > 0
    for a, b in zip(single["history"], multi["history"]):
        assert a["step"] == b["step"]
        for k in ("d_loss", "g_loss", "gp", "rt", "augment_p"):
            if k in a:
                assert b[k] == pytest.approx(a[k], rel=LOSS_RTOL), (k, a["epoch"])
    np.testing.assert_allclose(multi["images"], single["images"], atol=IMAGE_ATOL)


@pytest.mark.parametrize("model,train", [
    # batch norm in G, labels, adaptive augmentation with p moving (6 adjustments of 0.128)
    ({"conditional": True}, {"augment": ["translation", "cutout", "brightness", "saturation", "contrast"],
                             "augment_p": "adaptive", "ada_kimg": 1.0}),
    ({"loss": "wgan-gp", "critic_steps": 2}, {}),  # gradient penalty, several critic steps
], ids=["ns-conditional-augment", "wgan-gp"])
def test_mirrored_on_two_cpu_devices_matches_one_device(tmp_path, model, train):
    train = train | {"batch_size": 32, "epochs": 3}
    env = {"GANPIPE_CPU_DEVICES": "2"}
    single = _run("default", tmp_path / "single", model, train, env)
    mirrored = _run("mirrored", tmp_path / "mirrored", model, train, env)
    _assert_same(single, mirrored)
    if "augment" in train:
        assert single["history"][-1]["augment_p"] > 0  # the controller did move p


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_multi_worker_on_two_local_processes_matches_one_device(tmp_path):
    model, train = {"conditional": True}, {"augment": ["translation"], "batch_size": 32, "epochs": 2}
    workers = [f"localhost:{_free_port()}" for _ in range(2)]
    procs = [_run("multi_worker", tmp_path / f"worker{i}", model, train, wait=False,
                  env={"TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})})
             for i in range(2)]
    results = [_result(p) for p in procs]
    single = _run("default", tmp_path / "single", model, train)
    for r in results:
        _assert_same(single, r)


def test_replica_slices_cut_each_global_batch_in_replica_order():
    a = np.arange(8)  # one step's global batch of 8
    # 4 replicas over 2 workers: worker 1 holds replicas 2 and 3
    s = replica_slices({"a": a}, replicas=4, workers=2, worker=1)["a"]
    assert np.asarray(s).tolist() == [[4, 5], [6, 7]]
    one = replica_slices({"a": a}, replicas=2, workers=1, worker=0)["a"]
    assert np.asarray(one).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(GanpipeError, match="train.batch_size: 8 is not divisible by the 3 replicas"):
        replica_slices({"a": a}, replicas=3, workers=1, worker=0)


def test_multi_worker_without_tf_config_names_the_key(monkeypatch):
    from ganpipe.distribute import make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(GanpipeError, match="train.strategy: multi_worker needs TF_CONFIG"):
        make_strategy("multi_worker")


def test_multi_worker_refuses_workers_that_resume_from_different_steps(tmp_path):
    model, train = {}, {"batch_size": 32, "epochs": 1}
    workers = [f"localhost:{_free_port()}" for _ in range(2)]
    config = [{"TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}
              for i in range(2)]
    procs = [_run("multi_worker", tmp_path / f"worker{i}", model, train, env=config[i], wait=False) for i in range(2)]
    [_result(p) for p in procs]
    # worker 1 loses its checkpoint; raising `epochs` makes worker 0 resume at step 6 and worker 1 start at 0
    (tmp_path / "worker1" / "ckpt" / "ckpt.npz").unlink()
    workers = [f"localhost:{_free_port()}" for _ in range(2)]
    config = [{"TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}
              for i in range(2)]
    procs = [_run("multi_worker", tmp_path / f"worker{i}", model, train | {"epochs": 2}, env=config[i], wait=False)
             for i in range(2)]
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode != 0 and "RESULT" not in out
        assert f"the workers start from different steps (this one from step {6 if i == 0 else 0}" in err, err[-2000:]


def test_mirrored_without_a_gpu_is_refused_in_one_line(monkeypatch):
    import tensorflow as tf

    from ganpipe.distribute import make_strategy
    from ganpipe.errors import GanpipeError

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    monkeypatch.delenv("GANPIPE_CPU_DEVICES", raising=False)
    with pytest.raises(GanpipeError, match=r"^train.strategy: mirrored found no GPU .*GANPIPE_CPU_DEVICES=N"):
        make_strategy("mirrored")


def test_default_strategy_is_one_device_on_the_first_gpu_and_none_on_a_cpu():
    """On a GPU machine ``train.strategy: default`` is ``OneDeviceStrategy`` on the first GPU (its input is
    prefetched onto the GPU); without a GPU, no strategy (the same bytes either way: tests/test_training.py
    trains under this strategy with the CPU standing in for the GPU)."""
    import tensorflow as tf

    from ganpipe.distribute import make_strategy

    one = make_strategy("default", gpus=["/device:GPU:0", "/device:GPU:1"])
    assert isinstance(one, tf.distribute.OneDeviceStrategy)
    assert one.extended.worker_devices == ("/job:localhost/replica:0/task:0/device:GPU:0",)
    assert make_strategy("default", gpus=[]) is None
    if not tf.config.list_logical_devices("GPU"):
        assert make_strategy("default") is None  # this machine: the CPU, no strategy
