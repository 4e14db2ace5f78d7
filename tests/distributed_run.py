"""Run the tiny training profile under one ``train.strategy`` and print what it learned as JSON.

Used by tests/test_distribute.py in fresh processes (logical CPU devices and TF_CONFIG must be set
before TensorFlow starts):  python -m tests.distributed_run STRATEGY OUT_DIR MODEL_JSON TRAIN_JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(strategy: str, out: str, model: str, train: str) -> None:
    import keras

    from keras.src.utils import traceback_utils

    traceback_utils.is_traceback_filtering_enabled = lambda: False
    from ganpipe import checkpoint, training
    from ganpipe.decoders import load_fashion_mnist
    from ganpipe.models import label_classes
    from ganpipe.saving import load_model
    from tests.conftest import tiny_cfgs

    raw = load_fashion_mnist()
    x, y = raw.train.x[:192], raw.train.y[:192]
    mc, tc = tiny_cfgs(json.loads(model), json.loads(train) | {"strategy": strategy})
    d = Path(out)
    m = training.train(x, y, 10, "digest", mc, tc, 0, checkpoint_dir=d / "ckpt", models_dir=d / "models",
                       metrics_path=d / "train.json", live_dir=d / "live", progress=False)
    ckpt, _ = checkpoint.read_checkpoint(d / "ckpt" / training.CHECKPOINT)
    g = load_model(d / "models" / "generator.keras")
    z, labels = training.fixed_noise(mc.latent_dim, 4, label_classes(mc, 10), 1)
    images = np.asarray(g([z, labels] if mc.conditional else z, training=False))
    print("RESULT " + json.dumps({"metrics": m, "history": ckpt.history, "images": images.ravel().tolist()}))


if __name__ == "__main__":
    main(*sys.argv[1:])
