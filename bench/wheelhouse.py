"""The offline wheelhouse for a GPU machine without a package index (`make wheelhouse`).

Such machines (this project's lent H200s, many HPC nodes) have Python 3.12 with JAX on CUDA and a set of
common packages (bench/gpu_image_packages.txt), and no TensorFlow. This downloads, on a machine with an
index, the Python 3.12 manylinux wheels of everything else the stages import on the JAX path, at the
versions this venv runs, into an ignored folder:

- the third-party modules the stage scripts import, directly or through the ganpipe modules they use
  (``ganpipe.imports``, read from the source, as dvc.yaml's dependencies are), and DVC itself;
- mapped to their distributions and closed over their requirements (this venv's metadata), less
  TensorFlow (the JAX path never imports it: tests/test_jax.py) and less what the image already holds.

It copies Fashion-MNIST's four files beside them (the default dataset, for a machine without Debian's
package), prints each wheel's size and the total, and fails when the total is over --limit MiB (64: what
travels with one device call, the project's files besides). On the GPU machine:

    pip install --no-index --no-deps --target /tmp/site .wheelhouse/*.whl && export PYTHONPATH=/tmp/site

    .venv/bin/python bench/wheelhouse.py [--out .wheelhouse] [--limit 64] [--list]
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata as md
import shutil
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ganpipe.decoders import FASHION_MNIST_FILES, find_fashion_mnist  # noqa: E402
from ganpipe.imports import library_modules  # noqa: E402

IMAGE = Path(__file__).with_name("gpu_image_packages.txt")
NOT_ON_THE_JAX_PATH = {"tensorflow"}
EXTRA = ["dvc"]  # the stages run under `dvc repro`; DVC's own package is imported by dvclive only lazily
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]


def stage_files() -> list[Path]:
    scripts = sorted((REPO / "stages").glob("*.py"))
    files = set(scripts)
    for script in scripts:
        files |= {REPO / m for m in library_modules(script)}
    return sorted(files)


def imported_modules(files) -> set[str]:
    """Top-level names of the non-stdlib, non-ganpipe modules ``files`` import (anywhere in them)."""
    out = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            out |= {n.split(".")[0] for n in names}
    return {m for m in out if m not in sys.stdlib_module_names and m not in ("ganpipe", "stages", "__future__")}


def distributions(modules: set[str]) -> set[str]:
    owners = md.packages_distributions()
    return {canonicalize_name(d) for m in modules for d in owners.get(m, [])}


def closure(names) -> dict[str, str]:
    """name -> installed version of ``names`` and their requirements (no extras), less NOT_ON_THE_JAX_PATH."""
    seen: dict[str, str] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen or name in NOT_ON_THE_JAX_PATH:
            continue
        dist = md.distribution(name)
        seen[name] = dist.version
        for r in dist.requires or []:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def image_packages() -> set[str]:
    lines = IMAGE.read_text().splitlines()
    return {canonicalize_name(ln.strip()) for ln in lines if ln.strip() and not ln.startswith("#")}


def needed() -> dict[str, str]:
    """Every distribution the stages need on the JAX path (the image's and the wheelhouse's), at this venv's
    versions."""
    return dict(sorted(closure(distributions(imported_modules(stage_files())) | set(EXTRA)).items()))


def wanted() -> dict[str, str]:
    """What the image lacks: the wheelhouse."""
    have = image_packages()
    return {k: v for k, v in needed().items() if k not in have}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / ".wheelhouse"))
    ap.add_argument("--limit", type=float, default=64.0, help="MiB")
    ap.add_argument("--list", action="store_true", help="print the packages and stop")
    ap.add_argument("--image-part", action="store_true",
                    help="print the packages the stages take from the image instead (a CPU stand-in for the image "
                         "installs these: bench/gpu_check.sh with GPU_CHECK_CPU=1) and stop")
    ap.add_argument("--python-version", default="3.12", help="of the wheels (the GPU image's Python: 3.12)")
    args = ap.parse_args()
    pins = wanted()
    if args.list or args.image_part:
        show = {k: v for k, v in needed().items() if k not in pins} if args.image_part else pins
        print("\n".join(f"{k}=={v}" for k, v in show.items()))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.whl"):
        if canonicalize_name(old.name.split("-")[0]) not in pins:
            old.unlink()  # a package no longer wanted
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", args.python_version, "--implementation", "cp", "-d", str(out)]
    cmd += [a for p in PLATFORMS for a in ("--platform", p)]
    have = {canonicalize_name(w.name.split("-")[0]) for w in out.glob("*.whl")}
    for name, version in pins.items():
        if name in have:
            continue
        if subprocess.run(cmd + [f"{name}=={version}"], capture_output=True).returncode != 0:
            # no wheel on the index (a pure-Python sdist, such as antlr4-python3-runtime 4.9.3): build one
            # here, which any Python 3 takes
            subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out),
                            f"{name}=={version}"], check=True)
    total = 0
    for whl in sorted(out.glob("*.whl")):
        size = whl.stat().st_size
        total += size
        print(f"{size / 2**20:8.2f} MiB  {whl.name}")
    print(f"{total / 2**20:8.2f} MiB in {len(list(out.glob('*.whl')))} wheels for {len(pins)} packages -> {out}")
    data = out / "fashion-mnist"  # the default dataset, for a machine without Debian's package
    data.mkdir(exist_ok=True)
    for name in FASHION_MNIST_FILES.values():
        shutil.copy2(find_fashion_mnist() / f"{name}.gz", data / f"{name}.gz")
    data_bytes = sum(f.stat().st_size for f in data.iterdir())
    print(f"{data_bytes / 2**20:8.2f} MiB  Fashion-MNIST -> {data}")
    total += data_bytes
    print(f"{total / 2**20:8.2f} MiB in all")
    if total > args.limit * 2**20:
        sys.exit(f"wheelhouse: {total / 2**20:.1f} MiB is over the {args.limit:g} MiB limit")


if __name__ == "__main__":
    main()
