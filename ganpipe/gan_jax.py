"""The JAX half of the GAN: the step as a pure function of the training state (Keras' "customizing fit()
with JAX" pattern: ``stateless_call``, ``jax.value_and_grad``, ``optimizer.stateless_apply``), run
``train.steps_per_execution`` steps per ``jax.jit`` call through ``lax.scan``, JAX's set-up, the devices.

Nothing here imports TensorFlow (``ganpipe.backend`` makes it unimportable on this path). The math is
the TensorFlow step's (``gan_tf``): the same losses, augmentations, ADA controller, EMA ramp-up and lazy
regularisers, from the same modules. What differs is only the bookkeeping:

- The state lives in the Keras variables between calls (one owner: checkpoints read them as on
  TensorFlow); a call reads them into a pytree, runs K steps on the device and writes them back. The
  host reads the step, the non-finite flag and the last step's losses once per call.
- Every call scans exactly K steps, those past the segment's end masked off (``lax.cond``), so one
  program is compiled per run and the steps compute the same bytes at any K (tested).
- The train split lives on the device when it fits (:data:`DEVICE_DATA_BYTES`); a step gathers its batch
  there from the indices of the seeded epoch order (``feed.Feed.indices``, the order TensorFlow's input
  uses). A larger split is gathered on the host, K batches per call, one call ahead (a reader thread).
- A step's random draws come from ``jax.random`` (threefry: the same bits on a CPU and a GPU) keyed by
  ``(seed, train.step_noise, step, name)``: other numbers than TensorFlow's stateless generators, the
  same distributions.
- The learning-rate schedule writes the optimizer's ``learning_rate`` variable before each update (a
  schedule reading ``GAN.step`` cannot be traced into a stateless update).
- Spectral normalisation: Keras' layer writes W / sigma into its (trainable) kernel in a training call,
  which a stateless call does not keep: D's forward pass uses W / sigma(W) as on TensorFlow, but the
  gradient flows through sigma (Miyato et al.'s form, PyTorch's ``spectral_norm``) to the raw kernel,
  where TensorFlow's steps the normalised kernel it stored.
- A gradient that is structurally zero (D's last bias under a pure input-gradient penalty) is a zero
  here, where TensorFlow's tape gives None and the update skips the variable: Adam still moves that one
  bias by its momentum in the lazy regularisers' extra updates.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import keras
import numpy as np

from . import losses, seeds
from . import params as P
from .augment import ADA_INTERVAL, ada_adjust, augment
from .build import lr_factor
from .gan import GAN, scale_images

# A train split up to this size is copied to the device once and batches are gathered there.
DEVICE_DATA_BYTES = 2 << 30


def step_noise(spec: dict, batch: int, step, seed: int) -> dict:
    """Every random draw of global step ``step`` (see ``GAN.noise_spec``), shaped (batch, ...), from
    ``jax.random`` keyed by ``(seed, step, name)`` alone."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), seeds.STREAMS["train.step_noise"][0]), step)
    out = {}
    for k, name in enumerate(sorted(spec)):
        shape, dist = spec[name]
        full, sub = (batch, *shape), jax.random.fold_in(key, k)
        if dist == "normal":
            out[name] = jax.random.normal(sub, full, jnp.float32)
        elif dist == "uniform":
            out[name] = jax.random.uniform(sub, full, jnp.float32)
        else:
            out[name] = jax.random.randint(sub, full, 0, dist, jnp.int32)
    return out


def input_grad(f, x):
    """The gradient of ``f`` at ``x``, summed over ``f``'s outputs (differentiable again)."""
    return jax.grad(lambda v: jnp.sum(f(v).astype(jnp.float32)))(x)


def _values(variables) -> list:
    return [v.value for v in variables]


