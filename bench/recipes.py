"""Training recipes on small RGB sets: nFD against training time and kimg, recipes interleaved on one machine.

Sets (32x32 RGB, built here, nothing downloaded): ``shapes`` (coloured shapes on striped gradients,
``sets.shapes``) and ``photos`` (odd-sized crops of the photographs scikit-image ships,
``sets.photo_crops``), each at ``--sizes`` training images; ``fmnist`` (28x28 grey: stratified
subsets of Fashion-MNIST's train split, scored with the ``features`` stage's classifier and real
statistics). Recipes are ``model``/``train`` overrides on top of ``params.yaml`` (:data:`RECIPES`;
``default`` is params.yaml as it is, ``lr2e-4`` the defaults before ``auto``, ``v1`` the
defaults before R1 and spectral normalisation were considered, ``sn-r1`` spectral normalisation in D
with lazy R1 at gamma 0.1). Cells run in the order
size, seed, set, recipe, so that a busy machine weighs on every recipe alike; each cell is a subprocess.

Each cell trains ``--kimg`` with ``keep: last`` and scores the saved generator: FD on the set's own
classifier (trained on 10,000 fresh images) between ``--n`` samples and 5,000 real test images of the set;
nFD = (FD - floor) / (ceiling - floor), floor = ``--n`` fresh real images, ceiling = an untrained
generator; a 95% bootstrap interval over generated samples. Per cell also the mean colour saturation of
the samples (max - min channel; the data's is printed beside it) and a sample grid PNG.

    .venv/bin/python bench/recipes.py [--recipes v1,default] [--sets shapes,photos] [--sizes 1000]
        [--seeds 0,1] [--kimg 30] [--every 10] [--width 64] [--jobs 1] [--work /tmp/ganpipe-recipes] [--out bench/results]

Finished cells are kept (``WORK/cells/*.json``): a rerun only runs what is missing or was finished with another
``--kimg``, ``--every`` or ``--width``. A cell finished with a smaller ``--kimg`` and otherwise the same settings
trains on from its checkpoint; any other change starts it afresh; an interrupted cell resumes. Writes
``OUT/recipes.json`` and prints a Markdown table with the machine's CPU flags.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

def before_auto(model: dict | None = None, train: dict | None = None) -> tuple[dict, dict]:
    """Overrides on top of the defaults as they were before ``auto`` (session 12): the grey column of
    ``params.AUTO`` (DCGAN's Adam 2e-4, no spectral normalisation) at any channel count, so that the rows
    measured against those defaults rerun as they ran."""
    from ganpipe.params import AUTO

    old = {"model": {}, "train": {}}
    for (section, key), (_, grey) in AUTO.items():
        old[section][key] = grey
    return old["model"] | (model or {}), old["train"] | (train or {})


RECIPES = {
    "default": ({}, {}),  # params.yaml as it is (``auto``: the RGB values on RGB sets)
    "lr2e-4": before_auto(),  # the defaults before ``auto``
    "v1": before_auto({"r1_gamma": 0.0, "r2_gamma": 0.0}, {"beta1": 0.5, "beta2": 0.999, "augment_p": "adaptive"}),
    "sn-r1": before_auto({"spectral_norm": True, "r1_gamma": 0.1}),  # the best short-run candidate (README)
    "sn-r1-diffaug": before_auto({"spectral_norm": True, "r1_gamma": 0.1}, {"augment_p": 1.0}),
    # 2026-12-03 (docs/training.md, "Learning rate and D's strength"): one change at a time from the defaults
    "r1-1": before_auto({"r1_gamma": 1.0}),
    "r1-10": before_auto({"r1_gamma": 10.0}),
    "ttur": before_auto(train={"d_lr": 4e-4, "g_lr": 1e-4}),
    "lr5e-4": before_auto(train={"d_lr": 5e-4, "g_lr": 5e-4}),
    "lr1e-3": before_auto(train={"d_lr": 1e-3, "g_lr": 1e-3}),
    "lr1e-3-r1": before_auto({"r1_gamma": 1.0}, {"d_lr": 1e-3, "g_lr": 1e-3}),
    "lr1e-3-sn": ({"spectral_norm": True}, {"d_lr": 1e-3, "g_lr": 1e-3}),
    "lr1e-3-sn-d2": ({"spectral_norm": True}, {"d_lr": 2e-3, "g_lr": 1e-3}),
    "lr1e-3-sn-adam0": ({"spectral_norm": True}, {"d_lr": 1e-3, "g_lr": 1e-3, "beta1": 0.0, "beta2": 0.99}),
    "lr1e-3-sn-diffaug": ({"spectral_norm": True}, {"d_lr": 1e-3, "g_lr": 1e-3, "augment_p": 1.0}),
    # 2026-12-03, session 11: hold the early optimum by decaying both learning rates to 0 at the planned end
    "lr1e-3-sn-linear": ({"spectral_norm": True}, {"d_lr": 1e-3, "g_lr": 1e-3, "lr_schedule": "linear"}),
    "lr1e-3-sn-cosine": ({"spectral_norm": True}, {"d_lr": 1e-3, "g_lr": 1e-3, "lr_schedule": "cosine"}),
}


def cpu_flags() -> str:
    try:
        flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags) or "no AVX2"


def saturation(x: np.ndarray) -> float:
    return float(np.mean(x.max(-1).astype(np.float64) - x.min(-1)) / 255) if x.shape[-1] == 3 else 0.0


CURVE_SAMPLES = 2000  # samples per in-training evaluation (--every)
SEEDS = {"train": 10, "floor": 11, "classifier": 12, "test": 13}


def prepare(kind: str, sizes: list[int], n: int, work: Path) -> None:
    import sets
    from ganpipe.io import save_npz

    if kind == "fmnist":  # subsets of Fashion-MNIST's train split, scored by the pipeline's own classifier
        return prepare_fmnist(sizes, n, work)
    for size in sizes:
        if not (work / f"{kind}-{size}.npz").exists():
            x, y = sets.make(kind, size, SEEDS["train"] + size)
            save_npz(work / f"{kind}-{size}.npz", x=x, y=y)
    if not (work / f"{kind}-classifier.keras").exists():
        save_npz(work / f"{kind}-floor.npz", x=sets.make(kind, n, SEEDS["floor"])[0])
        cx, cy = sets.make(kind, 10000, SEEDS["classifier"])
        tx, ty = sets.make(kind, 5000, SEEDS["test"])
        sets.classifier(cx, cy, tx, ty, work, kind, 0)


def prepare_fmnist(sizes: list[int], n: int, work: Path) -> None:
    """``fmnist-N``: N train images (stratified); floor: ``n`` other train images; classifier and real
    statistics: the ``features`` stage's outputs (``dvc repro features`` first), on the 10,000 test images."""
    from ganpipe.decoders import load_fashion_mnist
    from ganpipe.io import save_npz
    from ganpipe.transforms import stratified_choice

    for path in ("models/classifier.keras", "data/features/real_stats.npz"):
        if not (REPO / path).exists():
            raise SystemExit(f"error: {path} is missing: run `dvc repro features` first")
    fm = load_fashion_mnist().train
    x, y = fm.x, fm.y.astype(np.int64)
    rest = np.ones(len(x), bool)
    for size in sizes:
        idx = stratified_choice(y, len(x), size, np.random.default_rng(SEEDS["train"] + size))
        rest[idx] = False
        if not (work / f"fmnist-{size}.npz").exists():
            save_npz(work / f"fmnist-{size}.npz", x=x[idx], y=y[idx])
    if not (work / "fmnist-classifier.keras").exists():
        floor = np.random.default_rng(SEEDS["floor"]).permutation(np.flatnonzero(rest))[:n]
        save_npz(work / "fmnist-floor.npz", x=x[floor])
        shutil.copy(REPO / "models/classifier.keras", work / "fmnist-classifier.keras")
        shutil.copy(REPO / "data/features/real_stats.npz", work / "fmnist-real_stats.npz")


def run_cell(a) -> None:
    import yaml
    from PIL import Image

    from ganpipe import params as P
    from ganpipe import checkpoint, training
    from ganpipe.evaluation import untrained_like
    from ganpipe.features import ClassifierExtractor
    from ganpipe.generation import generate
    from ganpipe.io import load_npz, write_json
    from ganpipe.metrics import bootstrap_ci, feature_stats, frechet_distance
    from ganpipe.plots import image_grid
    from ganpipe.saving import load_model
    from ganpipe.tracking import QualityTracker

    work = Path(a.work)
    data = load_npz(work / f"{a.set}-{a.size}.npz")
    x, y = data["x"], data["y"]
    model, train = RECIPES[a.recipe]
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    width = {"g_width": a.width, "d_width": a.width}
    mc = P.from_dict(P.Model, raw["model"] | model | width)
    tc = P.from_dict(P.Train, raw["train"] | train | {"kimg": a.kimg, "epochs": None, "keep": "last",
                                                      "eval_every": a.every, "eval_samples": CURVE_SAMPLES,
                                                      "checkpoint_every": 10**6})
    # --every: FD of the sampling generator every so many kimg (the train stage's own evaluations, with
    # this set's classifier and real statistics), normalised below with a floor and ceiling of as many images
    tracker = QualityTracker(work / f"{a.set}-classifier.keras", work / f"{a.set}-real_stats.npz", CURVE_SAMPLES, 0)
    name = f"{a.set}-{a.size}-{a.recipe}-s{a.seed}"
    out = work / "runs" / name
    cell = cell_path(work, a.set, a.size, a.recipe, a.seed)
    before = json.loads(cell.read_text())["wall_seconds"] if cell.exists() else 0.0  # a shorter finished run
    m = training.train(x, y, int(y.max()) + 1, name, mc, tc, a.seed, checkpoint_dir=out / "ckpt",
                       models_dir=out / "models", metrics_path=out / "train.json", live_dir=out / "live",
                       quality=tracker if a.every else None, progress=False, log=lambda *_: None)
    ext = ClassifierExtractor.open(work / f"{a.set}-classifier.keras")
    real = load_npz(work / f"{a.set}-real_stats.npz")
    fd_of = lambda f: frechet_distance(*feature_stats(f), real["mu"], real["sigma"])  # noqa: E731
    g = load_model(out / "models/generator.keras")
    samples = generate(g, a.n, 1, progress=False)[0]
    gen = ext(samples)[0]
    fd = fd_of(gen)
    lo, hi = bootstrap_ci(lambda i: fd_of(gen[i]), len(gen), 20, 0)
    untrained = untrained_like(g, 0)
    ceiling = fd_of(ext(generate(untrained, a.n, 1, progress=False)[0])[0])
    # one pass over the floor images serves both counts (an image's features do not depend on the batch)
    floor_feats = ext(load_npz(work / f"{a.set}-floor.npz")["x"][: max(a.n, CURVE_SAMPLES)])[0]
    floor = fd_of(floor_feats[: a.n])
    norm = lambda v: (v - floor) / (ceiling - floor)  # noqa: E731
    curve = []
    if a.every:
        c_floor = fd_of(floor_feats[:CURVE_SAMPLES])
        c_ceiling = tracker(untrained)["fd_clf"]
        evals = checkpoint.read_checkpoint(out / "ckpt" / checkpoint.CHECKPOINT)[0].evals
        curve = [[e["step"] * tc.batch_size / 1000, (e["fd_clf"] - c_floor) / (c_ceiling - c_floor)] for e in evals]
    grid = image_grid(samples[:64], 8)
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(out / "grid.png")
    write_json(cell, {
        "set": a.set, "size": a.size, "recipe": a.recipe, "seed": a.seed, "kimg": a.kimg, "width": a.width,
        "fd": fd, "nfd": norm(fd), "nfd_ci95": [norm(lo), norm(hi)], "floor": floor, "ceiling": ceiling,
        "saturation": saturation(samples), "data_saturation": saturation(x),
        # training seconds over the whole run: this run's and, when it trained on from a shorter finished one, that one's
        "wall_seconds": m["wall_seconds"] + (before if m["resumed_from_step"] else 0.0),
        "img_per_sec": m["img_per_sec"], "augment_p": m.get("augment_p"), "grid": str(out / "grid.png"),
        "every": a.every, "nfd_curve": curve})


def cell_path(work: Path, kind: str, size: int, recipe: str, seed: int) -> Path:
    return work / "cells" / f"{kind}-{size}-{recipe}-s{seed}.json"


def cell_threads(jobs: int) -> int:
    """TensorFlow threads per cell: ``TF_NUM_INTRAOP_THREADS`` when set, else ``cpus // jobs``."""
    if "TF_NUM_INTRAOP_THREADS" in os.environ:
        return int(os.environ["TF_NUM_INTRAOP_THREADS"])
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def run_cells(a, kinds: list[str], sizes: list[int], seeds: list[int], recipes: list[str], jobs: int = 1) -> list[dict]:
    """Every (set, size, recipe, seed) cell, run (or reused) in the order size, seed, set, recipe, ``jobs``
    at a time: with ``jobs`` > 1 each cell gets ``cpus // jobs`` TensorFlow threads (unless
    ``TF_NUM_INTRAOP_THREADS`` is set), so that cells started together share the machine alike. Returns
    the cells' records in that order."""
    from concurrent.futures import ThreadPoolExecutor

    work = Path(a.work)
    (work / "cells").mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        prepare(kind, sizes, a.n, work)
    env = dict(os.environ)
    if jobs > 1:
        env.setdefault("TF_NUM_INTRAOP_THREADS", str(cell_threads(jobs)))
        env.setdefault("TF_NUM_INTEROP_THREADS", "1")
    keys = [(kind, size, recipe, seed) for size in sizes for seed in seeds for kind in kinds for recipe in recipes]

    def one(key) -> dict:
        kind, size, recipe, seed = key
        path = cell_path(work, *key)
        done = json.loads(path.read_text()) if path.exists() else {}
        if (done.get("kimg"), done.get("every", 0.0), done.get("width")) != (a.kimg, a.every, a.width):
            # a cell finished shorter with the same settings trains on from its checkpoint (as a longer
            # `dvc exp run` does: the same bytes as one run); with other settings it starts afresh; an
            # interrupted cell resumes
            longer = done and (done.get("every", 0.0), done.get("width")) == (a.every, a.width) and done["kimg"] < a.kimg
            if done and not longer:
                shutil.rmtree(work / "runs" / path.stem, ignore_errors=True)
            subprocess.run([sys.executable, __file__, "--cell", kind, str(size), recipe, str(seed), "--kimg", str(a.kimg),
                            "--width", str(a.width), "--n", str(a.n), "--every", str(a.every), "--work", str(work)],
                           check=True, cwd=REPO, env=env)
        c = json.loads(path.read_text())
        curve = " ".join(f"{v:.3f}" for _, v in c.get("nfd_curve", []))
        print(f"{kind} {size} {recipe} seed {seed}: nFD {c['nfd']:.3f}, {c['wall_seconds']:.0f} s"
              + (f"; every {c['every']:g} kimg: {curve}" if curve else ""), flush=True)
        return c

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        return list(pool.map(one, keys))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default="v1,default")
    ap.add_argument("--sets", default="shapes,photos")
    ap.add_argument("--sizes", default="1000")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--kimg", type=float, default=30.0)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--every", type=float, default=0.0, help="kimg between in-training nFD evaluations (0: none)")
    ap.add_argument("--jobs", type=int, default=1, help="cells at a time (each on cpus // jobs threads)")
    ap.add_argument("--work", default="/tmp/ganpipe-recipes")
    ap.add_argument("--out", default=str(REPO / "bench/results"))
    ap.add_argument("--cell", nargs=4, metavar=("SET", "SIZE", "RECIPE", "SEED"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.cell:
        a.set, a.size, a.recipe, a.seed = a.cell[0], int(a.cell[1]), a.cell[2], int(a.cell[3])
        return run_cell(a)
    unknown = [r for r in a.recipes.split(",") if r not in RECIPES]
    if unknown:
        raise SystemExit(f"error: unknown recipe(s) {', '.join(unknown)}: one of {', '.join(RECIPES)}")
    cells = run_cells(a, a.sets.split(","), [int(s) for s in a.sizes.split(",")], [int(s) for s in a.seeds.split(",")],
                      a.recipes.split(","), a.jobs)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipes.json").write_text(json.dumps(cells, indent=1, sort_keys=True) + "\n")
    print(f"\n{a.kimg:g} kimg, width {a.width}, CPU flags: {cpu_flags()}")
    print("| set | images | recipe | seed | nFD [95% CI] | saturation (data) | train s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for c in cells:
        print(f"| {c['set']} | {c['size']} | {c['recipe']} | {c['seed']} | {c['nfd']:.3f} [{c['nfd_ci95'][0]:.3f}, "
              f"{c['nfd_ci95'][1]:.3f}] | {c['saturation']:.2f} ({c['data_saturation']:.2f}) | {c['wall_seconds']:.0f} |")


if __name__ == "__main__":
    main()
