#!/bin/sh
# Run a stage script with the project's .venv interpreter, whatever `python` is first on PATH.
# The venv is looked for here and in parent folders, because queued experiments (`dvc exp run --queue`)
# run in a copy of the repo under .dvc/tmp/exps/. The copy's own `ganpipe/` comes first on the path.
# TensorFlow's C++ start-up chatter (CPU feature notes, absl banners, CUDA probes) stays out of stage
# logs (TF_CPP_MIN_LOG_LEVEL, read once when TF loads, and stages/launch.py's filter for what is logged
# before that setting applies); set TF_CPP_MIN_LOG_LEVEL=0 to see it all.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# On a GPU: memory taken as needed, not all of it at start-up, so two queued experiments
# (`dvc queue start -j 2`) can share a GPU; and room for the PTX JIT's kernel cache (the default 256 MiB
# is too small for TensorFlow's kernels on a GPU newer than its build, e.g. Hopper: it recompiles every run).
export TF_FORCE_GPU_ALLOW_GROWTH="${TF_FORCE_GPU_ALLOW_GROWTH:-true}"
export CUDA_CACHE_MAXSIZE="${CUDA_CACHE_MAXSIZE:-4294967296}"
d=$(pwd)
while [ "$d" != "/" ]; do
  if [ -x "$d/.venv/bin/python" ]; then
    PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" exec "$d/.venv/bin/python" "$(dirname "$0")/launch.py" "$@"
  fi
  d=$(dirname "$d")
done
echo "error: no .venv/bin/python in $(pwd) or above it; run 'make setup' in the repository first" >&2
exit 1
