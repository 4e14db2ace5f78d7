#!/usr/bin/env bash
# The GPU check, for a GPU machine without a package index (this project's lent H200s, many HPC nodes):
# Python 3.12 with JAX on CUDA, no TensorFlow. It runs the real stages under `dvc repro` on Keras' JAX
# backend from the offline wheelhouse alone, and writes one log, bench/results/gpu_check-<UTC time>.log
# (printed as it goes), with the profiles' sample grids beside it (and in $OUT when that is set).
#
#   make wheelhouse                           here, on a machine with an index: .wheelhouse/ (~21 MiB)
#   bash bench/gpu_check.sh                   there, with .wheelhouse/ carried along (at most ~9 minutes)
#   GPU_CHECK_CPU=1 bash bench/gpu_check.sh   here, without a GPU: the same steps in a stand-in for the
#                                             GPU image (a Python 3.12 venv of the image's packages from
#                                             PyPI, CPU JAX, no TensorFlow) at the tiny profile's sizes
#
# 1. the interpreter and its packages: the wheelhouse installed with `pip install --no-index --no-deps
#    --target`; JAX's devices; TensorFlow must not be importable.
# 2. the default params (`dvc repro` as a user runs it: train.backend auto is jax there), then
#    profiles/gpu.yaml on top: train.json's backend, devices, img/s and wall time, eval.json's fd_clf, the
#    sample grid. Each profile's train and generate run a second time in a copy (checkpoints removed):
#    the generator and samples must be the same bytes (XLA's deterministic GPU ops).
# 3. throughput of the stage's step machinery (bench/backend_throughput.py, JAX): batch 64 float32 and
#    1024 bfloat16 at 200 steps per call (the issue's goals: 55k and 250k img/s on an H200).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CPU=${GPU_CHECK_CPU:-}
mkdir -p bench/results
export TQDM_DISABLE=1 KERAS_BACKEND=jax TF_CPP_MIN_LOG_LEVEL=2
TAG=$(date -u +%Y%m%dT%H%M%SZ)
LOG="bench/results/gpu_check-$TAG.log"
exec > >(tee "$LOG") 2>&1
t0=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }

stamp "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
grep -m1 "model name" /proc/cpuinfo; nproc; grep -o -m1 'avx512f' /proc/cpuinfo || echo "no avx512f"

SITE=/tmp/ganpipe-site
if [ -n "$CPU" ]; then
    stamp "a CPU stand-in for the GPU image (GPU_CHECK_CPU=1)"
    PYV=python3  # the image's Python is 3.12: take one where there is one (a pyenv shim may not run)
    for cand in python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
        if "$cand" -c "" 2>/dev/null; then PYV=$cand; break; fi
    done
    IMAGE=/tmp/ganpipe-image
    if [ ! -x "$IMAGE/bin/python" ]; then
        "$ROOT/.venv/bin/python" bench/wheelhouse.py --image-part | grep -v '^setuptools==' > /tmp/ganpipe-image.txt
        "$PYV" -m venv "$IMAGE" && "$IMAGE/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location"
        "$IMAGE/bin/python" -m pip install -q -r /tmp/ganpipe-image.txt 2>&1 | grep -v "^WARNING: Location"
    fi
    if ! "$IMAGE/bin/python" -c "import jax, numpy, scipy, skimage, yaml" 2>/dev/null; then
        echo "stand-in set-up failed"; rm -rf "$IMAGE"; exit 1
    fi
    PY="$IMAGE/bin/python"
    WHV=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    [ -d .wheelhouse ] || "$ROOT/.venv/bin/python" bench/wheelhouse.py --python-version "$WHV" || exit 1
else
    PY=$(command -v python3)