class JaxGAN(GAN):
    """:class:`ganpipe.gan.GAN` with JAX's step (:meth:`run_chunk`)."""

    lr_schedule = ("constant", 0)  # (train.lr_schedule, planned steps); set by build.build_gan
    base_lr = {"d": 0.0, "g": 0.0}  # the learning rates a schedule multiplies; set by build.build_gan
    _run = _feed = None

    # ----------------------------------------------------------------------------- state <-> variables

    def _groups(self) -> dict:
        """The variables of the state, by name (networks, optimizers, the GAN's own)."""
        g, d, e = self.generator, self.discriminator, self.ema_generator
        out = {"g_tv": g.trainable_variables, "g_ntv": g.non_trainable_variables,
               "d_tv": d.trainable_variables, "d_ntv": d.non_trainable_variables,
               "g_opt": self.g_optimizer.variables, "d_opt": self.d_optimizer.variables,
               "misc": [self.step, self.first_bad, self.aug_p, self.ada_acc],
               "sums": [self.sums[k] for k in self.output_names()],
               "reg": [self.reg_last[k] for k in self.regularisers]}
        if e is not None:
            out |= {"e_tv": e.trainable_variables, "e_ntv": e.non_trainable_variables}
        return out

    def state(self) -> dict:
        return {k: _values(v) for k, v in self._groups().items()}

    def set_state(self, state: dict) -> None:
        for k, variables in self._groups().items():
            for v, value in zip(variables, state[k]):
                v.assign(value)

    # ----------------------------------------------------------------------------- one step

    def _labels(self, noise, i):
        return noise["labels"][:, i:i + 1].astype(jnp.int32) if self.num_classes else None

    def _augment(self, x, noise, k, p):
        if not self.augment_ops:
            return x
        u = noise["aug"][:, k]
        gate = None if self.fixed_p == 1 else p  # p = 1: no gating at all (DiffAugment)
        if self.adaptive:  # p starts at 0: skip the ops' cost until the controller raises it
            return jax.lax.cond(p > 0, lambda v: augment(v, self.augment_ops, u, gate), lambda v: v, x)
        return augment(x, self.augment_ops, u, gate) if self.fixed_p > 0 else x

    def _d(self, d_tv, d_ntv, x, labels, training):
        return self.discriminator.stateless_call(d_tv, d_ntv, [x, labels] if self.num_classes else x,
                                                 training=training)

    def _g(self, g_tv, g_ntv, z, labels, training):
        return self.generator.stateless_call(g_tv, g_ntv, self._g_inputs(z, labels), training=training)

    def _update(self, which: str, opt_vars, grads, tv, step):
        """Optimizer ``which`` ("d" or "g") applied to ``tv``; the scheduled learning rate written first."""
        optimizer = getattr(self, f"{which}_optimizer")
        kind, total = self.lr_schedule
        if kind != "constant":
            i = next(i for i, v in enumerate(optimizer.variables) if v.path.endswith("/learning_rate"))
            opt_vars = list(opt_vars)
            opt_vars[i] = self.base_lr[which] * lr_factor(kind, step, total)
        new_tv, opt_vars = optimizer.stateless_apply(opt_vars, grads, tv)
        return list(new_tv), list(opt_vars)

    def one_step(self, state: dict, images, labels) -> dict:
        """The state after one step on the batch ``(images, labels)`` (uint8, int32)."""
        s = dict(state)
        step, first_bad, p, ada_acc = s["misc"]
        g_tv, g_ntv, d_tv, d_ntv = s["g_tv"], s["g_ntv"], s["d_tv"], s["d_ntv"]
        real = scale_images(images)
        noise = step_noise(self.noise_spec(), self.batch_size, step, self.seed)
        real_labels = labels.reshape(-1, 1).astype(jnp.int32) if self.num_classes else None
        penalty = jnp.float32(0.0)
        for i in range(self.critic_steps):
            fake_labels = self._labels(noise, i)
            fake, g_ntv = self._g(g_tv, g_ntv, noise["z"][:, i], fake_labels, True)

            def d_loss(d_tv, d_ntv, i=i, fake=fake, fake_labels=fake_labels):
                real_logits, d_ntv = self._d(d_tv, d_ntv, self._augment(real, noise, 2 * i, p), real_labels, True)
                fake_logits, d_ntv = self._d(d_tv, d_ntv, self._augment(fake, noise, 2 * i + 1, p), fake_labels, True)
                loss, pen = self.loss.d(real_logits, fake_logits), jnp.float32(0.0)
                if self.loss.regulariser is not None:
                    draws = {name: noise[name][:, i] for name in self.loss.draws}
                    d_fn = lambda v: self._d(d_tv, d_ntv, v, real_labels, False)[0]  # noqa: E731
                    pen = self.loss.regulariser(d_fn, real, fake, draws, input_grad)
                    loss = loss + self.gp_weight * pen
                return loss, (d_ntv, real_logits, pen)

            (d_loss_value, (d_ntv, real_logits, penalty)), grads = jax.value_and_grad(d_loss, has_aux=True)(d_tv, d_ntv)
            d_tv, s["d_opt"] = self._update("d", s["d_opt"], grads, d_tv, step)

        reg = list(s["reg"])
        if self.regularisers:
            def regularise(args):
                d_tv, d_opt, reg = args

                def total(d_tv):
                    out, values = jnp.float32(0.0), []
                    for name, gamma in self.regularisers.items():
                        if losses.REGULARISERS[name].on == "real":
                            x, lab = real, real_labels
                        else:
                            lab = self._labels(noise, 0)
                            x = jax.lax.stop_gradient(
                                self._g(g_tv, g_ntv, noise["z"][:, 0], lab, False)[0].astype(real.dtype))
                        d_fn = lambda v, lab=lab: self._d(d_tv, d_ntv, v, lab, False)[0]  # noqa: E731
                        values.append(losses.grad_sq_norm(d_fn, x, input_grad, lambda v: self._augment(v, noise, 0, p)))
                        out = out + (self.reg_interval * gamma / 2.0) * values[-1]
                    return out, values

                (_, values), grads = jax.value_and_grad(total, has_aux=True)(d_tv)
                d_tv, d_opt = self._update("d", d_opt, grads, d_tv, step)
                return d_tv, d_opt, [v.astype(jnp.float32) for v in values]

            d_tv, s["d_opt"], reg = jax.lax.cond(step % self.reg_interval == 0, regularise, lambda a: a,
                                                 (d_tv, s["d_opt"], reg))

        n = self.critic_steps
        fake_labels = self._labels(noise, n)

        def g_loss(g_tv, g_ntv, d_ntv):
            fake, g_ntv = self._g(g_tv, g_ntv, noise["z"][:, n], fake_labels, True)
            logits, d_ntv = self._d(d_tv, d_ntv, self._augment(fake, noise, 2 * n, p), fake_labels, True)
            return self.loss.g(logits), (g_ntv, d_ntv)

        (g_loss_value, (g_ntv, d_ntv)), grads = jax.value_and_grad(g_loss, has_aux=True)(g_tv, g_ntv, d_ntv)
        g_tv, s["g_opt"] = self._update("g", s["g_opt"], grads, g_tv, step)

        if self.ema_generator is not None:
            beta = self.ema_beta(step + 1)
            s["e_tv"] = [beta * e + (1.0 - beta) * w.astype(e.dtype) for e, w in zip(s["e_tv"], g_tv)]
            s["e_ntv"] = list(g_ntv)  # batch-norm statistics follow the live generator

        # rt: StyleGAN2-ADA's overfitting heuristic E[sign(D(real))] on the last critic step's real batch.
        rt = jnp.mean(jnp.sign(real_logits.astype(jnp.float32)))
        out = {"d_loss": d_loss_value, "g_loss": g_loss_value, "rt": rt}
        out |= {self.loss.log_key: penalty} if self.loss.regulariser is not None else {}
        out |= dict(zip(self.regularisers, reg))
        sums = [a + out[k].astype(jnp.float32) for a, k in zip(s["sums"], self.output_names())]
        finite = jnp.all(jnp.stack([jnp.isfinite(v) for v in sums]))
        first_bad = jnp.where((first_bad < 0) & ~finite, step, first_bad)
        if self.augment_ops and self.adaptive:  # ADA: every ADA_INTERVAL steps move p by the mean r_t
            acc = ada_acc + rt
            due = (step + 1) % ADA_INTERVAL == 0
            p = jnp.where(due, ada_adjust(p, acc / ADA_INTERVAL, self.ada_target, self.ada_rate), p)
            ada_acc = jnp.where(due, 0.0, acc)
        s |= {"g_tv": g_tv, "g_ntv": g_ntv, "d_tv": d_tv, "d_ntv": list(d_ntv), "reg": reg, "sums": sums,
              "misc": [step + 1, first_bad, p.astype(jnp.float32), ada_acc.astype(jnp.float32)],
              "last": {k: out[k].astype(jnp.float32) for k in ("d_loss", "g_loss")}}
        return s

    # ----------------------------------------------------------------------------- K steps per call

    def _chunk(self, state, x, y, idx, images, active):
        """``len(active)`` steps (``lax.scan``), those where ``active`` is False leaving the state as it
        was. Batches come from the device-resident ``x``/``y`` at ``idx``, or from ``images``/``idx``'s
        labels gathered on the host (``x`` None)."""
        def body(state, step_in):
            i, batch, on = step_in
            imgs = x[i] if x is not None else batch
            labs = y[i]
            return jax.lax.cond(on, lambda st: self.one_step(st, imgs, labs), lambda st: st, state), None

        state, _ = jax.lax.scan(body, state, (idx, images, active))
        return state

    def bind(self, feed) -> bool:
        """Compile the call on first use and put ``feed``'s split on the device once when it fits; returns
        whether it did (else batches are gathered on the host: :meth:`host_batches`)."""
        if self._run is None:
            donate = (0,) if jax.devices()[0].platform != "cpu" else ()  # the CPU cannot donate buffers
            self._run = jax.jit(self._chunk, donate_argnums=donate)
        if self._feed is not feed:
            self._device = device = jax.devices()[0]
            resident = int(np.prod(feed.x.shape)) <= DEVICE_DATA_BYTES
            self._x = jax.device_put(np.asarray(feed.x[:]), device) if resident else None
            self._y = jax.device_put(np.asarray(feed.labels, np.int32), device)
            self._feed = feed
        return self._x is not None

    @staticmethod
    def host_batches(feed, idx: np.ndarray) -> np.ndarray:
        """The images of one call's steps, (K, B, H, W, C) uint8, gathered on the host."""
        return np.stack([np.asarray(feed.x[i]) for i in idx])

    def run_chunk(self, feed, idx: np.ndarray, active: np.ndarray, images: np.ndarray | None = None) -> dict:
        """Run one call: ``idx`` (K, B) image indices, ``active`` (K,) which of the K steps run; ``images``:
        their batches when the split is not on the device (gathered here when not given). Returns the last
        step's losses (floats, read on the host)."""
        if not self.bind(feed) and images is None:
            images = self.host_batches(feed, idx)
        state = self.state() | {"last": {k: jnp.float32(0.0) for k in ("d_loss", "g_loss")}}
        # every argument committed to the device: a mix of committed (a call's outputs) and uncommitted
        # (fresh) arrays is another signature to jax.jit, and each one compiled the program again
        args = jax.device_put((state, idx.astype(np.int32), images, np.asarray(active)), self._device)
        state, idx, images, active = args
        state = self._run(state, self._x, self._y, idx, images, active)
        last = state.pop("last")
        self.set_state(state)
        return {k: float(v) for k, v in last.items()}


