"""Data efficiency: quality against dataset size, with augmentation off, fixed DiffAugment and ADA.

Cells: Fashion-MNIST train subsets (stratified) of 500, 2,000, 10,000 and 60,000 images, and an RGB set
drawn here (32x32 coloured shapes on textured backgrounds, 4 classes, 1,000 training images: see
``shapes``), each trained for the same number of images (``--kimg``) in three modes:

- ``off``: ``train.augment: []``;
- ``diffaug``: DiffAugment's ``color,translation,cutout`` policy, every op on every image (p = 1);
- ``adaptive``: the same ops with p tuned by the ADA controller (the default params).

Everything else is ``params.yaml``'s ``model`` and ``train`` (``--width`` sets ``g_width``/``d_width``
for a faster bench). Each cell's generator (the last snapshot: ``train.keep: last``, so collapse shows)
is scored by the evaluate stage's FD on the classifier's features, ``--n`` generated samples against the
real test statistics, and normalised per dataset: nFD = (FD - floor) / (ceiling - floor), floor = ``--n``
real *training-distribution* images (from the full train split, or freshly drawn shapes) with the same
protocol, ceiling = an untrained generator of the same architecture. The 95% interval is the bootstrap
over generated samples (floor and ceiling held fixed). Fashion-MNIST uses the `features` stage's
classifier and real statistics when `dvc repro` has made them (else trains one); the shapes set trains
its own classifier on 10,000 fresh images.

    .venv/bin/python bench/data_efficiency.py [--kimg 40] [--width 32] [--sizes 500,2000,10000,60000]
        [--modes off,diffaug,adaptive] [--no-shapes] [--work /tmp/ganpipe-de] [--out bench/results]

Finished cells are kept in ``WORK/cells/*.json``: a rerun with the same arguments only runs what is
missing. Prints a table; writes ``OUT/data_efficiency.json`` and ``OUT/data_efficiency.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODES = {
    "off": {"augment": []},
    "diffaug": {"augment": ["brightness", "saturation", "contrast", "translation", "cutout"], "augment_p": 1.0},
    "adaptive": {"augment": ["brightness", "saturation", "contrast", "translation", "cutout"], "augment_p": "adaptive"},
}
SHAPES_TRAIN = 1000


# ------------------------------------------------------------------------------------------ the RGB set


def shapes(n: int, seed: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``n`` RGB images of one of 4 shapes (disc, square, triangle, ring) in a random colour, size and
    position, on a background that is a random two-colour gradient with stripes of random frequency and
    angle, plus pixel noise. Labels: the shape."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    labels = rng.integers(0, 4, n)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        angle, freq, amp = rng.uniform(0, np.pi), rng.uniform(1, 6), rng.uniform(0, 0.25)
        t = np.cos(angle) * xx + np.sin(angle) * yy
        bg = c0 + (c1 - c0) * t[..., None] / max(t.max(), 1e-6)
        bg = bg + amp * np.sin(2 * np.pi * freq * t)[..., None]
        r = rng.uniform(0.18, 0.35)
        cy, cx = rng.uniform(r, 1 - r, 2)
        dy, dx = yy - cy, xx - cx
        kind = labels[i]
        if kind == 0:
            mask = dy**2 + dx**2 < r**2
        elif kind == 1:
            mask = (np.abs(dy) < r * 0.85) & (np.abs(dx) < r * 0.85)
        elif kind == 2:
            mask = (dy < r * 0.7) & (dy > -r) & (np.abs(dx) < (dy + r) * 0.6)
        else:
            d2 = dy**2 + dx**2
            mask = (d2 < r**2) & (d2 > (0.55 * r) ** 2)
        fg = rng.uniform(0, 1, 3)
        img = np.where(mask[..., None], fg, bg) + rng.normal(0, 0.03, (size, size, 3))
        out[i] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return out, labels.astype(np.int64)


PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # scikit-image's bundled photographs: the classes


def photo_crops(n: int, seed: int, min_side: int = 40, max_side: int = 160) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` RGB crops of odd, non-square sizes (sides in [min_side, max_side]) from the photographs that
    scikit-image ships (no download), randomly flipped; label = the photograph. Users' own photos look like
    this: real textures and colours, many sizes."""
    import skimage.data

    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)()[..., :3] for name in PHOTOS]
    labels = rng.integers(0, len(photos), n)
    out = []
    for k in labels:
        im = photos[k]
        h, w = (int(v) for v in rng.integers(min_side, min(max_side, *im.shape[:2]) + 1, 2))
        y0, x0 = rng.integers(0, im.shape[0] - h + 1), rng.integers(0, im.shape[1] - w + 1)
        crop = im[y0:y0 + h, x0:x0 + w]
        out.append(np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop))
    return out, labels.astype(np.int64)


