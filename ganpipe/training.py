"""The train stage's logic: build the GAN, feed it in a seeded order, checkpoint, resume, log.

Units: a *step* is one generator update (with ``critic_steps`` discriminator updates before it) on one
batch of ``batch_size`` real images; an *epoch* is ``len(train) // batch_size`` steps (the remainder is
dropped). The order of epoch ``e`` is a permutation seeded by ``(base.seed, e)``, so the data position is
a function of the step alone, and a checkpoint at step ``s`` resumes exactly where it was taken.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from dvclive import Live
from PIL import Image
from tqdm import tqdm

from . import losses, seeds
from . import params as P
from .distribute import make_strategy, replica_slices, sync_batch_norm
from .errors import GanpipeError
from .gan import GAN
from .imports import ROOT, library_modules
from .io import fresh_dir, load_npz, save_npz, sha256_file, write_json
from .models import build_models
from .plots import image_grid, to_uint8
from .saving import save_model
from .tracking import AdaController

CHECKPOINT = "ckpt.npz"
# Params that change how long training runs, not its trajectory: a checkpoint made under other values of
# these is resumed (so raising `epochs` continues a finished run).
LENGTH_KEYS = ("epochs", "kimg", "max_steps", "checkpoint_every", "sample_grid", "eval_every", "keep")


class TrainingDiverged(GanpipeError):
    """A loss became NaN or infinite."""


@dataclass
class Plan:
    steps_per_epoch: int
    total_steps: int
    eval_steps: int  # steps between quality evaluations; 0 = none


def plan(n_images: int, cfg: P.Train) -> Plan:
    """Steps per epoch and in all: ``train.epochs`` passes, or ``train.kimg`` thousand images (rounded up
    to whole steps, across epochs), whichever is set, capped by ``train.max_steps``."""
    spe = n_images // cfg.batch_size
    if spe < 1:
        raise GanpipeError(f"train.batch_size: {cfg.batch_size} is larger than the {n_images} training images")
    total = spe * cfg.epochs if cfg.epochs is not None else math.ceil(cfg.kimg * 1000 / cfg.batch_size)
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    eval_steps = max(1, round(cfg.eval_every * 1000 / cfg.batch_size)) if cfg.eval_every else 0
    return Plan(spe, total, eval_steps)


def code_files() -> list[str]:
    """The library files a training run executes: ``training.py`` and every ganpipe module it imports,
    transitively (``ganpipe.imports``): a checkpoint made by other code in any of them is not resumed."""
    return sorted(library_modules(Path(__file__)) | {"ganpipe/training.py"})


def provenance(model_cfg: P.Model, train_cfg: P.Train, seed: int, data_digest: str, quality_digest: str = "") -> dict:
    """Everything that determines the training trajectory and its logs, as stored in the checkpoint: the
    resolved params (less the length keys), seed, data, the code of each file, and (with evaluations on)
    the classifier and real statistics they use."""
    t = {k: v for k, v in P.to_dict(train_cfg).items() if k not in LENGTH_KEYS}
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


def epoch_indices(n_images: int, batch: int, epoch: int, seed: int) -> np.ndarray:
    """The image order of one epoch, whole batches only."""
    rng = seeds.rng(seed, "train.epoch_order", epoch)
    perm = rng.permutation(n_images)
    return perm[: (n_images // batch) * batch]


def scale_images(x):
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(x, tf.float32) / 127.5 - 1.0


def _input_options():
    # One private input thread, no autotuning: on 2 cores the autotuner's threads made steps bimodal
    # (about 25% slower half the time); one thread keeps a batch ready, far ahead of the step.
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.autotune.enabled = False
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return options


def epoch_dataset(x, y, batch: int, epoch: int, seed: int, first_batch: int, n_batches: int, strategy=None):
    """Steps ``first_batch .. first_batch + n_batches`` of epoch ``epoch``: (images in [-1, 1], labels) per
    step, each batch gathered from ``x`` (which may be memory-mapped) only when the step is next: memory
    holds a few batches, never a copy of the dataset. (The step's random draws are made on the device:
    ``ganpipe.gan.step_noise``.) With a ``tf.distribute`` strategy, a distributed dataset giving each
    replica its slice of every global batch (``ganpipe.distribute.replica_slices``)."""
    spe = len(x) // batch
    if first_batch + n_batches > spe:
        raise ValueError(f"steps {first_batch}..{first_batch + n_batches} are past the epoch's {spe}")
    order = epoch_indices(len(x), batch, epoch, seed)

    y = np.asarray(y, np.int32)

    def gather(i):
        idx = order[i * batch:(i + 1) * batch]
        return np.asarray(x[idx]), y[idx]  # a ShardedImages reads the rows in file order

    def global_batch(i):
        images, labels = tf.numpy_function(gather, [i], [tf.uint8, tf.int32], stateful=False)
        images.set_shape((batch, *x.shape[1:]))
        labels.set_shape((batch,))
        return {"x": images, "y": labels}

    def make(replicas=1, workers=1, worker=0):
        ds = tf.data.Dataset.range(first_batch, first_batch + n_batches).map(global_batch)
        if replicas > 1:  # one element per local replica: its slice of each global batch
            ds = ds.map(lambda d: replica_slices(d, replicas, workers, worker)).unbatch()
        ds = ds.map(lambda d: (scale_images(d["x"]), d["y"]))
        return ds.prefetch(2).with_options(_input_options())

    if strategy is None:
        return make()

    def per_worker(ctx):
        return make(ctx.num_replicas_in_sync, ctx.num_input_pipelines, ctx.input_pipeline_id)

    return strategy.distribute_datasets_from_function(per_worker)


# ------------------------------------------------------------------------------------------ set-up


def configure_tf(cfg: P.Train, seed: int, second_order: bool = False) -> None:
    """Seeds, determinism and precision policy. ``second_order``: the step differentiates a gradient
    (WGAN-GP); Grappler's graph optimisers then sometimes rewrite it into a graph with a cycle
    ("InvalidArgumentError: N nodes in a cycle", seen with spectral normalisation, about one run in
    four), so they are turned off for such runs (measured cost in bench/train_throughput.py)."""
    # Determinism set both ways: it is process-global, and Keras turns XLA off while it is on.
    seeds.seed_tf(seed, cfg.deterministic)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": second_order})
    keras.mixed_precision.set_global_policy(cfg.precision)


def check_same_start(strategy, step: int) -> None:
    """Under MultiWorkerMirroredStrategy every worker resumes from its own checkpoint: stop every worker,
    with the same message, unless they all start from the same step (else they would train apart, or
    wait on each other forever)."""
    local = tf.constant([float(step), float(step) ** 2], tf.float64)
    mean = strategy.reduce("MEAN", strategy.run(tf.function(lambda: tf.identity(local))), axis=None).numpy()
    if mean[1] - mean[0] ** 2 > 0.5:  # a variance over workers: 0 only when every step is equal
        raise GanpipeError(f"train.strategy: the workers start from different steps (this one from step {step}: "
                           "each resumes from its own checkpoints/); delete checkpoints/ on every worker and run again")


def build_gan(model_cfg: P.Model, train_cfg: P.Train, size: int, channels: int, num_classes: int, strategy=None, *,
              seed: int):
    """The compiled GAN, its variables made under ``strategy``'s scope when one is given; ``seed`` keys
    its steps' random draws."""
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        return _build_gan(model_cfg, train_cfg, size, channels, num_classes, strategy is not None, seed)


