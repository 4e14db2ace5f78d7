"""DVC stage `train`: read `base`, `model`, `train` params and data/prepared/train.npz; write models/,
checkpoints/ (persistent, for resuming), metrics/train.json and DVCLive logs under metrics/train/."""

from ganpipe import params
from ganpipe.data import load_split
from ganpipe.io import sha256_file
from ganpipe.stage import run_stage
from ganpipe.training import train

TRAIN = "data/prepared/train.npz"


def main() -> None:
    base = params.load("base")
    model_cfg = params.load("model")
    train_cfg = params.load("train")
    x, y, names = load_split(TRAIN)
    m = train(x, y, len(names or []), sha256_file(TRAIN), model_cfg, train_cfg, base.seed)
    print(f"train: {m['steps']} steps, {m['images_seen']} images, {m['img_per_sec']} img/s")


if __name__ == "__main__":
    run_stage(main)
