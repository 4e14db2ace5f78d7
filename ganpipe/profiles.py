"""Params profiles as files (``profiles/NAME.yaml``: a partial params.yaml) and ``ganpipe exp``, which runs
one as a DVC experiment on top of the committed params.

``dvc exp run -S ...`` in the workspace leaves the experiment's params in ``params.yaml``, and queued or
``--temp`` experiments start from the workspace, so the next variant silently inherits them. ``ganpipe
exp`` refuses to start while ``params.yaml`` differs from ``HEAD`` (and says how to reset it), so every
variant is exactly HEAD's params plus its profile plus its ``-S`` overrides.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from . import params
from .errors import GanpipeError, ParamsError

PROFILES = "profiles"


def available(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / PROFILES).glob("*.yaml"))


def load_profile(name: str, root: str | os.PathLike = ".") -> dict:
    """``profiles/NAME.yaml`` as {section: {key: value}}, every key checked against the params schema."""
    root = Path(root)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise GanpipeError(f"profile {name!r}: a profile is named by a file in {PROFILES}/ (letters, digits, "
                           f"'_', '-', '.'; available: {', '.join(available(root)) or 'none'})")
    path = root / PROFILES / f"{name}.yaml"
    if not path.is_file():
        raise GanpipeError(f"{path}: no such profile (available: {', '.join(available(root)) or 'none'})")
    data = params.load_yaml(path.read_bytes(), path) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ParamsError(f"{path}: a profile maps params sections to {{key: value}}")
    base = params.read_params_file(root / "params.yaml")
    for section, values in data.items():
        if section not in params.SECTIONS:
            raise ParamsError(f"{path}: {section}: unknown section (known: {', '.join(sorted(params.SECTIONS))})")
        params.from_dict(params.SECTIONS[section], base.get(section, {}) | values, where=str(path))
    return data


def _value(v) -> str:
    """A value as ``-S`` parses it (Hydra's override grammar): strings single-quoted, so that a comma,
    bracket, ``=`` or quote in them is never a sweep or a syntax of its own (Hydra unescapes backslashes
    only before a quote or the closing one); the rest as JSON (null, true, 0.0005, ["a", "b"])."""
    if isinstance(v, str):
        body = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), v)
        return f"'{body}'"
    return json.dumps(v)


def set_param_args(profile: dict) -> list[str]:
    """``-S section.key=value`` for every key of a profile, in file order."""
    return [arg for section, values in profile.items() for k, v in values.items()
            for arg in ("-S", f"{section}.{k}={_value(v)}")]


def check_params_committed(root: Path) -> None:
    """Refuse while params.yaml differs from HEAD: a queued or temp experiment would inherit the change."""
    proc = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "params.yaml"], cwd=root, capture_output=True)
    if proc.returncode == 1:
        raise GanpipeError(
            "params.yaml differs from HEAD (a `dvc exp run` in the workspace leaves its params there), and the "
            "experiment would inherit that: commit it, or reset it with `git checkout HEAD -- params.yaml` "
            "(every experiment stays available through `dvc exp apply NAME`); --from-workspace skips this check")
    if proc.returncode != 0:
        raise GanpipeError(f"git diff failed in {root}: {proc.stderr.decode(errors='replace').strip()}")


def exp_command(profile: str, name: str | None, queue: bool, overrides: list[str], root: Path,
                dvc_args: list[str] = ()) -> list[str]:
    """``dvc exp run -n NAME [--queue] -S <profile> -S <overrides> <dvc_args>``: any other ``dvc exp run``
    argument (``-f``, ``--temp``, ``-m``, stage targets) passes through as given."""
    cmd = [str(Path(sys.prefix) / "bin" / "dvc"), "exp", "run", "-n", name or profile]
    if queue:
        cmd.append("--queue")
    cmd += set_param_args(load_profile(profile, root))
    for o in overrides:
        cmd += ["-S", o]
    return cmd + list(dvc_args)


def seed_commands(profile: str, name: str | None, seeds: int, overrides: list[str], root: Path,
                  dvc_args: list[str] = ()) -> list[list[str]]:
    """``seeds`` queued experiments of one variant, ``NAME-seedS`` for S = the committed ``base.seed`` + 0,
    1, ...: what ``ganpipe compare`` summarises by the spread between seeds."""
    if seeds < 1:
        raise GanpipeError(f"--seeds {seeds}: give at least 1")
    first = params.from_dict(params.Base, params.read_params_file(root / "params.yaml").get("base", {})).seed
    stem = name or profile
    return [exp_command(profile, f"{stem}-seed{first + i}", True, [*overrides, f"base.seed={first + i}"], root,
                        dvc_args) for i in range(seeds)]


def run_exp(profile: str, name: str | None = None, queue: bool = False, overrides: list[str] = (),
            from_workspace: bool = False, root: str | os.PathLike = ".", dvc_args: list[str] = (),
            seeds: int | None = None) -> int:
    root = Path(root)
    if not from_workspace:
        check_params_committed(root)
    cmds = (seed_commands(profile, name, seeds, list(overrides), root, dvc_args) if seeds
            else [exp_command(profile, name, queue, list(overrides), root, dvc_args)])
    for cmd in cmds:
        print("ganpipe exp: " + " ".join(cmd[1:]), flush=True)
        code = subprocess.run(cmd, cwd=root).returncode
        if code:
            return code
    if seeds:
        print(f"ganpipe exp: {seeds} experiments queued; `dvc queue start` runs them, `ganpipe compare` "
              "shows their spread", flush=True)
    return 0