def _build_gan(model_cfg, train_cfg, size, channels, num_classes, distributed, seed):
    g, d = build_models(model_cfg, size, channels, num_classes)
    ema = None
    if train_cfg.ema_decay > 0:
        ema, _ = build_models(model_cfg, size, channels, num_classes)
        ema.set_weights(g.get_weights())
    if distributed:
        sync_batch_norm([g, d])
    gan = GAN(g, d, ema, loss=model_cfg.loss, latent_dim=model_cfg.latent_dim,
              num_classes=num_classes if model_cfg.conditional else 0, gp_weight=model_cfg.gp_weight,
              critic_steps=model_cfg.critic_steps, ema_decay=train_cfg.ema_decay, ema_rampup=train_cfg.ema_rampup,
              batch_size=train_cfg.batch_size, augment=train_cfg.augment, augment_p=train_cfg.augment_p, seed=seed,
              regularisers=losses.active_regularisers(model_cfg), reg_interval=model_cfg.reg_interval)

    def adam(lr, c=1.0):  # c: StyleGAN2's rescaling for lazy regularisation's extra D updates
        opt = keras.optimizers.Adam(lr * c, beta_1=train_cfg.beta1 ** c, beta_2=train_cfg.beta2 ** c)
        return keras.optimizers.LossScaleOptimizer(opt) if train_cfg.precision == "mixed_float16" else opt

    gan.compile(d_optimizer=adam(train_cfg.d_lr, losses.lazy_ratio(model_cfg)), g_optimizer=adam(train_cfg.g_lr),
                jit_compile=train_cfg.jit_compile)
    if train_cfg.jit_compile and not gan.jit_compile:
        raise GanpipeError("train.jit_compile: Keras refused XLA for this model (see its warning above)")
    gan.build_optimizers()
    return gan


