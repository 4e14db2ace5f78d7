"""Packaging: one TensorFlow distribution on every platform, a GPU extra that adds to it, and a lock of
exact versions that agrees with pyproject.toml's ranges and is what `make setup` (hence CI) installs."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_the_lock_pins_every_dependency_inside_its_range():
    pins = lock()
    reqs = [Requirement(r) for r in PYPROJECT["dependencies"] + PYPROJECT["optional-dependencies"]["dev"]]
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} outside {req.specifier}"
    assert "tensorflow-cpu" not in pins


def test_one_tensorflow_distribution_and_a_gpu_extra_that_adds_to_it():
    base = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["dependencies"]}
    assert "tensorflow" in base and "tensorflow-cpu" not in base  # tensorflow-cpu has no macOS/arm64 wheels
    (gpu,) = [Requirement(r) for r in PYPROJECT["optional-dependencies"]["gpu"]]
    assert gpu.name == "tensorflow" and gpu.extras == {"and-cuda"}  # the same package: nothing to conflict


def test_make_setup_and_ci_install_the_lock():
    make = (REPO / "Makefile").read_text()
    rule = make[make.index("$(STAMP): pyproject.toml"):make.index("@touch $(STAMP)")]
    assert "$(LOCK)" in rule.splitlines()[0] and "pip install --quiet -r $(LOCK)" in rule
    assert re.search(r"^LOCK\s*:= requirements.lock$", make, re.M)
    assert "make test" in (REPO / ".ci/run").read_text() and "make test" in (REPO / "README.md").read_text()
