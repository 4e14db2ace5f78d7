"""Data efficiency: quality per CPU minute of the defaults before and after ``auto``, on small RGB sets.

For each RGB set built here (``shapes``: coloured shapes on striped gradients; ``photos``: odd-sized
crops of scikit-image's photographs, resized by the prepare stage; :mod:`sets`) at ``--sizes`` training
images (300, 1,000 and 5,000), two recipes train for the same ``--kimg`` with everything else at
``params.yaml``'s values:

- ``old``: the defaults before ``auto`` (DCGAN's Adam 2e-4 for G and D, no spectral normalisation:
  ``bench/recipes.py``'s ``lr2e-4``);
- ``new``: params.yaml as it is (``auto`` resolves to Adam 1e-3 and spectral normalisation in D for RGB
  images: ``default``).

The cells are ``bench/recipes.py``'s (same scoring: FD on the set's own classifier, nFD = (FD - floor) /
(ceiling - floor), a 95% bootstrap interval over ``--n`` generated samples, the last snapshot, a sample
grid), run in the order size, seed, set, recipe, ``--jobs`` at a time, so that the two recipes of a
(set, size, seed) share the machine alike. The train stage's own evaluations every ``--every`` kimg give
the curve of nFD (on 2,000 samples) against kimg and against training CPU time: a cell's time at k kimg is
k / its kimg x its training seconds (evaluations included), times its TensorFlow threads (``cpu_minutes``).

    .venv/bin/python bench/data_efficiency.py [--sets shapes,photos] [--sizes 300,1000,5000] [--seeds 0]
        [--kimg 60] [--every 10] [--width 64] [--jobs 2] [--work /tmp/ganpipe-data-efficiency] [--out bench/results]

Finished cells are kept in ``WORK/cells``: a rerun only runs what is missing. Prints a Markdown table with
the machine's CPU flags; writes ``OUT/data_efficiency.json`` (cells, with their curves) and
``OUT/data_efficiency.png`` (nFD against CPU minutes, one panel per set), and copies each cell's sample
grid to ``OUT/data_efficiency_grids/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import recipes  # noqa: E402
import sets  # noqa: E402

RECIPES = {"old": "lr2e-4", "new": "default"}  # label -> bench/recipes.py's recipe
LABELS = {"old": "before auto (2e-4, no SN)", "new": "default (auto: 1e-3 + SN)"}


def with_time(cell: dict, n_threads: int) -> dict:
    """The cell with its label, training CPU minutes and the nFD curve against CPU minutes."""
    label = next(k for k, v in RECIPES.items() if v == cell["recipe"])
    per_kimg = cell["wall_seconds"] / 60 / cell["kimg"] * n_threads  # CPU minutes per kimg, evaluations included
    return cell | {"label": label, "threads": n_threads, "cpu_minutes": cell["kimg"] * per_kimg,
                   "curve_cpu_minutes": [[k * per_kimg, v] for k, v in cell.get("nfd_curve", [])]}


def pairs(cells: list[dict]) -> list[tuple[dict, dict]]:
    """(old, new) cells of the same set, size and seed, in the cells' order."""
    by = {(c["set"], c["size"], c["seed"], c["label"]): c for c in cells}
    return [(c, by[k[:3] + ("new",)]) for k, c in by.items() if k[3] == "old" and k[:3] + ("new",) in by]