def state_variables(gan) -> list:
    """Every variable a checkpoint must hold, in a fixed order."""
    groups = [gan.generator.variables, gan.discriminator.variables, [gan.aug_p], list(gan.reg_last.values())]
    if gan.ema_generator is not None:
        groups.append(gan.ema_generator.variables)
    for opt in (gan.g_optimizer, gan.d_optimizer):
        groups.append(opt.variables)
        inner = getattr(opt, "inner_optimizer", None)
        if inner is not None:
            groups.append(inner.variables)
    # No RNG state: a step's random draws are keyed by the step (``gan.step_noise``), i.e. the G optimizer's iterations.
    seen, out = set(), []
    for group in groups:
        for v in group:
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
    return out


# -------------------------------------------------------------------------------------- checkpoints


@dataclass
class Checkpoint:
    step: int
    fingerprint: str
    history: list = field(default_factory=list)  # one record per finished epoch
    grids: dict = field(default_factory=dict)  # epoch -> uint8 sample grid
    partial: dict = field(default_factory=dict)  # loss sums and step count of the unfinished epoch
    evals: list = field(default_factory=list)  # one record per quality evaluation
    ada: dict = field(default_factory=dict)  # the augmentation controller's state
    best: dict = field(default_factory=dict)  # the best evaluation so far, whatever train.keep says
    best_weights: list = field(default_factory=list)  # the sampling generator's weights at ``best``
    provenance: dict = field(default_factory=dict)  # what made it (``provenance``): a refused resume says what differs


def save_checkpoint(path: Path, gan, ckpt: Checkpoint) -> None:
    arrays = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(state_variables(gan))}
    meta = {"step": ckpt.step, "fingerprint": ckpt.fingerprint, "history": ckpt.history, "partial": ckpt.partial,
            "evals": ckpt.evals, "ada": ckpt.ada, "best": ckpt.best, "n_vars": len(arrays),
            "provenance": ckpt.provenance}
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
    return Checkpoint(meta["step"], meta["fingerprint"], meta["history"], grids, meta.get("partial", {}),
                      meta.get("evals", []), meta.get("ada", {}), meta.get("best", {}), best,
                      meta.get("provenance", {})), arrays


def restore(gan, arrays: dict, path: Path) -> None:
    variables = state_variables(gan)
    values = [arrays.get(f"v{i:05d}") for i in range(len(variables))]
    for v, a in zip(variables, values):
        if a is None or tuple(a.shape) != tuple(v.shape):
            raise GanpipeError(f"{path}: checkpoint does not match the model ({v.path})")
        v.assign(a)


