"""Quality per compute: the Fréchet distance reached within a fixed wall-clock training budget, for our
default profile (params.yaml) and for the keras.io WGAN-GP recipe (bench.baselines), on this machine.

Each run trains for ``--budget`` seconds of training time, graph tracing included (evaluation pauses
the clock). At ``--evals``
evenly spaced marks, the current sampling generator (ours: the EMA copy) draws 10,000 images, and their
FD is computed exactly as the evaluate stage computes fd_clf (same classifier, same real test
statistics, same seed). Prints a table and writes JSON and a plot of FD against images seen and against
training seconds.

Needs the features stage's outputs (``dvc repro features``): models/classifier.keras,
data/features/real_stats.npz, data/prepared/train/.

    .venv/bin/python bench/quality_per_compute.py [--budget 480] [--evals 8] [--runs ours,recipe]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the bench.* helpers
import numpy as np  # noqa: E402

from ganpipe import build, losses, params, training  # noqa: E402
from ganpipe.feed import Feed  # noqa: E402
from ganpipe.splits import load_split  # noqa: E402
from ganpipe.features import ClassifierExtractor, load_real_stats  # noqa: E402
from ganpipe.generation import generate  # noqa: E402
from ganpipe.metrics import feature_stats, frechet_distance  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLASSIFIER = REPO / "models/classifier.keras"
STATS = REPO / "data/features/real_stats.npz"
TRAIN = REPO / "data/prepared/train"


class Ours:
    """The train stage's GAN, input pipeline and step callback, fed in chunks of ``chunk`` steps."""

    def __init__(self, x, y, num_classes, seed, chunk=50):
        p = params.read_params_file(REPO / "params.yaml")
        self.mc = params.from_dict(params.Model, p["model"])
        self.tc = params.from_dict(params.Train, p["train"])
        self.mc, self.tc, _ = params.resolve_auto(self.mc, self.tc, x.shape[3])
        build.configure(self.tc, seed, second_order=losses.second_order(self.mc))
        self.gan = build.build_gan(self.mc, self.tc, x.shape[1], x.shape[3], num_classes, seed=seed)
        self.x, self.y, self.seed, self.chunk = x, y.astype(np.int32), seed, chunk
        self.feed = Feed(x, self.y, self.tc.batch_size, seed)
        self.step = 0
        self.hook = training.StepHook(self.gan, 10**9, self.tc.batch_size)
        self.name = f"ours (default profile: {self.mc.arch} {self.mc.loss}, batch {self.tc.batch_size}, EMA {self.tc.ema_decay})"

    def images_seen(self):
        return self.step * self.tc.batch_size

    def train_chunk(self):
        n = min(self.chunk, self.feed.steps_per_epoch - self.step % self.feed.steps_per_epoch)
        self.step = training.run_steps(self.gan, self.feed, n, self.hook)
        if self.gan.diverged():
            raise training.TrainingDiverged(f"bench: {self.gan.diverged()}")

    def sampler(self):
        return self.gan.sample_generator()


class Recipe:
    """The keras.io WGAN-GP recipe, fed through its own ``fit()`` over the NumPy array."""

    def __init__(self, x, seed, chunk=1):
        from bench.baselines import KERAS_IO_WGAN_GP, keras_io_wgan_gp

        # As published: default TensorFlow settings (Grappler on, no op determinism).
        build.configure(params.from_dict(params.Train, params.read_params_file(REPO / "params.yaml")["train"]
                                               | {"deterministic": False}), seed, second_order=False)
        self.model = keras_io_wgan_gp(seed)
        self.batch = KERAS_IO_WGAN_GP["batch_size"]
        self.x = (x.astype(np.float32) - 127.5) / 127.5
        self.rng = np.random.default_rng(seed)
        self.order, self.pos, self.seen, self.chunk = self.rng.permutation(len(x)), 0, 0, chunk
        self.name = "keras.io WGAN-GP recipe (batch 512, 3 critic steps, GP 10)"

    def images_seen(self):
        return self.seen

    def train_chunk(self):
        if self.pos >= len(self.order):
            self.order, self.pos = self.rng.permutation(len(self.x)), 0
        idx = self.order[self.pos:self.pos + self.chunk * self.batch]
        self.pos += len(idx)
        self.model.fit(self.x[idx], batch_size=self.batch, epochs=1, shuffle=False, verbose=0)
        self.seen += len(idx)

    def sampler(self):
        return self.model.generator


def run(trainer, budget, evals, score, log):
    marks = [budget * (i + 1) / evals for i in range(evals)]
    points, trained = [], 0.0  # tracing (the first chunk) counts, as it does for a user
    while marks:
        t0 = time.perf_counter()
        trainer.train_chunk()
        trained += time.perf_counter() - t0
        if trained >= marks[0]:
            marks.pop(0)
            fd = score(trainer.sampler())
            points.append({"train_seconds": round(trained, 1), "images_seen": trainer.images_seen(), "fd_clf": fd})
            log(f"  {trained:7.1f} s  {trainer.images_seen():8d} images  fd_clf {fd:8.3f}")
    return points


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=480, help="training seconds per run")
    ap.add_argument("--evals", type=int, default=8)
    ap.add_argument("--runs", default="ours,recipe")
    ap.add_argument("--out", default=str(REPO / "bench/results/quality_per_compute"))
    args = ap.parse_args()

    seed = params.load("base", REPO / "params.yaml").seed
    split = load_split(TRAIN)
    x, y = split.x, split.y
    num_classes = int(y.max()) + 1 if y is not None else 0
    extractor = ClassifierExtractor.open(CLASSIFIER)
    stats = load_real_stats(STATS, CLASSIFIER)

    def score(generator):
        samples, _ = generate(generator, 10000, seed, progress=False)
        feats, _ = extractor(samples)
        return round(float(frechet_distance(*feature_stats(feats), stats["mu"], stats["sigma"])), 3)

    print(f"budget {args.budget:.0f} training seconds per run, {args.evals} evaluations, {os.cpu_count()} CPUs")
    out = Path(args.out)
    earlier = out.with_suffix(".json")
    results = json.loads(earlier.read_text())["runs"] if earlier.exists() else {}  # runs not redone are kept
    for name in args.runs.split(","):
        trainer = Ours(x, y, num_classes, seed) if name == "ours" else Recipe(x, seed)
        print(trainer.name, flush=True)
        results[name] = {"label": trainer.name, "points": run(trainer, args.budget, args.evals, score,
                                                             lambda s: print(s, flush=True))}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"budget_seconds": args.budget, "cpus": os.cpu_count(),
                                                    "runs": results}, indent=1, sort_keys=True) + "\n")
    plot(results, out.with_suffix(".png"))
    if {"ours", "recipe"} <= set(results):
        a, b = results["ours"]["points"][-1]["fd_clf"], results["recipe"]["points"][-1]["fd_clf"]
        print(f"at the budget: ours {a:.3f} vs recipe {b:.3f} fd_clf ({'ours better' if a < b else 'RECIPE BETTER'})")


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in results.values():
        pts = r["points"]
        for ax, key in zip(axes, ("images_seen", "train_seconds")):
            ax.plot([p[key] for p in pts], [p["fd_clf"] for p in pts], marker="o", label=r["label"])
    for ax, xl in zip(axes, ("images seen", "training seconds (2-core CPU)")):
        ax.set_xlabel(xl)
        ax.set_ylabel("fd_clf (lower is better)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})


if __name__ == "__main__":
    main()
