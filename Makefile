# Two entry points for a fresh Debian/Ubuntu machine with Python 3.11 (see README):
#   make run   set up .venv and the dataset, then `dvc repro` the pipeline
#   make test  the same set-up, then the whole test suite
# Both are idempotent: the venv is rebuilt only when pyproject.toml changes.
#   make setup GPU=1   adds NVIDIA's CUDA libraries for TensorFlow (tensorflow[and-cuda], the locked
#                      version) and prints the GPUs TensorFlow sees; remembered: later rebuilds keep it.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ganpipe-installed
LOCK   := requirements.lock
FMNIST := /usr/share/datasets/fashion-mnist
# pytest-xdist: one worker per core, a test module per worker (its module fixtures made once); the
# suite's real-DVC runs share one tiny pipeline run across workers (tests/conftest.py: tiny_run)
PYTEST_ARGS ?= -n auto --dist loadfile
GPU_STAMP := $(VENV)/.ganpipe-gpu
GPU ?= $(if $(wildcard $(GPU_STAMP)),1,)

.PHONY: run test setup dataset compare lock lock-gpu wheelhouse

run: setup dataset
	$(VENV)/bin/dvc repro

test: setup dataset
	$(PY) -m pytest $(PYTEST_ARGS)

setup: $(STAMP) $(if $(GPU),$(GPU_STAMP))

# Linux x86_64: the exact versions of requirements.lock (what CI and the recorded figures ran with);
# elsewhere (macOS, arm64) pip resolves pyproject.toml's ranges. A change of either rebuilds the venv.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if [ "$$(uname -sm)" = "Linux x86_64" ]; then \
	  echo "setup: installing requirements.lock"; \
	  $(PY) -m pip install --quiet -r $(LOCK) && $(PY) -m pip install --quiet --no-deps -e '.[dev]'; \
	else \
	  $(PY) -m pip install --quiet -e '.[dev]'; \
	fi
	@touch $(STAMP)

# The CUDA build of the locked TensorFlow (after any rebuild of the venv, which wipes it).
$(GPU_STAMP): $(STAMP) requirements-gpu.lock
	@v=$$($(PY) -c 'import importlib.metadata as m; print(m.version("tensorflow"))'); \
	  echo "setup: installing tensorflow[and-cuda]==$$v"; \
	  $(PY) -m pip install --quiet "tensorflow[and-cuda]==$$v" -c requirements-gpu.lock
	@$(PY) -c 'import tensorflow as tf; g = tf.config.list_physical_devices("GPU"); \
	  print("setup: TensorFlow sees", ", ".join(d.name for d in g) if g else "no GPU (is the NVIDIA driver installed? nvidia-smi)")'
	@touch $(GPU_STAMP)

# Regenerate requirements.lock from pyproject.toml's ranges in a throw-away venv.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip && .venv-lock/bin/pip install --quiet -e '.[dev]'
	{ sed -n '1,2p' $(LOCK); .venv-lock/bin/pip freeze --exclude-editable | sort; } > $(LOCK).new
	mv $(LOCK).new $(LOCK) && rm -rf .venv-lock

# Re-resolve requirements-gpu.lock for the locked TensorFlow (pip's dry run: nothing is installed).
lock-gpu: setup
	@v=$$($(PY) -c 'import importlib.metadata as m; print(m.version("tensorflow"))'); \
	  $(PY) -m pip install --quiet --dry-run --report /tmp/ganpipe-gpu-report.json "tensorflow[and-cuda]==$$v"
	{ sed -n '1,2p' requirements-gpu.lock; $(PY) -c 'import json; r = json.load(open("/tmp/ganpipe-gpu-report.json")); \
	  print("\n".join(sorted(i["metadata"]["name"] + "==" + i["metadata"]["version"] for i in r["install"])))'; } > requirements-gpu.lock.new
	mv requirements-gpu.lock.new requirements-gpu.lock

# For a GPU machine without a package index (Python 3.12, JAX on CUDA, no TensorFlow): the wheels the stages
# need that its image lacks, and Fashion-MNIST, in .wheelhouse/ (~51 MiB); bench/gpu_check.sh installs them.
wheelhouse: setup dataset
	$(PY) bench/wheelhouse.py --out .wheelhouse

# Fashion-MNIST from Debian's package, or Keras' cache; never downloaded at run time.
dataset:
	@if $(PY) -c 'from ganpipe.decoders import find_fashion_mnist; find_fashion_mnist()' 2>/dev/null; then \
	  echo "dataset: Fashion-MNIST found"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "dataset: installing Debian package dataset-fashion-mnist"; \
	  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) && test -d $(FMNIST); \
	else \
	  echo "dataset: Fashion-MNIST is missing. Run as root: apt-get install -y dataset-fashion-mnist"; \
	  echo "         (or fill Keras' cache: python -c 'import keras; keras.datasets.fashion_mnist.load_data()')"; \
	  exit 1; \
	fi

# The experiment table with the columns that matter.
compare: setup
	$(VENV)/bin/dvc exp show --md --drop '.*' --keep 'Experiment|^fd_clf$$|^fd_inf_clf$$|^kid_clf_mean$$|^precision_clf$$|^recall_clf$$|^coverage_clf$$|model\.(arch|loss)|train\.(kimg|epochs|g_lr|d_lr)'