def start_or_resume(gan, ckpt_path: Path, fp: str, total_steps: int, log, prov: dict | None = None) -> Checkpoint:
    """The checkpoint to continue from (its state restored into ``gan``), or a fresh one."""
    fresh = Checkpoint(0, fp, provenance=prov or {})
    if not ckpt_path.exists():
        return fresh
    try:
        found, arrays = read_checkpoint(ckpt_path)
    except (GanpipeError, KeyError, ValueError) as e:
        log(f"train: ignoring unreadable checkpoint {ckpt_path} ({e}); starting fresh")
        return fresh
    if found.fingerprint != fp:
        why = what_differs(found.provenance, prov) if prov else "different params, data or code"
        log(f"train: checkpoint {ckpt_path} was made with {why}; starting fresh")
        return fresh
    if found.step > total_steps:
        log(f"train: checkpoint {ckpt_path} is at step {found.step}, past this run's {total_steps}; starting fresh")
        return fresh
    restore(gan, arrays, ckpt_path)
    found.history = [r for r in found.history if not r.get("partial")]
    log(f"train: resuming from {ckpt_path} at step {found.step} of {total_steps}")
    return found


# -------------------------------------------------------------------------------------- the loop


def _sample_grid(gan, z, labels, rows: int) -> np.ndarray:
    g = gan.sample_generator()
    out = g([z, labels] if gan.num_classes else z, training=False)
    return image_grid(to_uint8(out), rows)


