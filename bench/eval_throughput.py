"""Evaluation throughput: every metric of 10k generated vs 10k real images, with the breakdown.

Uses the default params.yaml `evaluate` and `features` sections and real Fashion-MNIST: the 10k test
images stand in for generated samples, the train split gives the real side and the memorisation pool,
and a feature classifier of the default size (weights as initialised: the cost is the same) extracts
features. Prints seconds per part and the total of `ganpipe.evaluation.evaluate` (target: <= 60 s on 2 cores).

    .venv/bin/python bench/eval_throughput.py [--n 10000]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


from ganpipe import evaluation as E  # noqa: E402
from ganpipe import metrics as M  # noqa: E402
from ganpipe import params  # noqa: E402
from ganpipe.decoders import load_fashion_mnist  # noqa: E402
from ganpipe.features import ClassifierExtractor, build_classifier  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class Timer:
    def __init__(self):
        self.parts = {}

    def __call__(self, name, fn, *a, **k):
        t = time.perf_counter()
        out = fn(*a, **k)
        self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - t
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    args = ap.parse_args()
    p = params.read_params_file(REPO / "params.yaml")
    cfg = params.from_dict(params.Evaluate, p["evaluate"])
    fc = params.from_dict(params.Features, p["features"])
    raw = load_fashion_mnist()
    gen, gen_y = raw.test.x[: args.n], None
    real, real_y = raw.train.x[: args.n], raw.train.y[: args.n]
    train = raw.train.x
    ex = ClassifierExtractor(build_classifier(28, 1, 10, fc.width, fc.feature_dim))
    t = Timer()
    real_f, _ = t("real features (features stage)", ex, real, cfg.batch_size)
    mu, sigma = M.feature_stats(real_f)
    stats = {"features": real_f, "mu": mu, "sigma": sigma}

    # the breakdown, part by part, as evaluate() runs them
    feats, probs = t("generated features", ex, gen, cfg.batch_size)
    t("FD + bootstrap CI", lambda: M.bootstrap_ci(
        lambda i: M.frechet_distance(*M.feature_stats(feats[i]), mu, sigma), len(feats), cfg.bootstrap, 0))
    t("KID", M.kid, real_f, feats, cfg.kid_subsets, cfg.kid_subset_size, 0)
    t("precision/recall", M.precision_recall, real_f, feats, cfg.pr_k)
    t("classifier score", M.classifier_score, probs)
    t("SSIM diversity + memorisation", E.ssim_block, gen, gen_y, real, real_y, train, cfg, 0)

    t0 = time.perf_counter()
    result = E.evaluate(gen, gen_y, ex, stats, train, real, real_y, gen[::-1].copy(), cfg, 0)
    total = time.perf_counter() - t0
    print(f"evaluate(): {args.n} generated vs {len(real_f)} real, {os.cpu_count()} cores, "
          f"{cfg.bootstrap} bootstrap resamples, KID {cfg.kid_subsets}x{cfg.kid_subset_size}")
    for name, s in t.parts.items():
        print(f"  {name:34s} {s:7.2f} s")
    print(f"  {'(evaluate() adds floor and ceiling references: 2 more extractions + quality)':34s}")
    print(f"total evaluate(): {total:.2f} s  (target <= 60 s)   fd_clf_{E.count_name(args.n)} = "
          f"{result[f'fd_clf_{E.count_name(args.n)}']:.3f}")


if __name__ == "__main__":
    main()
