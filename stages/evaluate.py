"""DVC stage `evaluate`: every metric of data/generated/samples.npz against the real test set, with
intervals and floor/ceiling references: headline numbers into metrics/eval.json, the rest into
metrics/eval_details.json (ganpipe.results)."""

from ganpipe import params, seeds
from ganpipe.evaluation import evaluate, load_samples, untrained_like
from ganpipe.features import open_extractor
from ganpipe.generation import generate
from ganpipe.io import write_json
from ganpipe.results import DETAILS, EVAL, split
from ganpipe.saving import load_model
from ganpipe.splits import load_split
from ganpipe.stage import run_stage

SAMPLES = "data/generated/samples.npz"
CLASSIFIER = "models/classifier.keras"
STATS = "data/features/real_stats.npz"
TRAIN = "data/prepared/train"
TEST = "data/prepared/test"


def main() -> None:
    base = params.load("base")
    cfg = params.load("evaluate")
    numerics = seeds.exact_inference(base.seed)  # the same numbers on every run, on a GPU too
    x, y = load_samples(SAMPLES)
    train = load_split(TRAIN)
    test = load_split(TEST)
    extractor, real = open_extractor(cfg.extractor, CLASSIFIER, STATS, TEST, cfg.batch_size)
    ceiling, _ = generate(untrained_like(load_model("models/generator.keras"), base.seed), len(x), base.seed,
                          progress=False)
    result = evaluate(x, y, extractor, real, train.x, test.x, test.y, ceiling, cfg, base.seed, progress=True,
                      numerics=numerics)
    headline, details = split(result)
    write_json(DETAILS, details)
    write_json(EVAL, headline, sort_keys=False)  # registry order: FD, KID, precision, recall lead `dvc exp show`
    print("evaluate: " + ", ".join(f"{k} {v:.4g}" for k, v in result.items() if k.startswith(("fd_", "kid_")) and "ci95" not in k))


if __name__ == "__main__":
    run_stage(main)