def fixed_noise(latent_dim: int, rows: int, num_classes: int, seed: int):
    rng = seeds.rng(seed, "train.sample_grid")
    z = rng.standard_normal((rows * rows, latent_dim)).astype(np.float32)
    labels = (np.arange(rows * rows) // rows % max(num_classes, 1)).astype(np.int32)[:, None]
    return z, labels


def check_inputs(x: np.ndarray, y: np.ndarray | None, num_classes: int, model_cfg: P.Model, train_cfg: P.Train,
                 quality) -> None:
    """Refuse data and params that cannot train together, naming the key."""
    if model_cfg.conditional and (y is None or num_classes < 2):
        raise GanpipeError("model.conditional: the prepared data has no labels (or one class); set it to false")
    if x.shape[1] != x.shape[2] or x.shape[1] % 4:
        raise GanpipeError(f"prepared images are {x.shape[1]}x{x.shape[2]}; training needs square sizes divisible by 4")
    if train_cfg.precision == "mixed_float16" and losses.second_order(model_cfg):
        key = "model.loss" if losses.get(model_cfg.loss).second_order else "model.r1_gamma/r2_gamma"
        raise GanpipeError(f"{key}: gradient penalties are computed in unscaled float16 under train.precision "
                           "mixed_float16 (they underflow); use mixed_bfloat16 or float32")
    if train_cfg.eval_every and quality is None:
        raise GanpipeError("train.eval_every: evaluations during training need the features stage's outputs")
    if train_cfg.eval_every:
        quality.check()


def start(x: np.ndarray, num_classes: int, data_digest: str, model_cfg: P.Model, train_cfg: P.Train, seed: int,
          ckpt_path: Path, quality, log):
    """The strategy, the GAN (resumed from ``ckpt_path`` when its fingerprint matches) and its checkpoint."""
    strategy = make_strategy(train_cfg.strategy)  # before any other TF work (MultiWorkerMirroredStrategy needs it)
    if strategy is not None and train_cfg.batch_size % strategy.num_replicas_in_sync:
        raise GanpipeError(f"train.batch_size: {train_cfg.batch_size} is not divisible by the "
                           f"{strategy.num_replicas_in_sync} replicas of train.strategy {train_cfg.strategy}")
    configure_tf(train_cfg, seed, second_order=losses.second_order(model_cfg))
    gan = build_gan(model_cfg, train_cfg, x.shape[1], x.shape[3], num_classes, strategy, seed=seed)
    prov = provenance(model_cfg, train_cfg, seed, data_digest, quality.digest() if quality else "")
    ckpt = start_or_resume(gan, ckpt_path, fingerprint(prov), plan(len(x), train_cfg).total_steps, log, prov)
    if train_cfg.strategy == "multi_worker":
        check_same_start(strategy, ckpt.step)
    return strategy, gan, ckpt


def train_devices(strategy) -> list[str]:
    """The devices the steps run on (recorded in ``metrics/train.json``): the strategy's, or without one
    TensorFlow's default placement, the first GPU, else the CPU."""
    if strategy is not None:
        return [str(d) for d in strategy.extended.worker_devices]
    gpus = tf.config.list_logical_devices("GPU")
    return [(gpus[0] if gpus else tf.config.list_logical_devices("CPU")[0]).name]


def summary(pl: Plan, cfg: P.Train, ckpt: Checkpoint, kept: dict, resumed_from: int, wall: float,
            final: dict | None) -> dict:
    """``metrics/train.json``: length, the last epoch's mean losses, the kept snapshot, speed."""
    trained = pl.total_steps - resumed_from
    last = ckpt.history[-1] if ckpt.history else {}  # the last (possibly partial) epoch's mean losses
    metrics = {
        "steps": pl.total_steps,
        "images_seen": pl.total_steps * cfg.batch_size,
        "kimg": round(pl.total_steps * cfg.batch_size / 1000, 3),
        "epochs": round(pl.total_steps / pl.steps_per_epoch, 3),
        **{k: last.get(k) for k in ("d_loss", "g_loss", "rt", "augment_p")},
        "kept": kept,
        "resumed_from_step": resumed_from,
        "wall_seconds": round(wall, 3),
        "img_per_sec": round(trained * cfg.batch_size / wall, 1) if trained and wall > 0 else None,
    }
    if final:
        metrics["last_eval"] = final
    return metrics


def train(x: np.ndarray, y: np.ndarray | None, num_classes: int, data_digest: str,
          model_cfg: P.Model, train_cfg: P.Train, seed: int, *, checkpoint_dir, models_dir, metrics_path,
          live_dir, quality=None, progress: bool = True, log=print) -> dict:
    """Train, checkpointing as it goes; resume from ``checkpoint_dir`` when the fingerprint matches; export
    the generator and D to ``models_dir``, the summary to ``metrics_path``, DVCLive's logs to ``live_dir``.
    ``quality``: a ``ganpipe.tracking.QualityTracker`` for the evaluations every ``train.eval_every`` kimg
    (needed when that is not 0)."""
    check_inputs(x, y, num_classes, model_cfg, train_cfg, quality)
    labels = (y if y is not None else np.zeros(len(x))).astype(np.int32)
    pl = plan(len(x), train_cfg)
    quality = quality if train_cfg.eval_every else None
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT
    strategy, gan, ckpt = start(x, num_classes, data_digest, model_cfg, train_cfg, seed, ckpt_path, quality, log)
    resumed_from = ckpt.step
    devices = train_devices(strategy)
    log(f"train: on {', '.join(devices)}")

    # DVCLive writes in place, published after every epoch (VS Code and Studio update live), and the folder
    # is deleted if the run fails (NaN guard, a bad param found late, Ctrl-C, SIGTERM): no truncated tables
    # for git to pick up. An interrupted run's logs are not lost: the checkpoint holds them and the next run
    # replays them.
    with fresh_dir(live_dir) as live_path:
        t0 = time.perf_counter()
        final = _run(gan, x, labels, ckpt, ckpt_path, model_cfg, train_cfg, pl, seed, num_classes, strategy,
                     quality, live_path, progress)
        wall = time.perf_counter() - t0
        sync_batch_norm([gan.generator, gan.discriminator], on=False)
        kept = export(gan, ckpt, final, train_cfg.keep, Path(models_dir))
        metrics = summary(pl, train_cfg, ckpt, kept, resumed_from, wall, final) | {"devices": devices}
        write_json(metrics_path, metrics)
    return metrics


def _run(gan, x, labels, ckpt, ckpt_path, model_cfg, train_cfg, pl, seed, num_classes, strategy, quality,
         live_dir, progress) -> dict | None:
    """Train from ``ckpt.step`` to the end, one ``fit()`` per (part of an) epoch, logging each epoch;
    return the evaluation of the final generator (None without evaluations)."""
    live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)
    _replay(live, ckpt)
    z, zl = fixed_noise(model_cfg.latent_dim, train_cfg.sample_grid, num_classes if model_cfg.conditional else 0, seed)
    cb = _StepCallback(gan, ckpt, ckpt_path, train_cfg, pl, quality, live, progress)
    step = ckpt.step
    try:
        while step < pl.total_steps:
            epoch, first = divmod(step, pl.steps_per_epoch)
            n = min(pl.steps_per_epoch - first, pl.total_steps - step)
            cb.epoch_start = step
            if first == 0:
                ckpt.partial = {}
            ds = epoch_dataset(x, labels, train_cfg.batch_size, epoch, seed, first, n, strategy)
            gan.fit(ds, epochs=1, steps_per_epoch=n, verbose=0, shuffle=False, callbacks=[cb])
            step += n
            rec = {"epoch": epoch, "step": step, "images_seen": step * train_cfg.batch_size}
            count = ckpt.partial.get("count", 0)
            rec |= {k: v / count for k, v in sorted(ckpt.partial.items()) if k != "count"}  # epoch means
            if gan.augment_ops:
                rec["augment_p"] = float(gan.aug_p.numpy())
            if step % pl.steps_per_epoch:
                rec["partial"] = True  # stopped mid-epoch (max_steps, kimg): a later, longer run replaces it
            else:
                ckpt.partial = {}
            grid = _sample_grid(gan, z, zl, train_cfg.sample_grid)
            ckpt.history.append(rec)
            ckpt.grids[epoch] = grid
            _log_epoch(live, rec, grid)
            _publish(live)
            ckpt.step = step
            save_checkpoint(ckpt_path, gan, ckpt)
    finally:
        cb.close()
    final = None
    if quality is not None:
        # The last step is evaluated too. Off the eval_every cadence, that evaluation is not kept in the
        # checkpoint (a longer run resumed from here would not have made it).
        on_cadence = [e for e in ckpt.evals if e["step"] == ckpt.step]
        final = on_cadence[0] if on_cadence else {"step": ckpt.step, **quality(gan.sample_generator())}
        if not on_cadence:
            _log_eval(live, final)
    live.end()
    return final


