"""DVC stage `features`: train the feature classifier; write models/classifier.keras,
data/features/real_stats.npz (real test-set feature mean/covariance in float64, and the features)
and metrics/features.json (test accuracy)."""

from ganpipe import backend, params, seeds
from ganpipe.splits import load_split
from ganpipe.stage import run_stage

CLASSIFIER = "models/classifier.keras"


def main() -> None:
    base = params.load("base")
    cfg = params.load("features")
    # On JAX, without XLA's deterministic GPU ops: the classifier's max-pooling gradient (select-and-scatter)
    # has no deterministic XLA GPU kernel, and the flag makes its compilation fail. Before Keras is imported.
    backend.use(backend.default(), deterministic=False, key="KERAS_BACKEND")
    # here, not at the top: these import Keras, after its backend is chosen
    from ganpipe.features import (ClassifierExtractor, check_real_count, classifier_task, reference_images,
                                   reference_split, save_real_stats, train_classifier)
    from ganpipe.io import write_json
    from ganpipe.saving import save_model

    seeds.exact_inference(base.seed)  # the real statistics in full float32, as evaluate's features of the samples
    train, test = load_split("data/prepared/train"), load_split("data/prepared/test")
    x, y, names, xt, yt = train.x, train.y, train.class_names, test.x, test.y
    split = reference_split(cfg.reference, len(xt), cfg.feature_dim)
    ref = reference_images(split, x, xt)
    check_real_count(len(ref), cfg.feature_dim, f"the real reference set (features.reference: {split})")
    model, acc = train_classifier(x, y, xt, yt, len(names or []), cfg, base.seed)
    save_model(model, CLASSIFIER)
    feats, _ = ClassifierExtractor(model, CLASSIFIER)(ref)
    save_real_stats("data/features/real_stats.npz", feats, CLASSIFIER, split)
    task = classifier_task(y, len(names or []))
    # metrics only (DVC shows every key as a column); the dimension, counts and task are in evaluate's protocol
    write_json("metrics/features.json", {"test_accuracy": round(acc, 6)})
    print(f"features: classifier ({task}) test accuracy {acc:.4f}; real statistics from {len(ref)} images ({split})")


if __name__ == "__main__":
    run_stage(main)
