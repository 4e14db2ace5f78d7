#!/usr/bin/env bash
# The GPU check: run it on a machine with an NVIDIA GPU (about 8 minutes); it writes one log,
# bench/results/gpu_check-<UTC time>.log, and prints it as it goes.
#
#   bash bench/gpu_check.sh              (from anywhere)
#   GPU_CHECK_CPU=1 bash bench/gpu_check.sh   on a machine without a GPU: the same steps on the CPU
#                                        (a dry run of the script itself; the figures are not GPU figures)
#
# 1. set-up: `make setup GPU=1` (the locked TensorFlow with NVIDIA's CUDA wheels, requirements-gpu.lock)
#    and the dataset; then the devices TensorFlow sees. No GPU seen: the check stops (exit 2) unless
#    GPU_CHECK_CPU=1. Set-up impossible (no package index): Keras on JAX instead (exit 3).
# 2. where the train stage's batches land (on a GPU: already on the GPU, uint8, by device prefetch);
#    the real stages on the tiny profile with augmentation on (prepare, features, train, generate,
#    evaluate), twice in two fresh copies of the project: train.json's devices, img/s, and whether the
#    two runs' generator, samples and eval.json are the same bytes (op determinism on the GPU).
# 3. bench/train_throughput.py (dcgan + ns, the default model): img/s of the stage against a plain
#    tf.function step at batch 64, 256 and 1024 in mixed_bfloat16, with the stage's input prefetched onto
#    the GPU (train.strategy: default's one-device strategy) against the same stage fed from the host
#    (--host-input); at 64 and 1024 also float32 and bfloat16 with op determinism on and off, XLA, and 8
#    steps per execution (11 runs, ~25 s each).
# STEPS (default 30) sets the timed steps of 3, BATCHES (default "64 256 1024") its batch sizes; with
# GPU_CHECK_CPU=1 they default to 3 and "64".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
if [ "${GPU_CHECK_CPU:-}" = 1 ]; then STEPS=${STEPS:-3}; BATCHES=${BATCHES:-64}; fi
STEPS=${STEPS:-30}
BATCHES=${BATCHES:-64 256 1024}
mkdir -p bench/results
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} TQDM_DISABLE=1  # a readable log: no start-up chatter, no bars
LOG="bench/results/gpu_check-$(date -u +%Y%m%dT%H%M%SZ).log"
exec > >(tee "$LOG") 2>&1
t0=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }

stamp "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
grep -m1 "model name" /proc/cpuinfo; nproc
GPU=1
[ "${GPU_CHECK_CPU:-}" = 1 ] && GPU=
stamp "set-up (make setup${GPU:+ GPU=1} dataset)"
if ! make -s setup dataset ${GPU:+GPU=1}; then
    # A machine without a package index (this project's lent GPUs have none) cannot install the CUDA
    # wheels: the same networks under Keras' JAX backend instead (bench/jax_throughput.py; every step
    # XLA-compiled; plain steps, no EMA or input pipeline). Wheels that machine lacks may be put in .whl/.
    stamp "set-up failed: Keras on JAX instead"
    if ls .whl/*.whl >/dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/ganpipe-site .whl/*.whl &&
            export PYTHONPATH=/tmp/ganpipe-site${PYTHONPATH:+:$PYTHONPATH}
    fi
    KERAS_BACKEND=jax python3 bench/jax_throughput.py --steps "$STEPS"
    stamp "done (JAX fallback); log: $LOG"
    exit 3
fi
PY="$ROOT/.venv/bin/python"
$PY -c "import tensorflow as tf; print('TensorFlow', tf.__version__, 'GPUs:', tf.config.list_physical_devices('GPU'))"
if ! $PY -c "import sys, tensorflow as tf; sys.exit(0 if tf.config.list_physical_devices('GPU') else 1)" 2>/dev/null; then
    if [ "${GPU_CHECK_CPU:-}" != 1 ]; then echo "no GPU visible to TensorFlow: stopping (GPU_CHECK_CPU=1 runs it on the CPU)"; exit 2; fi
    echo "no GPU: running on the CPU (GPU_CHECK_CPU=1)"
fi

stamp "where the train stage's batches land (train.strategy: default)"
$PY - 2>&1 <<'PY' | grep -v "^[IWE]0000 \|^WARNING: All log messages"  # TensorFlow's start-up chatter
import numpy as np
from ganpipe.distribute import make_strategy
from ganpipe.feed import Feed
strategy = make_strategy("default")
feed = Feed(np.zeros((256, 28, 28, 1), np.uint8), np.zeros(256, np.int32), 64, 0, strategy)
x, _ = next(iter(feed.dataset(0, 1)))
print("strategy:", type(strategy).__name__ if strategy else None, "| a batch is on:", x.device, x.dtype.name)
PY

stamp "the stages, tiny profile with augmentation on, twice"
for run in a b; do
    W=$(mktemp -d /tmp/ganpipe-gpu-check-$run.XXXX)
    git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$W"
    ln -s "$ROOT/.venv" "$W/.venv"
    (cd "$W" && $PY - <<'PY'
import yaml
from ganpipe.profiles import load_profile
p = yaml.safe_load(open("params.yaml"))
for section, values in load_profile("tiny", ".").items():
    p[section].update(values)
p["train"].update({"augment_p": 1.0, "eval_every": 0, "keep": "last"})  # DiffAugment on every step
open("params.yaml", "w").write(yaml.safe_dump(p, sort_keys=False))
PY
    )
    for stage in prepare features train generate evaluate; do
        (cd "$W" && sh stages/python.sh "stages/$stage.py" 2>&1 | grep -v "^\s*$" | tail -2) || { echo "stage $stage failed"; exit 1; }
    done
    (cd "$W" && $PY -c "import json; m = json.load(open('metrics/train.json')); print('train:', m['devices'], m['img_per_sec'], 'img/s')")
    (cd "$W" && sha256sum models/generator.keras data/generated/samples.npz metrics/eval.json) > "/tmp/ganpipe-gpu-check-$run.sha"
    cat "/tmp/ganpipe-gpu-check-$run.sha"
    rm -rf "$W"
done
if diff -q /tmp/ganpipe-gpu-check-a.sha /tmp/ganpipe-gpu-check-b.sha >/dev/null; then
    echo "bytes: the two runs are identical (generator, samples, eval.json)"
else
    echo "bytes: the two runs DIFFER"; diff /tmp/ganpipe-gpu-check-a.sha /tmp/ganpipe-gpu-check-b.sha
fi

stamp "throughput (bench/train_throughput.py, dcgan + ns)"
syn=""; $PY -c "from ganpipe.decoders import find_fashion_mnist; find_fashion_mnist()" >/dev/null 2>&1 || syn="--synthetic"
ERR=/tmp/ganpipe-gpu-check-throughput.err
tp() { timeout 120 $PY bench/train_throughput.py --archs dcgan --losses ns --steps "$STEPS" --rounds 1 $syn "$@" 2>>"$ERR" |
       tail -1 | sed "s|^|$* : |"; }
for batch in $BATCHES; do
    tp --batch $batch --precision mixed_bfloat16 --deterministic off --host-input
    [ "$batch" = 256 ] && continue  # the full matrix at the smallest and largest batch only (time)
    tp --batch $batch --precision float32 --deterministic on
    tp --batch $batch --precision float32 --deterministic off
    tp --batch $batch --precision mixed_bfloat16 --deterministic on
    tp --batch $batch --precision mixed_bfloat16 --xla
    tp --batch $batch --precision mixed_bfloat16 --deterministic off --steps-per-execution 8
done
stamp "done; log: $LOG (the benches' stderr: $ERR)"