fi
[ -n "$(ls .wheelhouse/*.whl 2>/dev/null)" ] || { echo "no .wheelhouse/: run 'make wheelhouse' on a machine with an index and carry it"; exit 1; }
stamp "the wheelhouse into $SITE ($(du -sh .wheelhouse | cut -f1))"
rm -rf "$SITE"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .wheelhouse/*.whl || exit 1
export PYTHONPATH="$SITE"
"$PY" - <<'PY' || exit 1
import importlib.util, sys
import jax
print("python", sys.version.split()[0], "| jax", jax.__version__, "| devices:", jax.devices())
print("tensorflow importable:", importlib.util.find_spec("tensorflow") is not None)
PY
if ! "$PY" -c "from ganpipe.decoders import find_fashion_mnist; find_fashion_mnist()" 2>/dev/null; then
    export KERAS_HOME=/tmp/ganpipe-keras  # Fashion-MNIST from the wheelhouse, where Keras' cache would hold it
    mkdir -p "$KERAS_HOME/datasets" && cp -r .wheelhouse/fashion-mnist "$KERAS_HOME/datasets/"
fi
if [ -z "$CPU" ] && ! "$PY" -c "import jax, sys; sys.exit(0 if jax.default_backend() == 'gpu' else 1)"; then
    echo "JAX sees no GPU: stopping (GPU_CHECK_CPU=1 runs the check on the CPU)"; exit 2
fi

# A copy of the project (tracked files) with its own git repo and .venv/bin/python -> this interpreter.
project() {
    local w=$1
    mkdir -p "$w"
    if git -C "$ROOT" ls-files >/dev/null 2>&1; then
        git -C "$ROOT" ls-files -z | (cd "$ROOT" && tar --null -T - -cf -) | tar -xf - -C "$w"
    else  # a copy of the tree without its .git (as the device tool sends it): everything but outputs and caches
        (cd "$ROOT" && tar --exclude=./.git --exclude=./.venv --exclude=./.wheelhouse --exclude=./.dvc/cache \
            --exclude=./.dvc/tmp --exclude=./data/prepared --exclude=./data/features --exclude=./data/generated \
            --exclude=./models --exclude=./checkpoints --exclude=./bench/results -cf - .) | tar -xf - -C "$w"
    fi
    # a wrapper, not a link: a venv's python found through a link elsewhere loses its venv (pyvenv.cfg is
    # looked for beside the path it was started by), and the image's python3 is a venv's
    mkdir -p "$w/.venv/bin" && printf '#!/bin/sh\nexec "%s" "$@"\n' "$PY" > "$w/.venv/bin/python" && chmod +x "$w/.venv/bin/python"
    if command -v git >/dev/null; then
        (cd "$w" && git init -q && git add -A && git -c user.email=check@ganpipe.invalid -c user.name=check commit -qm check)
    else  # DVC without git
        (cd "$w" && "$PY" -m dvc config --local core.no_scm true)
    fi
}
profile() {  # apply profiles/$1.yaml (and JSON overrides $2) to params.yaml
    "$PY" - "$1" "${2:-{\}}" <<'PY'
import json, sys, yaml
from ganpipe.profiles import load_profile
p = yaml.safe_load(open("params.yaml"))
for name in [n for n in sys.argv[1].split("+") if n]:
    for section, values in load_profile(name, ".").items():
        p[section].update(values)
for section, values in json.loads(sys.argv[2]).items():
    p[section].update(values)
open("params.yaml", "w").write(yaml.safe_dump(p, sort_keys=False))
PY
}
report() {  # what a run made
    "$PY" - <<'PY'
import json
t = json.load(open("metrics/train.json")); e = json.load(open("metrics/eval.json"))
print(f"train: backend {t['backend']}, devices {t['devices']}, {t['kimg']} kimg, {t['img_per_sec']} img/s, "
      f"{t['wall_seconds']} s; kept {t['kept']}")
print(f"eval: fd_clf {e['fd_clf']:.3f}, kid_clf_mean {e['kid_clf_mean']:.4f}, precision {e['precision_clf']:.3f}, "
      f"recall {e['recall_clf']:.3f}")
PY
}
same_bytes() {  # train and generate again in a copy of $1 (checkpoints removed): the same generator and samples?
    local a=$1 b=$1-again
    rm -rf "$b" && cp -a "$a" "$b" && rm -rf "$b/checkpoints"
    (cd "$b" && sh stages/python.sh stages/train.py >/dev/null 2>&1 && sh stages/python.sh stages/generate.py >/dev/null 2>&1) ||
        { echo "bytes: the second run failed"; DIFFERS=1; return; }
    if (cd "$a" && sha256sum models/generator.keras data/generated/samples.npz) | (cd "$b" && sha256sum -c --quiet); then
        echo "bytes: the second run's generator and samples are identical"
    else
        echo "bytes: the second run DIFFERS"; DIFFERS=1
    fi
}

W=/tmp/ganpipe-gpu-check
DIFFERS=
rm -rf "$W" "$W-again"
project "$W"
cd "$W"
if [ -n "$CPU" ]; then  # the tiny profile's sizes: the CPU runs what the GPU runs, smaller
    DEFAULT=tiny; GPU_PROFILE=tiny+gpu; GPU_OVERRIDES='{"train": {"kimg": 24, "epochs": null, "eval_every": 8, "steps_per_execution": 32, "checkpoint_every": 100}}'
else
    DEFAULT=; GPU_PROFILE=gpu; GPU_OVERRIDES='{}'
fi
for run in default gpu; do
    if [ "$run" = default ]; then
        stamp "the stages, default params${DEFAULT:+ (CPU: profile $DEFAULT)}: dvc repro"
        profile "$DEFAULT"
    else
        stamp "the stages, profile $GPU_PROFILE: dvc repro (prepare and features unchanged)"
        profile "$GPU_PROFILE" "$GPU_OVERRIDES"
    fi
    "$PY" -m dvc repro > /tmp/ganpipe-gpu-check-$run.log 2>&1
    status=$?
    grep -E "^(Running stage|train:|features:|generate:|evaluate:|prepare:|error|ERROR)" /tmp/ganpipe-gpu-check-$run.log | cut -c1-220
    [ $status = 0 ] || { tail -20 /tmp/ganpipe-gpu-check-$run.log; echo "the pipeline failed"; exit 1; }
    report
    cp data/generated/plots/samples.png "$ROOT/bench/results/gpu_check-$TAG-$run-samples.png"
    [ -n "${OUT:-}" ] && cp data/generated/plots/samples.png "$OUT/gpu_check-$run-samples.png"
    stamp "the same bytes twice ($run)"
    same_bytes "$W"
done
cd "$ROOT"

stamp "throughput of the stage's steps (bench/backend_throughput.py, jax)"
if [ -n "$CPU" ]; then TP="--batches 64 --steps 16 --steps-per-execution 8"; else TP="--batches 64,1024 --steps 2000 --steps-per-execution 200"; fi
"$PY" bench/backend_throughput.py --backends jax $TP --rounds 1 --synthetic --precisions float32 2>&1 | tail -3
[ -z "$CPU" ] && "$PY" bench/backend_throughput.py --backends jax --batches 1024 --steps 2000 --steps-per-execution 200 \
    --rounds 1 --synthetic --precisions mixed_bfloat16 2>&1 | tail -1
[ -n "${OUT:-}" ] && cp "$LOG" "$OUT/"
stamp "done; log: $LOG"
[ -z "$DIFFERS" ] || { echo "a rerun was not the same bytes"; exit 1; }
