"""DVC stage `evaluate`: every metric of data/generated/samples.npz against the real test set, with
intervals and floor/ceiling references: headline numbers into metrics/eval.json, the rest into
metrics/eval_details.json (ganpipe.results)."""

from ganpipe import params
from ganpipe.data import load_split
from ganpipe.evaluation import evaluate, load_real_stats, load_samples, untrained_like
from ganpipe.features import Extractor, inception_extractor
from ganpipe.generation import generate
from ganpipe.io import write_json
from ganpipe.results import DETAILS, EVAL, split
from ganpipe.saving import load_model
from ganpipe.stage import run_stage

SAMPLES = "data/generated/samples.npz"
CLASSIFIER = "models/classifier.keras"
STATS = "data/features/real_stats.npz"


def main() -> None:
    base = params.load("base")
    cfg = params.load("evaluate")
    x, y = load_samples(SAMPLES)
    train_x, _, _ = load_split("data/prepared/train.npz")
    test_x, test_y, _ = load_split("data/prepared/test.npz")
    if cfg.extractor == "classifier":
        extractor = Extractor(load_model(CLASSIFIER), "classifier", CLASSIFIER)
        stats = load_real_stats(STATS, CLASSIFIER)
    else:
        extractor, stats = inception_extractor(), None
    ceiling, _ = generate(untrained_like(load_model("models/generator.keras"), base.seed), len(x), base.seed,
                          progress=False)
    result = evaluate(x, y, extractor, stats, train_x, test_x, test_y, ceiling, cfg, base.seed)
    headline, details = split(result)
    write_json(DETAILS, details)
    write_json(EVAL, headline)
    print("evaluate: " + ", ".join(f"{k} {v:.4g}" for k, v in result.items() if k.startswith(("fd_", "kid_")) and "ci95" not in k))


if __name__ == "__main__":
    run_stage(main)
