#!/bin/sh
# Run a stage script with the project's .venv interpreter, whatever `python` is first on PATH.
# The venv is looked for here and in parent folders, because queued experiments (`dvc exp run --queue`)
# run in a copy of the repo under .dvc/tmp/exps/. The copy's own `ganpipe/` comes first on the path.
# TensorFlow's C++ start-up chatter (CPU feature notes, absl banners) stays out of stage logs; set
# TF_CPP_MIN_LOG_LEVEL=0 to see it. Set here, before any import: it is read once, when TF loads.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
d=$(pwd)
while [ "$d" != "/" ]; do
  if [ -x "$d/.venv/bin/python" ]; then
    PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" exec "$d/.venv/bin/python" "$@"
  fi
  d=$(dirname "$d")
done
echo "error: no .venv/bin/python in $(pwd) or above it; run 'make setup' in the repository first" >&2
exit 1
