"""Train tiny runs on Keras' JAX backend in one fresh process and print what they made as JSON.

Used by tests/test_jax.py (the test process runs Keras on TensorFlow, and Keras' backend is chosen once
per process):  python -m tests.jax_run OUT_DIR JOBS_JSON
JOBS_JSON: a list of {"name", "model", "train", "seed", "device_data_bytes"}; each job trains 256 real Fashion-MNIST images
into OUT_DIR/<name> (a job whose folder holds a checkpoint resumes from it).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from ganpipe import backend


def main(out: str, jobs: str) -> None:
    backend.use("jax")
    import numpy as np

    from ganpipe import gan_jax, training
    from ganpipe.decoders import load_fashion_mnist
    from ganpipe.models import label_classes
    from ganpipe.saving import load_model
    from tests.conftest import tiny_cfgs

    raw = load_fashion_mnist()
    x, y = raw.train.x[:256], raw.train.y[:256]
    results = {}
    for job in json.loads(jobs):
        mc, tc = tiny_cfgs(job.get("model"), {"backend": "jax"} | job.get("train", {}))
        d = Path(out) / job["name"]
        gan_jax.DEVICE_DATA_BYTES = job.get("device_data_bytes", 2 << 30)  # 0: batches gathered on the host
        log: list[str] = []
        m = training.train(x, y, 10, "digest", mc, tc, job.get("seed", 0), checkpoint_dir=d / "ckpt",
                           models_dir=d / "models", metrics_path=d / "train.json", live_dir=d / "live",
                           progress=False, log=log.append)
        g = load_model(d / "models" / "generator.keras")
        z, labels = training.fixed_noise(mc.latent_dim, 4, label_classes(mc, 10), 1)
        images = np.asarray(g([z, labels] if mc.conditional else z, training=False))
        results[job["name"]] = {"metrics": m, "log": log, "finite": bool(np.isfinite(images).all()
                                                                         and math.isfinite(m["d_loss"]))}
    print("RESULT " + json.dumps({"jobs": results, "tensorflow_modules": backend.tensorflow_modules()}))


if __name__ == "__main__":
    main(*sys.argv[1:])