def table(cells: list[dict], kimg: float, width: int, flags: str) -> str:
    lines = [f"{kimg:g} kimg per cell, width {width}, CPU flags: {flags}; nFD [95% CI] of the last snapshot "
             "(5,000 samples), training CPU minutes",
             "| set | images | seed | old nFD | old CPU min | new nFD | new CPU min | new / old |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c, n in pairs(cells):
        f = lambda x: f"{x['nfd']:.3f} [{x['nfd_ci95'][0]:.3f}, {x['nfd_ci95'][1]:.3f}]"  # noqa: E731
        lines.append(f"| {c['set']} | {c['size']:,} | {c['seed']} | {f(c)} | {c['cpu_minutes']:.1f} | {f(n)} | "
                     f"{n['cpu_minutes']:.1f} | {n['nfd'] / c['nfd']:.2f} |")
    return "\n".join(lines)


def plot(cells: list[dict], path: Path, kimg: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(dict.fromkeys(c["set"] for c in cells))
    sizes = sorted({c["size"] for c in cells})
    colours = dict(zip(sizes, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.2), squeeze=False)
    first_seed = min(c["seed"] for c in cells)
    for ax, kind in zip(axes[0], kinds):
        for c in (c for c in cells if c["set"] == kind):
            style = "-" if c["label"] == "new" else "--"
            pts = c["curve_cpu_minutes"]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, style, color=colours[c["size"]], alpha=0.8 if c["seed"] == first_seed else 0.45,
                        label=f"{c['size']:,} images, {LABELS[c['label']]}" if c["seed"] == first_seed else None)
            lo, hi = c["nfd_ci95"]
            ax.errorbar([c["cpu_minutes"]], [c["nfd"]], yerr=[[c["nfd"] - lo], [hi - c["nfd"]]], color=colours[c["size"]],
                        marker="o" if c["label"] == "new" else "s", capsize=3)
        ax.set_title(f"{kind}: nFD against training CPU minutes ({kimg:g} kimg)")
        ax.set_xlabel("training CPU minutes (evaluations included)")
        ax.set_ylabel("nFD (0 = real data, 1 = untrained; log scale)")
        ax.set_yscale("log")  # early swings above 1 and the last snapshots near 0.02 in one panel
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.text(0.01, 0.01, "lines: in-training nFD on 2,000 samples; markers: last snapshot on 5,000 with 95% CI; "
             "solid/o new default, dashed/s old; one line per seed", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="shapes,photos")
    ap.add_argument("--sizes", default="300,1000,5000")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--kimg", type=float, default=60.0)
    ap.add_argument("--every", type=float, default=10.0, help="kimg between in-training nFD evaluations")
    ap.add_argument("--width", type=int, default=64, help="g_width and d_width (params.yaml's: 64)")
    ap.add_argument("--n", type=int, default=5000, help="generated samples for the last snapshot's score")
    ap.add_argument("--jobs", type=int, default=2, help="cells at a time (each on cpus // jobs threads)")
    ap.add_argument("--work", default="/tmp/ganpipe-data-efficiency")
    ap.add_argument("--out", default=str(REPO / "bench/results"))
    a = ap.parse_args()
    kinds = a.sets.split(",")
    unknown = [k for k in kinds if k not in sets.KINDS]
    if unknown:
        raise SystemExit(f"error: --sets: unknown {', '.join(unknown)} ({', '.join(sets.KINDS)})")
    raw = recipes.run_cells(a, kinds, [int(s) for s in a.sizes.split(",")], [int(s) for s in a.seeds.split(",")],
                            list(RECIPES.values()), a.jobs)
    cells = [with_time(c, recipes.cell_threads(a.jobs)) for c in raw]
    out = Path(a.out)
    (out / "data_efficiency_grids").mkdir(parents=True, exist_ok=True)
    for c in cells:
        dst = out / "data_efficiency_grids" / f"{c['set']}{c['size']}_{c['label']}_seed{c['seed']}.png"
        shutil.copy(c["grid"], dst)
        c["grid"] = str(dst.relative_to(out))
    report = table(cells, a.kimg, a.width, recipes.cpu_flags())
    (out / "data_efficiency.json").write_text(json.dumps(cells, indent=1, sort_keys=True) + "\n")
    plot(cells, out / "data_efficiency.png", a.kimg)
    print("\n" + report)
    ratios = [n["nfd"] / o["nfd"] for o, n in pairs(cells)]
    if ratios:
        print(f"new / old nFD: geometric mean {float(np.exp(np.mean(np.log(ratios)))):.2f} over {len(ratios)} pairs")


if __name__ == "__main__":
    main()