def write_folder(root: Path, images: list[np.ndarray], labels: np.ndarray, names=PHOTOS) -> Path:
    """Images as JPEG files in one folder per class: an ``images:<dir>`` source."""
    from PIL import Image

    for i, (im, y) in enumerate(zip(images, labels)):
        d = root / names[int(y)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(d / f"{i:05d}.jpg", quality=92)
    return root


# ------------------------------------------------------------------------------------------ one cell


def run_cell(args) -> None:
    """Train one (dataset, mode) cell in this process and write its scores as JSON."""
    import yaml

    from ganpipe import params as P
    from ganpipe import checkpoint, training
    from ganpipe.evaluation import untrained_like
    from ganpipe.features import ClassifierExtractor
    from ganpipe.generation import generate
    from ganpipe.io import load_npz, write_json
    from ganpipe.metrics import bootstrap_ci, feature_stats, frechet_distance
    from ganpipe.saving import load_model
    from ganpipe.tracking import QualityTracker

    work = Path(args.work)
    data = load_npz(work / f"{args.dataset}.npz")
    x, y = data["x"], data["y"]
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    mc = P.from_dict(P.Model, raw["model"] | {"g_width": args.width, "d_width": args.width})
    tc = P.from_dict(P.Train, raw["train"] | MODES[args.mode] | {
        "kimg": args.kimg, "epochs": None, "keep": "last", "eval_every": args.kimg / 4, "eval_samples": 2000,
        "checkpoint_every": 10**6})
    family = args.dataset.split("-")[0]
    clf, stats = work / f"{family}-classifier.keras", work / f"{family}-real_stats.npz"
    out = work / "runs" / f"{args.dataset}-{args.mode}"
    m = training.train(x, y, int(y.max()) + 1, f"{args.dataset}", mc, tc, 0, checkpoint_dir=out / "ckpt",
                       models_dir=out / "models", metrics_path=out / "train.json", live_dir=out / "live",
                       quality=QualityTracker(clf, stats, 2000, 0), progress=True)
    extractor = ClassifierExtractor.open(clf)
    real = load_npz(stats)

    def fd_of(feats):
        return frechet_distance(*feature_stats(feats), real["mu"], real["sigma"])

    g = load_model(out / "models/generator.keras")
    gen = extractor(generate(g, args.n, 1, progress=False)[0])[0]
    fd = fd_of(gen)
    lo, hi = bootstrap_ci(lambda idx: fd_of(gen[idx]), len(gen), 20, 0)
    ceiling = fd_of(extractor(generate(untrained_like(g, 0), args.n, 1, progress=False)[0])[0])
    floor = fd_of(extractor(load_npz(work / f"{family}-floor.npz")["x"][: args.n])[0])
    norm = lambda v: (v - floor) / (ceiling - floor)  # noqa: E731
    grid = generate(g, 64, 2, progress=False)[0]
    np.save(out / "grid.npy", grid)
    write_json(work / "cells" / f"{args.dataset}-{args.mode}.json", {
        "dataset": args.dataset, "mode": args.mode, "n_train": int(len(x)), "kimg": args.kimg, "fd": fd,
        "fd_ci95": [lo, hi], "floor": floor, "ceiling": ceiling, "nfd": norm(fd), "nfd_ci95": [norm(lo), norm(hi)],
        "final_augment_p": m.get("augment_p"), "evals": checkpoint.read_checkpoint(out / "ckpt/ckpt.npz")[0].evals,
        "wall_seconds": m["wall_seconds"], "img_per_sec": m["img_per_sec"]})


# ------------------------------------------------------------------------------------------ set-up


def _classifier(x, y, xt, yt, work: Path, family: str, seed: int) -> None:
    from ganpipe import params as P
    from ganpipe.features import ClassifierExtractor, save_real_stats, train_classifier
    from ganpipe.saving import save_model

    cfg = P.from_dict(P.Features, dict(epochs=3, batch_size=128, width=32, feature_dim=128, lr=1e-3, reference="test"))
    model, acc = train_classifier(x, y, xt, yt, int(y.max()) + 1, cfg, seed, progress=False)
    path = work / f"{family}-classifier.keras"
    save_model(model, path)
    save_real_stats(work / f"{family}-real_stats.npz", ClassifierExtractor(model, path)(xt)[0], path)
    print(f"{family}: classifier test accuracy {acc:.3f}")


def prepare(args, work: Path) -> list[str]:
    import shutil

    from ganpipe.decoders import load_fashion_mnist
    from ganpipe.transforms import stratified_choice
    from ganpipe.io import save_npz

    names = []
    fm = load_fashion_mnist()
    xtr, ytr = fm.train.x, fm.train.y.astype(np.int64)
    for n in args.sizes:
        name = f"fmnist-{n}"
        names.append(name)
        if not (work / f"{name}.npz").exists():
            idx = stratified_choice(ytr, len(xtr), n, np.random.default_rng(n))
            save_npz(work / f"{name}.npz", x=xtr[idx], y=ytr[idx])
    if not (work / "fmnist-floor.npz").exists() or len(np.load(work / "fmnist-floor.npz")["x"]) < args.n:
        idx = np.random.default_rng(1).permutation(len(xtr))[: args.n]
        save_npz(work / "fmnist-floor.npz", x=xtr[idx])
    if not (work / "fmnist-classifier.keras").exists():
        if (REPO / "models/classifier.keras").exists() and (REPO / "data/features/real_stats.npz").exists():
            shutil.copy(REPO / "models/classifier.keras", work / "fmnist-classifier.keras")
            shutil.copy(REPO / "data/features/real_stats.npz", work / "fmnist-real_stats.npz")
        else:
            _classifier(xtr, ytr, fm.test.x, fm.test.y.astype(np.int64), work, "fmnist", 0)
    if args.shapes:
        names.append(f"shapes-{SHAPES_TRAIN}")
        if not (work / f"shapes-{SHAPES_TRAIN}.npz").exists():
            x, y = shapes(SHAPES_TRAIN, 10)
            save_npz(work / f"shapes-{SHAPES_TRAIN}.npz", x=x, y=y)
            save_npz(work / "shapes-floor.npz", x=shapes(args.n, 11)[0])
            cx, cy = shapes(10000, 12)
            tx, ty = shapes(5000, 13)
            _classifier(cx, cy, tx, ty, work, "shapes", 0)
    return names


def report(cells: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(c["dataset"] for c in cells))
    modes = list(dict.fromkeys(c["mode"] for c in cells))
    print(f"\nnFD = (FD - floor) / (ceiling - floor) [95% CI], {cells[0]['kimg']} kimg each")
    print("| dataset | train images | floor | ceiling | " + " | ".join(f"{m}: nFD" for m in modes) + " |")
    print("| --- | --- | --- | --- | " + " | ".join("---" for _ in modes) + " |")
    by = {(c["dataset"], c["mode"]): c for c in cells}
    for d in datasets:
        any_cell = next(c for c in cells if c["dataset"] == d)
        row = [f"{by[d, m]['nfd']:.3f} [{by[d, m]['nfd_ci95'][0]:.3f}, {by[d, m]['nfd_ci95'][1]:.3f}]"
               + (f" (p {by[d, m]['final_augment_p']:.2f})" if m == "adaptive" and by[d, m]["final_augment_p"] is not None else "")
               if (d, m) in by else "" for m in modes]
        print(f"| {d} | {any_cell['n_train']} | {any_cell['floor']:.2f} | {any_cell['ceiling']:.1f} | " + " | ".join(row) + " |")
    fig, ax = plt.subplots(figsize=(7, 4))
    fm = [d for d in datasets if d.startswith("fmnist")]
    sizes = [by[d, modes[0]]["n_train"] for d in fm if (d, modes[0]) in by]
    for m in modes:
        pts = [(by[d, m]["n_train"], by[d, m]["nfd"], by[d, m]["nfd_ci95"]) for d in fm if (d, m) in by]
        if pts:
            xs, ys, cis = zip(*pts)
            err = np.array([[y - c[0] for y, c in zip(ys, cis)], [c[1] - y for y, c in zip(ys, cis)]])
            ax.errorbar(xs, ys, yerr=np.abs(err), marker="o", capsize=3, label=f"Fashion-MNIST, {m}")
        sh = [c for c in cells if c["dataset"].startswith("shapes") and c["mode"] == m]
        if sh:
            ax.scatter([sh[0]["n_train"]], [sh[0]["nfd"]], marker="s", label=f"shapes RGB, {m}")
    ax.set_xscale("log")
    ax.set_xlabel("training images")
    ax.set_ylabel("nFD (0 = real data, 1 = untrained)")
    ax.set_title(f"Data efficiency at {cells[0]['kimg']} kimg")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if sizes:
        ax.set_xticks(sizes, [str(s) for s in sizes])
    fig.tight_layout()
    fig.savefig(out / "data_efficiency.png", dpi=110)
    (out / "data_efficiency.json").write_text(json.dumps(cells, indent=1, sort_keys=True) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kimg", type=float, default=40.0)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--n", type=int, default=5000, help="generated samples per score")
    ap.add_argument("--sizes", default="500,2000,10000,60000")
    ap.add_argument("--modes", default="off,diffaug,adaptive")
    ap.add_argument("--no-shapes", dest="shapes", action="store_false")
    ap.add_argument("--work", default="/tmp/ganpipe-data-efficiency")
    ap.add_argument("--out", default=str(REPO / "bench/results"))
    ap.add_argument("--cell", nargs=2, metavar=("DATASET", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    work = Path(args.work)
    if args.cell:
        args.dataset, args.mode = args.cell
        return run_cell(args)
    (work / "cells").mkdir(parents=True, exist_ok=True)
    names = prepare(args, work)
    cells = []
    for name in names:
        for mode in args.modes.split(","):
            path = work / "cells" / f"{name}-{mode}.json"
            if path.exists() and json.loads(path.read_text())["kimg"] == args.kimg:
                cells.append(json.loads(path.read_text()))
                continue
            print(f"--- {name} {mode}", flush=True)
            cmd = [sys.executable, __file__, "--cell", name, mode, "--kimg", str(args.kimg), "--width",
                   str(args.width), "--n", str(args.n), "--work", str(work)]
            subprocess.run(cmd, check=True, cwd=REPO)
            cells.append(json.loads(path.read_text()))
            c = cells[-1]
            print(f"{name} {mode}: FD {c['fd']:.2f}, nFD {c['nfd']:.3f}, {c['wall_seconds']:.0f} s", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report(cells, out)


if __name__ == "__main__":
    main()
