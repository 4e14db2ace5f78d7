"""The train stage's checkpoint: what it holds, what made it, and whether a run may resume from it.

A checkpoint is one ``.npz`` (plain arrays, no pickle): every variable of the GAN in a fixed order
(:func:`state_variables`: the networks, the optimizers' slots, the step, the epoch sums, ADA's p and
accumulator), the sample grids, and a JSON ``meta`` entry with the records logged so far and the
*provenance*: the resolved params, seed, data digest and the SHA-256 of every library file that training
executes (derived from the import graph, ``ganpipe.imports``). A run resumes only from a checkpoint of the
same provenance (less the keys that only change the run's length), and a refused resume names the key or
file that differs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import params as P
from .errors import GanpipeError
from .imports import ROOT, library_modules
from .io import load_npz, save_npz, sha256_file

CHECKPOINT = "ckpt.npz"
# Params that change how long training runs, not its trajectory: a checkpoint made under other values of
# these is resumed (so raising `epochs` continues a finished run).
LENGTH_KEYS = ("epochs", "kimg", "max_steps", "checkpoint_every", "sample_grid", "eval_every", "keep",
               "steps_per_execution")
TRAINING = Path(__file__).resolve().parent / "training.py"


def code_files() -> list[str]:
    """The library files a training run executes: ``training.py`` and every ganpipe module it imports,
    transitively (``ganpipe.imports``): a checkpoint made by other code in any of them is not resumed."""
    return sorted(library_modules(TRAINING) | {"ganpipe/training.py"})


def provenance(model_cfg: P.Model, train_cfg: P.Train, seed: int, data_digest: str, quality_digest: str = "",
               schedule_steps: int = 0) -> dict:
    """Everything that determines the training trajectory and its logs, as stored in the checkpoint: the
    resolved params (less the length keys), seed, data, the code of each file, and (with evaluations on)
    the classifier and real statistics they use. A decaying ``train.lr_schedule`` makes the planned length
    (``schedule_steps``) part of the trajectory: a longer run decays more slowly from its first step."""
    t = {k: v for k, v in P.to_dict(train_cfg).items() if k not in LENGTH_KEYS}
    if train_cfg.lr_schedule != "constant":
        t["schedule_steps"] = schedule_steps
    code = {name: sha256_file(ROOT / name) for name in code_files()}
    return {"seed": seed, "model": P.to_dict(model_cfg), "train": t, "data": data_digest, "code": code,
            "quality": quality_digest}


def fingerprint(prov: dict) -> str:
    """The checkpoint's identity: the hash of its :func:`provenance`."""
    return hashlib.sha256(json.dumps(prov, sort_keys=True).encode()).hexdigest()


def what_differs(old: dict, new: dict) -> str:
    """The first difference between two provenances, for the message of a refused resume."""
    if not old:
        return "params, data or code (the checkpoint records no provenance)"
    for section in ("model", "train"):
        for k in sorted(set(old.get(section, {})) | set(new[section])):
            a, b = old.get(section, {}).get(k, "<absent>"), new[section].get(k, "<absent>")
            if a != b:
                return f"other params ({section}.{k}: {a!r} there, {b!r} now)"
    if old.get("seed") != new["seed"]:
        return f"another base.seed ({old.get('seed')} there, {new['seed']} now)"
    changed = sorted(f for f in set(old.get("code", {})) | set(new["code"]) if old.get("code", {}).get(f) != new["code"].get(f))
    if changed:
        return f"other code ({', '.join(changed)} differ{'s' if len(changed) == 1 else ''})"
    if old.get("data") != new["data"]:
        return "other data (the prepared train split differs)"
    return "another classifier or real statistics (the evaluations' inputs differ)"