MODEL = JaxGAN  # build.build_gan's class on this backend


def run_steps(gan: JaxGAN, feed, n: int, hook=None) -> int:
    """``n`` steps from the GAN's current step (within one epoch), ``gan.steps_per_execution`` per call;
    returns the step reached (short of the end when a step's output was not finite). A split that is not
    on the device is read one call ahead: a thread gathers the next call's batches while this one runs."""
    start = int(gan.step.numpy())
    if start % feed.steps_per_epoch == 0:
        gan.reset_sums()  # a new epoch
    k = int(gan.steps_per_execution or 1)
    order = feed.indices(start, n)
    calls = []
    for first in range(0, n, k):
        rows = order[first:first + k]
        idx = np.zeros((k, feed.batch), np.int64)
        idx[:len(rows)] = rows
        calls.append((first, idx, np.arange(k) < len(rows)))
    gan.stop_training = False
    if hook is not None:
        hook.set_model(gan)
    on_device = gan.bind(feed)
    with ThreadPoolExecutor(1) as reader:
        ahead = None if on_device else reader.submit(gan.host_batches, feed, calls[0][1])
        for i, (first, idx, active) in enumerate(calls):
            images = None if on_device else ahead.result()
            if not on_device and i + 1 < len(calls):
                ahead = reader.submit(gan.host_batches, feed, calls[i + 1][1])
            logs = gan.run_chunk(feed, idx, active, images)
            if hook is not None:
                hook.on_train_batch_end(first, logs)
            if int(gan.first_bad.numpy()) >= 0:
                break
    return int(gan.step.numpy())


def configure(cfg: P.Train, seed: int, second_order: bool = False) -> None:
    """Seeds and precision policy (determinism is XLA's flag, set before JAX started:
    ``ganpipe.backend.use``). ``second_order`` needs nothing here (TensorFlow's Grappler needs it)."""
    seeds.seed_keras(seed, cfg.deterministic)
    keras.mixed_precision.set_global_policy(cfg.precision)


def make_strategy(kind: str):
    """JAX trains on one device: no strategy (``params.Train.validate`` refuses the others for jax)."""
    if kind != "default":
        raise ValueError(f"train.strategy: {kind} is a tf.distribute strategy; train.backend jax runs on one device")
    return None


def devices(strategy=None) -> list[str]:
    """The device the steps run on: JAX's first (a GPU when JAX has one)."""
    d = jax.devices()[0]
    return [f"{d.platform}:{d.id} ({d.device_kind})"]