def export(gan, ckpt: Checkpoint, final: dict | None, keep: str, models_dir: Path) -> dict:
    """Save the sampling generator and D; return which snapshot was saved. With ``keep: best``, the
    snapshot of the lowest FD among the evaluations (the final generator's included)."""
    g = gan.sample_generator()
    kept = {"snapshot": "last", **(final or {"step": ckpt.step})}
    if keep == "best" and final is not None:
        fd_key = next(k for k in final if k.startswith("fd_"))
        best = final
        if ckpt.best_weights and ckpt.best[fd_key] <= final[fd_key]:
            for v, w in zip(g.variables, ckpt.best_weights):
                v.assign(w)
            best = ckpt.best
        kept = {"snapshot": "best", **best}
    save_model(g, models_dir / "generator.keras")
    save_model(gan.discriminator, models_dir / "discriminator.keras")
    keras.mixed_precision.set_global_policy("float32")
    return kept


NOT_LOGGED = ("epoch", "step", "images_seen", "partial")  # an epoch record's bookkeeping, not a curve


def _log_epoch(live, rec: dict, grid: np.ndarray | None) -> None:
    """Every value of an epoch record: the epoch means of whatever the step reports (``*_step``) and p."""
    live.step = rec["step"]
    for k in sorted(rec):  # sorted: a record read back from a checkpoint has its keys sorted, and DVCLive's
        if k not in NOT_LOGGED:  # summary keeps the order of first logging (a resumed run's must be the same bytes)
            live.log_metric(k, rec[k])
    if grid is not None:
        # DVCLive's step layout (name/{step}.png): DVC's plots and VS Code's step slider page through it
        live.log_image(f"samples/{rec['step']}.png", Image.fromarray(grid.squeeze(-1) if grid.shape[-1] == 1 else grid))


def _publish(live) -> None:
    """What ``Live.next_step()`` does at the end of a step, for our explicit step numbers: write the summary
    (and Studio's live update, where configured) and signal DVC's VS Code extension that a step is done."""
    from dvclive.vscode import mark_dvclive_step_completed

    live.sync()
    mark_dvclive_step_completed(live.step)


def _log_eval(live, rec: dict) -> None:
    live.step = rec["step"]
    for k, v in rec.items():
        if k != "step":
            live.log_metric(k, v)


