#!/usr/bin/env bash
# GPU check: training-step throughput on this machine's GPU in float32, mixed precision and with XLA.
#
#   bash bench/gpu_check.sh          (from anywhere; prints img/s for each setting)
#
# 1. TensorFlow path (the pipeline's own backend): a venv .venv-gpu with `pip install -e .[gpu]`
#    (tensorflow[and-cuda]; needs the package index), then bench/train_throughput.py (stage vs plain
#    step, dcgan + ns = the default model) in float32, mixed_bfloat16, mixed_float16, and float32 + XLA.
# 2. Fallback when no TensorFlow GPU build can be installed (an offline machine that has JAX): the same
#    networks under Keras' JAX backend, bench/jax_throughput.py (every step XLA-compiled), in float32
#    and mixed_bfloat16. Wheels that machine lacks (keras, namex, optree) may be put in .whl/.
# STEPS (default 40) sets the timed steps; DATA=synthetic skips loading Fashion-MNIST.
set -uo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-40}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"

tf_gpu() { "$1" -c "import tensorflow as tf, sys; sys.exit(0 if tf.config.list_physical_devices('GPU') else 1)" >/dev/null 2>&1; }
PY=""
if [ -x .venv-gpu/bin/python ] && tf_gpu .venv-gpu/bin/python; then
    PY=.venv-gpu/bin/python
elif python3 -m venv .venv-gpu >/dev/null 2>&1 &&
     timeout 900 .venv-gpu/bin/pip install -q --retries 0 --timeout 15 -e ".[gpu]" >/tmp/ganpipe-gpu-pip.log 2>&1 &&
     tf_gpu .venv-gpu/bin/python; then
    PY=.venv-gpu/bin/python
fi

if [ -n "$PY" ]; then
    echo "== TensorFlow $($PY -c 'import tensorflow as tf; print(tf.__version__)') on GPU"
    syn=""; $PY -c "from ganpipe.data import find_fashion_mnist; find_fashion_mnist()" >/dev/null 2>&1 || syn="--synthetic"
    for batch in 128 1024; do
        for prec in float32 mixed_bfloat16 mixed_float16; do
            $PY bench/train_throughput.py --archs dcgan --losses ns --steps "$STEPS" --batch $batch --precision $prec $syn
        done
        $PY bench/train_throughput.py --archs dcgan --losses ns --steps "$STEPS" --batch $batch --xla $syn
        $PY bench/train_throughput.py --archs dcgan --losses ns --steps "$STEPS" --batch $batch --xla --precision mixed_bfloat16 $syn
    done
else
    echo "== no TensorFlow GPU build could be installed here (see /tmp/ganpipe-gpu-pip.log); Keras on JAX instead"
    rm -rf .venv-gpu
    if ls .whl/*.whl >/dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/ganpipe-site .whl/*.whl &&
            export PYTHONPATH=/tmp/ganpipe-site${PYTHONPATH:+:$PYTHONPATH}
    fi
    KERAS_BACKEND=jax python3 bench/jax_throughput.py --steps "$STEPS"
fi