def state_variables(gan) -> list:
    """Every variable a checkpoint must hold, in a fixed order. No RNG state: a step's random draws are
    keyed by the step (``gan.step_noise``), which is one of these."""
    groups = [gan.generator.variables, gan.discriminator.variables,
              [gan.step, gan.aug_p, gan.ada_acc], list(gan.reg_last.values()), [gan.sums[k] for k in sorted(gan.sums)]]
    if gan.ema_generator is not None:
        groups.append(gan.ema_generator.variables)
    for opt in (gan.g_optimizer, gan.d_optimizer):
        groups.append(opt.variables)
        inner = getattr(opt, "inner_optimizer", None)
        if inner is not None:
            groups.append(inner.variables)
    seen, out = set(), []
    for group in groups:
        for v in group:
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
    return out


@dataclass
class Checkpoint:
    """The host-side records of a run; the training loop is the only code that changes them. ``step``
    mirrors the GAN's step variable at the time of saving (read back before anything is restored)."""

    step: int
    fingerprint: str
    history: list = field(default_factory=list)  # one record per finished epoch
    grids: dict = field(default_factory=dict)  # epoch -> uint8 sample grid
    evals: list = field(default_factory=list)  # one record per quality evaluation
    best: dict = field(default_factory=dict)  # the best evaluation so far, whatever train.keep says
    best_weights: list = field(default_factory=list)  # the sampling generator's weights at ``best``
    provenance: dict = field(default_factory=dict)  # what made it (``provenance``): a refused resume says what differs


def save_checkpoint(path: Path, gan, ckpt: Checkpoint) -> None:
    arrays = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(state_variables(gan))}
    meta = {"step": ckpt.step, "fingerprint": ckpt.fingerprint, "history": ckpt.history, "evals": ckpt.evals,
            "best": ckpt.best, "n_vars": len(arrays), "provenance": ckpt.provenance}
    arrays["meta"] = np.asarray(json.dumps(meta, sort_keys=True))
    for epoch, grid in ckpt.grids.items():
        arrays[f"grid{int(epoch):05d}"] = grid
    arrays |= {f"best{i:05d}": w for i, w in enumerate(ckpt.best_weights)}
    save_npz(path, **arrays)


def read_checkpoint(path: Path) -> tuple[Checkpoint, dict]:
    arrays = load_npz(path)
    meta = json.loads(arrays["meta"].item())
    grids = {int(k[4:]): v for k, v in arrays.items() if k.startswith("grid")}
    best = [arrays[k] for k in sorted(arrays) if k.startswith("best")]
    return Checkpoint(meta["step"], meta["fingerprint"], meta["history"], grids, meta.get("evals", []),
                      meta.get("best", {}), best, meta.get("provenance", {})), arrays


def restore(gan, arrays: dict, path: Path) -> None:
    variables = state_variables(gan)
    values = [arrays.get(f"v{i:05d}") for i in range(len(variables))]
    for v, a in zip(variables, values):
        if a is None or tuple(a.shape) != tuple(v.shape):
            raise GanpipeError(f"{path}: checkpoint does not match the model ({v.path})")
        v.assign(a)


def start_or_resume(gan, ckpt_path: Path, prov: dict, total_steps: int, log) -> Checkpoint:
    """The checkpoint to continue from (its state restored into ``gan``), or a fresh one."""
    fp = fingerprint(prov)
    fresh = Checkpoint(0, fp, provenance=prov)
    if not ckpt_path.exists():
        return fresh
    try:
        found, arrays = read_checkpoint(ckpt_path)
    except (GanpipeError, KeyError, ValueError) as e:
        log(f"train: ignoring unreadable checkpoint {ckpt_path} ({e}); starting fresh")
        return fresh
    if found.fingerprint != fp:
        log(f"train: checkpoint {ckpt_path} was made with {what_differs(found.provenance, prov)}; starting fresh")
        return fresh
    if found.step > total_steps:
        log(f"train: checkpoint {ckpt_path} is at step {found.step}, past this run's {total_steps}; starting fresh")
        return fresh
    restore(gan, arrays, ckpt_path)
    if int(gan.step.numpy()) != found.step:
        raise GanpipeError(f"{ckpt_path}: its step variable ({int(gan.step.numpy())}) is not its recorded step "
                           f"({found.step}); delete it and run again")
    found.history = [r for r in found.history if not r.get("partial")]
    log(f"train: resuming from {ckpt_path} at step {found.step} of {total_steps}")
    return found