def _replay(live, ckpt: Checkpoint) -> None:
    """Log again what earlier (interrupted) runs logged, in step order (evaluations before epochs)."""
    events = [(r["step"], 0, r) for r in ckpt.evals] + [(r["step"], 1, r) for r in ckpt.history]
    for _, kind, rec in sorted(events, key=lambda e: e[:2]):
        if kind == 0:
            _log_eval(live, rec)
        else:
            _log_epoch(live, rec, ckpt.grids.get(rec["epoch"]))


class _StepCallback(keras.callbacks.Callback):
    """Per step: stop on a non-finite loss, adapt the augmentation probability, evaluate and checkpoint
    on cadence, advance the progress bar."""

    def __init__(self, gan, ckpt: Checkpoint, path: Path, cfg: P.Train, pl: Plan, quality, live, progress: bool):
        super().__init__()
        self.gan, self.ckpt, self.path, self.cfg, self.plan = gan, ckpt, path, cfg, pl
        self.quality, self.live = quality, live
        self.ada = None
        if gan.augment_ops and gan.adaptive:
            self.ada = AdaController(cfg.ada_target, cfg.ada_kimg, cfg.batch_size, ckpt.ada)
            gan.aug_p.assign(self.ada.p)
        self.epoch_start = ckpt.step
        self.last_good = ckpt.step if ckpt.step > 0 else None  # a resumed run's; never another run's file
        self.t_last = time.perf_counter()
        self.bar = None
        if progress:
            self.bar = tqdm(total=pl.total_steps, initial=ckpt.step, unit="step", file=sys.stderr,
                            dynamic_ncols=True, desc="train")

    def on_train_batch_end(self, batch, logs=None):
        step = self.epoch_start + batch + 1
        losses = {k[:-5]: float(np.mean(v)) for k, v in (logs or {}).items() if k.endswith("_step")}
        for name, value in losses.items():
            if not np.isfinite(value):
                where = f"step {self.last_good}" if self.last_good is not None else "none was written"
                raise TrainingDiverged(
                    f"train: {name} is {value} at step {step}; stopped (last good checkpoint: {where})")
        partial = self.ckpt.partial
        for name, value in losses.items():
            partial[name] = partial.get(name, 0.0) + value
        partial["count"] = partial.get("count", 0) + 1
        if self.ada is not None:
            if self.ada.update(losses["rt"]):
                self.gan.aug_p.assign(self.ada.p)
            self.ckpt.ada = self.ada.state()
        if self.quality is not None and step % self.plan.eval_steps == 0:
            self.evaluate(step)
        if step % self.cfg.checkpoint_every == 0 and step < self.plan.total_steps:
            self.ckpt.step = step
            save_checkpoint(self.path, self.gan, self.ckpt)
            self.last_good = step
        self.show(step, losses)

    def evaluate(self, step: int) -> None:
        rec = {"step": step, **self.quality(self.gan.sample_generator())}
        self.ckpt.evals.append(rec)
        _log_eval(self.live, rec)
        fd = rec[self.quality.fd_key]
        # tracked whatever train.keep says, so that a run resumed with keep: best has every candidate
        if not self.ckpt.best or fd < self.ckpt.best[self.quality.fd_key]:
            self.ckpt.best = rec
            self.ckpt.best_weights = [np.array(v.numpy()) for v in self.gan.sample_generator().variables]
        if self.bar is not None:
            self.bar.write(f"train: step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in rec.items() if k != "step"))

    def show(self, step: int, losses: dict) -> None:
        if self.bar is None:
            return
        now = time.perf_counter()
        self.bar.update(1)
        ips = self.cfg.batch_size / max(now - self.t_last, 1e-9)
        self.t_last = now
        if step % 10 == 0 or step == self.plan.total_steps:
            extra = {"p": f"{self.ada.p:.3f}"} if self.ada is not None else {}
            self.bar.set_postfix(d_loss=f"{losses.get('d_loss', 0):.3f}", g_loss=f"{losses.get('g_loss', 0):.3f}",
                                 img_s=f"{ips:.0f}", **extra, refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()
