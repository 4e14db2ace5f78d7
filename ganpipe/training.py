"""The train stage's logic: build the GAN, train it from its checkpoint to the end, export it.

Units: a *step* is one generator update (with ``critic_steps`` discriminator updates before it) on one
batch of ``batch_size`` real images; an *epoch* is ``len(train) // batch_size`` steps (the remainder is
dropped). The loop (:func:`_run`) reads top to bottom: it runs the steps in *segments* that end wherever
the host has work (an evaluation, a checkpoint, the end of an epoch or of the run), each segment one
``fit()`` of ``train.steps_per_execution`` steps per call, and does that work between segments. The GAN
keeps the step, the epoch sums and the non-finite flag on the device (``ganpipe.gan``); the host reads them
once per segment, and the progress bar once per execution. Other modules: ``feed`` (the input),
``checkpoint`` (format, provenance, resume), ``live`` (DVCLive), ``build`` (the GAN; ``build.steps()``: the
backend's half, ``gan_tf`` or ``gan_jax``, with its set-up, devices and runner).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

from . import losses, seeds
from . import params as P
from .build import build_gan, check_inputs, cpu_fallback_warning, steps
from .checkpoint import CHECKPOINT, Checkpoint, provenance, save_checkpoint, start_or_resume
from .errors import GanpipeError
from .feed import Feed
from .io import fresh_dir, write_json
from .live import log_epoch, log_eval, open_live, publish, replay
from .models import label_classes, sync_batch_norm
from .plots import image_grid, to_uint8
from .saving import save_model


class TrainingDiverged(GanpipeError):
    """A loss became NaN or infinite."""


@dataclass
class Plan:
    steps_per_epoch: int
    total_steps: int
    eval_steps: int  # steps between quality evaluations; 0 = none
    checkpoint_steps: int  # steps between checkpoints (besides every epoch's end)
    planned_steps: int = 0  # the run's length before train.max_steps: what train.lr_schedule decays over

    def segment_end(self, step: int) -> int:
        """Where the segment starting at ``step`` ends: the next evaluation, checkpoint, epoch end or the
        run's end, whichever comes first."""
        ends = [self.total_steps, (step // self.steps_per_epoch + 1) * self.steps_per_epoch,
                (step // self.checkpoint_steps + 1) * self.checkpoint_steps]
        if self.eval_steps:
            ends.append((step // self.eval_steps + 1) * self.eval_steps)
        return min(ends)


def plan(n_images: int, cfg: P.Train) -> Plan:
    """Steps per epoch and in all: ``train.epochs`` passes, or ``train.kimg`` thousand images (rounded up
    to whole steps, across epochs), whichever is set, capped by ``train.max_steps``."""
    spe = n_images // cfg.batch_size
    if spe < 1:
        raise GanpipeError(f"train.batch_size: {cfg.batch_size} is larger than the {n_images} training images")
    planned = spe * cfg.epochs if cfg.epochs is not None else math.ceil(cfg.kimg * 1000 / cfg.batch_size)
    total = min(planned, cfg.max_steps) if cfg.max_steps is not None else planned
    eval_steps = max(1, round(cfg.eval_every * 1000 / cfg.batch_size)) if cfg.eval_every else 0
    return Plan(spe, total, eval_steps, cfg.checkpoint_every, planned)


# -------------------------------------------------------------------------------------- the steps


class StepHook(keras.callbacks.Callback):
    """Called after each ``fit()`` execution (``steps_per_execution`` steps): stops ``fit()`` once a step's
    output was not finite (the loop then raises), and advances the progress bar. The only per-execution
    host work; the public way (with :func:`run_steps`) for benches and tests to drive the train stage's
    steps."""

    def __init__(self, gan, total_steps: int, batch: int, progress: bool = False):
        super().__init__()
        self.gan, self.batch = gan, batch
        self.done = int(gan.step.numpy())
        self.t_last = time.perf_counter()
        self.bar = (tqdm(total=total_steps, initial=self.done, unit="step", file=sys.stderr, dynamic_ncols=True,
                         desc="train") if progress else None)

    def on_train_batch_end(self, batch, logs=None):
        if int(self.gan.first_bad.numpy()) >= 0:
            self.model.stop_training = True
        if self.bar is None:
            return
        step, now = int(self.gan.step.numpy()), time.perf_counter()
        self.bar.update(step - self.done)
        ips = self.batch * (step - self.done) / max(now - self.t_last, 1e-9)
        self.done, self.t_last = step, now
        if step % 10 < self.gan.steps_per_execution or step == self.bar.total:
            logs = logs or {}
            extra = {"p": f"{float(self.gan.aug_p.numpy()):.3f}"} if self.gan.augment_ops and self.gan.adaptive else {}
            self.bar.set_postfix(d_loss=f"{float(np.mean(logs.get('d_loss', 0))):.3f}",
                                 g_loss=f"{float(np.mean(logs.get('g_loss', 0))):.3f}", img_s=f"{ips:.0f}", **extra,
                                 refresh=False)

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_steps(gan, feed: Feed, n: int, hook: StepHook | None = None) -> int:
    """Run the ``n`` steps after the GAN's current step (within one epoch); return the step reached, which
    is short of the end when a step's output was not finite (see ``gan.diverged``). The backend's runner:
    ``fit()`` on TensorFlow, K steps per ``jax.jit`` call on JAX."""
    return steps().run_steps(gan, feed, n, hook)


def _sample_grid(gan, z, labels, rows: int) -> np.ndarray:
    g = gan.sample_generator()
    out = g([z, labels] if gan.num_classes else z, training=False)
    return image_grid(to_uint8(out), rows)


def fixed_noise(latent_dim: int, rows: int, num_classes: int, seed: int):
    rng = seeds.rng(seed, "train.sample_grid")
    z = rng.standard_normal((rows * rows, latent_dim)).astype(np.float32)
    labels = (np.arange(rows * rows) // rows % max(num_classes, 1)).astype(np.int32)[:, None]
    return z, labels


# -------------------------------------------------------------------------------------- the run


def train(x: np.ndarray, y: np.ndarray | None, num_classes: int, data_digest: str,
          model_cfg: P.Model, train_cfg: P.Train, seed: int, *, checkpoint_dir, models_dir, metrics_path,
          live_dir, quality=None, progress: bool = True, log=print) -> dict:
    """Train, checkpointing as it goes; resume from ``checkpoint_dir`` when the provenance matches; export
    the generator and D to ``models_dir``, the summary to ``metrics_path``, DVCLive's logs to ``live_dir``.
    ``quality``: a ``ganpipe.tracking.QualityTracker`` for the evaluations every ``train.eval_every`` kimg
    (needed when that is not 0)."""
    model_cfg, train_cfg, auto = P.resolve_auto(model_cfg, train_cfg, x.shape[3])
    if auto:
        log(f"train: auto params for {'RGB' if x.shape[3] == 3 else 'grey'} images: "
            + ", ".join(f"{k} {str(v).lower()}" for k, v in auto.items()))
    check_inputs(x, y, num_classes, model_cfg, train_cfg, quality)
    backend = keras.backend.backend()
    if train_cfg.backend not in ("auto", backend):
        raise GanpipeError(f"train.backend: {train_cfg.backend} was asked for, but Keras runs on {backend} in this "
                           "process (ganpipe.backend.use must choose it before Keras is imported)")
    train_cfg = dataclasses.replace(train_cfg, backend=backend)  # the checkpoint's provenance and train.json name it
    pl = plan(len(x), train_cfg)
    quality = quality if train_cfg.eval_every else None
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT
    half = steps()  # gan_tf or gan_jax
    strategy = half.make_strategy(train_cfg.strategy)  # before any other TF work (MultiWorkerMirroredStrategy needs it)
    if strategy is not None and train_cfg.batch_size % strategy.num_replicas_in_sync:
        raise GanpipeError(f"train.batch_size: {train_cfg.batch_size} is not divisible by the "
                           f"{strategy.num_replicas_in_sync} replicas of train.strategy {train_cfg.strategy}")
    policy = keras.mixed_precision.global_policy()
    half.configure(train_cfg, seed, second_order=losses.second_order(model_cfg))
    try:
        gan = build_gan(model_cfg, train_cfg, x.shape[1], x.shape[3], num_classes, strategy, seed=seed,
                        schedule_steps=pl.planned_steps)
        prov = provenance(model_cfg, train_cfg, seed, data_digest, quality.digest() if quality else "",
                          schedule_steps=pl.planned_steps)
        ckpt = start_or_resume(gan, ckpt_path, prov, pl.total_steps, log)
        if train_cfg.strategy == "multi_worker":
            half.check_same_start(strategy, ckpt.step)
        resumed_from = ckpt.step
        devices = half.devices(strategy)
        log(f"train: on {', '.join(devices)}")
        if (warning := cpu_fallback_warning(devices)) is not None:
            log(warning)
        labels = (y if y is not None else np.zeros(len(x))).astype(np.int32)
        feed = Feed(x, labels, train_cfg.batch_size, seed, strategy)
        z = fixed_noise(model_cfg.latent_dim, train_cfg.sample_grid, label_classes(model_cfg, num_classes), seed)
        # DVCLive writes in place, published after every epoch (VS Code and Studio update live), and the
        # folder is deleted if the run fails (NaN guard, a bad param found late, Ctrl-C, SIGTERM): no truncated
        # tables for git to pick up. An interrupted run's logs are not lost: the checkpoint holds them and the
        # next run replays them.
        with fresh_dir(live_dir) as live_path:
            t0 = time.perf_counter()
            final = _run(gan, feed, ckpt, ckpt_path, pl, train_cfg.sample_grid, z, quality, live_path, progress)
            wall = time.perf_counter() - t0
            sync_batch_norm([gan.generator, gan.discriminator], on=False)
            kept = export(gan, ckpt, final, train_cfg.keep, Path(models_dir))
            metrics = summary(pl, train_cfg, ckpt, kept, resumed_from, wall, final) | {"backend": backend, "devices": devices,
                                                                                   "auto": auto}
            write_json(metrics_path, metrics)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    return metrics


def _run(gan, feed: Feed, ckpt: Checkpoint, ckpt_path: Path, pl: Plan, rows: int, z, quality, live_dir,
         progress: bool) -> dict | None:
    """Train from ``ckpt.step`` to the end, segment by segment (``Plan.segment_end``); between segments
    evaluate, log and checkpoint on their cadences; return the evaluation of the final generator (None
    without evaluations)."""
    live = open_live(live_dir)
    replay(live, ckpt.history, ckpt.evals, ckpt.grids)
    hook = StepHook(gan, pl.total_steps, feed.batch, progress)
    last_good = ckpt.step if ckpt.step > 0 else None  # a resumed run's checkpoint; never another run's file
    step = ckpt.step
    try:
        while step < pl.total_steps:
            end = pl.segment_end(step)
            step = run_steps(gan, feed, end - step, hook)
            bad = gan.diverged()
            if bad is not None:
                where = f"step {last_good}" if last_good is not None else "none was written"
                raise TrainingDiverged(f"train: {bad[0]} is {bad[1]} at step {bad[2]}; stopped "
                                       f"(last good checkpoint: {where})")
            if quality is not None and step % pl.eval_steps == 0:
                rec = {"step": step, **quality(gan.sample_generator())}
                ckpt.evals.append(rec)
                log_eval(live, rec)
                fd = rec[quality.fd_key]
                # tracked whatever train.keep says, so that a run resumed with keep: best has every candidate
                if not ckpt.best or fd < ckpt.best[quality.fd_key]:
                    ckpt.best = rec
                    ckpt.best_weights = [np.array(v.numpy()) for v in gan.sample_generator().variables]
                hook.write(f"train: step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in rec.items() if k != "step"))
            epoch_end = step % pl.steps_per_epoch == 0
            if epoch_end or step == pl.total_steps:
                epoch = (step - 1) // pl.steps_per_epoch
                rec = epoch_record(gan, epoch, step, pl, feed.batch)
                grid = _sample_grid(gan, *z, rows)
                ckpt.history.append(rec)
                ckpt.grids[epoch] = grid
                log_epoch(live, rec, grid)
                publish(live)
            if epoch_end or step == pl.total_steps or step % pl.checkpoint_steps == 0:
                ckpt.step = step
                save_checkpoint(ckpt_path, gan, ckpt)
                last_good = step
    finally:
        hook.close()
    final = None
    if quality is not None:
        # The last step is evaluated too. Off the eval_every cadence, that evaluation is not kept in the
        # checkpoint (a longer run resumed from here would not have made it).
        on_cadence = [e for e in ckpt.evals if e["step"] == ckpt.step]
        final = on_cadence[0] if on_cadence else {"step": ckpt.step, **quality(gan.sample_generator())}
        if not on_cadence:
            log_eval(live, final)
    live.end()
    return final


def epoch_record(gan, epoch: int, step: int, pl: Plan, batch: int) -> dict:
    """The record of (the part so far of) epoch ``epoch`` at ``step``: the means of the step outputs since
    the epoch began, and ADA's p. Mid-epoch (``max_steps``, ``kimg``) it is marked partial: a later, longer
    run resumed from here replaces it."""
    count = step - epoch * pl.steps_per_epoch
    rec = {"epoch": epoch, "step": step, "images_seen": step * batch}
    rec |= {k: float(v.numpy()) / count for k, v in sorted(gan.sums.items())}
    if gan.augment_ops:
        rec["augment_p"] = float(gan.aug_p.numpy())
    if step % pl.steps_per_epoch:
        rec["partial"] = True
    return rec


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
    return kept


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
