"""DVC stage `train`: read `base`, `model`, `train` params, data/prepared/train/ and (for the
evaluations during training) the features stage's classifier and real statistics; write models/,
checkpoints/ (persistent, for resuming), metrics/train.json and DVCLive logs under metrics/train/."""

from ganpipe import backend, params
from ganpipe.splits import load_split
from ganpipe.stage import run_stage

TRAIN = "data/prepared/train"
CLASSIFIER = "models/classifier.keras"
REAL_STATS = "data/features/real_stats.npz"


def main() -> None:
    base = params.load("base")
    model_cfg = params.load("model")
    train_cfg = params.load("train")
    backend.use(train_cfg.backend, train_cfg.deterministic, strategy=train_cfg.strategy)
    from ganpipe.tracking import QualityTracker  # here, not at the top: Keras is imported after its backend is chosen
    from ganpipe.training import train
    data = load_split(TRAIN, mmap=True)  # read a batch at a time: the split may be larger than memory
    quality = QualityTracker(CLASSIFIER, REAL_STATS, train_cfg.eval_samples, base.seed) if train_cfg.eval_every else None
    m = train(data.x, data.y, len(data.class_names or []), data.digest, model_cfg, train_cfg, base.seed, checkpoint_dir="checkpoints",
              models_dir="models", metrics_path="metrics/train.json", live_dir="metrics/train", quality=quality)
    kept = ", ".join(f"{k} {v}" for k, v in m["kept"].items())
    print(f"train: {m['steps']} steps, {m['images_seen']} images, {m['img_per_sec']} img/s; kept: {kept}")


if __name__ == "__main__":
    run_stage(main)
