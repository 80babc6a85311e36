"""The training loop: one model, one stage folder, resumable at epoch boundaries.

A stage folder holds::

    config.json        the TrainConfig
    metrics.jsonl      one JSON line per epoch
    checkpoint.npz     weights, optimizer state and metadata (see checkpoint.py)
    checkpoint.json    the metadata, readable

Randomness is derived from ``(seed, epoch)``: each epoch starts a fresh host generator
(shuffling, jitter) and a fresh backend generator (dropout masks).  Resuming at an epoch
boundary therefore needs no generator state, and a resumed run equals an uninterrupted one bit
for bit on NumPy with the same threads and step mode (``cpu_threads``, ``step_mode``: :mod:`nnkd.stepmode`).
"""

import contextlib
import json
import math
import os
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from . import checkpoint, files, losses, stepmode
from .backend import flush_subnormals, get_backend
from .batches import batch_slices, gather, jitter
from .errors import Interrupted, TrainingDiverged, UserError
from .runlock import RunLock
from .inputs import check_training_data
from .config import TrainConfig
from .network import Network
from .optim import MaxNorm, make_optimizer
from .schedules import make_schedule, momentum_at
from .parallel import SERIAL, cpu_workers, step_threads
from .presets import preset
from .transfer import TeacherLogits


class Step:
    """One training step of ``net`` under ``cfg``: gather the batch, jitter it, forward, loss,
    backward, optimizer update, max-norm; used by :func:`train` and by the benchmarks, so both
    time the same code.  A call returns ``(loss, wrong)``, 0-d arrays on the backend (no device
    synchronization): the batch's loss and its number of training errors.  ``workers``
    (:func:`nnkd.parallel.cpu_workers`) run the large operations by parts on several cores."""

    def __init__(self, cfg, net, image_shape=(28, 28), workers=SERIAL):
        self.cfg = cfg
        self.net = net
        self.image_shape = image_shape
        self.xp = net.backend.xp
        self.opt = make_optimizer(cfg.optimizer, [p for _, p in net.params], cfg)
        self.objective = losses.Objective.from_settings(cfg)
        self.maxnorm = MaxNorm(cfg.max_norm, cfg.max_norm_squared, cfg.max_norm_bias,
                               cfg.max_norm_layers) if cfg.max_norm > 0 else None
        net.set_workers(workers)
        self.opt.workers = workers
        self._buffers = {}

    def _batch_buffers(self, b, dims):
        if (b, dims) not in self._buffers:
            self._buffers[b, dims] = (self.xp.empty((b, dims), dtype=np.float32),
                                      self.xp.empty((b, dims), dtype=np.float32))
        return self._buffers[b, dims]

    def __call__(self, X, Y, idx, lr, momentum, host_rng, teacher=None):
        """X ``(N, D)``, Y ``(N,)``, idx ``(B,)`` sample indices on the backend; ``teacher``: a
        :class:`~nnkd.transfer.TeacherLogits` over the same N images (distillation, with the
        transfer set jittered by ``cfg.transfer_jitter``), or None (hard labels, jittered by
        ``cfg.jitter``)."""
        cfg, net, xp = self.cfg, self.net, self.xp
        xb, xj = self._batch_buffers(idx.shape[0], X.shape[1])
        gather(X, idx, xb)
        max_shift = cfg.jitter if teacher is None else cfg.transfer_jitter
        k = None
        if max_shift:
            k = jitter(xb, xj, max_shift, host_rng, self.image_shape)
            xb = xj
        yb = Y[idx]
        z = net.forward(xb, train=True)
        wrong = xp.count_nonzero(z.argmax(axis=1) != yb)
        loss, g = self.objective(z, yb, None if teacher is None else teacher.rows(idx, k))
        net.zero_grad()
        net.backward(g)
        self.update(lr, momentum)
        return loss, wrong

    def update(self, lr, momentum):
        """The optimizer's update from the gradients, then max-norm."""
        sq_norms = self.maxnorm.sq_norm_buffers(self.net.dense) if self.maxnorm else None
        ready = self.opt.step(lr, momentum, sq_norms)  # may compute max-norm's norms on the way
        if self.maxnorm:
            self.maxnorm.apply(self.net.dense, ready)


@contextlib.contextmanager
def training_conditions(backend, threads=None, mode=None):
    """What every training step runs under; yields the workers to give :class:`Step`:
    subnormals flushed to zero (:func:`nnkd.backend.flush_subnormals`), NumPy's float
    warnings off (overflow and NaN are caught by the loss's finiteness check, with a clear
    message), and the step on ``threads`` cores (default: as many as OpenBLAS may use) in
    step ``mode`` (default: :func:`nnkd.stepmode.step_mode`'s choice for this machine;
    :func:`nnkd.parallel.cpu_workers`)."""
    threads = step_threads(backend) if threads is None else threads
    mode = machine_step_mode(backend, threads)[0] if mode is None else mode
    with flush_subnormals(), np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
            cpu_workers(backend, threads, mode) as workers:
        yield workers


def machine_step_mode(backend, threads=None):
    """:func:`nnkd.stepmode.step_mode`, measuring with :func:`calibrate_modes` if need be."""
    return stepmode.step_mode(backend, threads, calibrate_modes)


def calibrate_modes(threads, rounds=stepmode.ROUNDS, steps=stepmode.STEPS, budget=stepmode.BUDGET):
    """``{mode: seconds}``: the median time of a step (random data, batch 100, ``steps`` in a row)
    in each mode, summed over :data:`nnkd.stepmode.CALIBRATION_MODELS`, the modes interleaved
    over ``rounds`` rounds (so that a busy spell weighs on both), fewer once ``budget`` s are spent."""
    backend, rng = get_backend("numpy"), np.random.default_rng(0)
    X, Y = rng.random((1000, 784), dtype=np.float32), rng.integers(0, 10, 1000)
    times = {m: [] for m in stepmode.MODES}
    steppers = [Step(cfg, Network.from_settings(cfg, backend)) for cfg in
                (preset("fast")[0][name] for name in stepmode.CALIBRATION_MODELS)]
    start = time.perf_counter()
    with flush_subnormals(), np.errstate(all="ignore"):
        for r in range(rounds):
            for mode in (stepmode.MODES if r % 2 == 0 else stepmode.MODES[::-1]):
                with cpu_workers(backend, threads, mode) as workers:
                    times[mode].append(sum(_time_steps(s, workers, X, Y, steps) for s in steppers))
            if time.perf_counter() - start > budget:
                break
    return {m: statistics.median(t) for m, t in times.items()}


def _time_steps(step, workers, X, Y, steps):
    step.net.set_workers(workers)
    step.opt.workers = workers
    step.net.set_rng(np.random.default_rng(0))
    host_rng = np.random.default_rng(1)
    idx = [np.arange(i * 100, i * 100 + 100) % X.shape[0] for i in range(steps + 1)]
    step(X, Y, idx[-1], 0.01, 0.9, host_rng)  # a warm-up step on these workers
    t0 = time.perf_counter()
    for i in idx[:-1]:
        step(X, Y, i, 0.01, 0.9, host_rng)
    return (time.perf_counter() - t0) / steps


class StopFlag:
    """Set by a signal handler; the loop checks it after every step."""

    def __init__(self):
        self.signal = None

    def __bool__(self):
        return self.signal is not None


def count_errors(net, X, y, batch_size=10000):
    """Number of rows of ``X`` whose arg-max logit differs from ``y`` (a Python int)."""
    xp = net.backend.xp
    wrong = 0
    for i in range(0, X.shape[0], batch_size):
        z = net.forward(X[i:i + batch_size], train=False)
        wrong += xp.count_nonzero(z.argmax(axis=1) != y[i:i + batch_size])
    return int(wrong)


def param_spec(net):
    return {name: (p.data.shape, p.data.dtype) for name, p in net.params}


def _field_prefix(name):
    """``"teacher."`` for a model called ``teacher``: how messages name its settings."""
    return name + "." if name else ""


def _fmt_time(s):
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Trainer:
    """Trains one model in one stage folder; see :func:`train`."""

    def __init__(self, cfg, backend, data, stage_dir, teacher=None, log=print, stop=None,
                 data_checksum=None, check_every=None, name="", workers=SERIAL):
        self.cfg, self.backend, self.data = cfg, backend, data
        self.field = _field_prefix(name)
        self.teacher, self.log, self.stop = teacher, log, stop
        self.data_checksum = data_checksum
        # NumPy: every step (it costs nothing); CuPy: the epoch's last step only, so that no step
        # waits for the device (a non-finite loss persists in the weights until then)
        self.check_every = check_every or (0 if backend.is_gpu else 1)
        self.dir = None if stage_dir is None else Path(stage_dir)  # None: in memory, nothing written
        self.ckpt = self.dir and self.dir / "checkpoint.npz"
        self.metrics_path = self.dir and self.dir / "metrics.jsonl"
        n_classes, shape = check_training_data(data, backend, cfg.sizes()[-1])
        cfg.validate(n_train=data["x_train"].shape[0], n_in=data["x_train"].shape[1],
                     n_out=n_classes, image_side=min(shape) if shape else None, prefix=self.field,
                     distilled=teacher is not None)
        cfg.check_memory(prefix=self.field)
        if teacher is not None:
            teacher.check_against(data["x_train"].shape[0], n_classes)
        self.net = Network.from_settings(cfg, backend)
        self.step = Step(cfg, self.net, shape, workers)
        self.schedule = make_schedule(cfg)
        self.threads, self.step_mode = workers.n, workers.mode
        self.epoch = 0          # epochs completed
        self.saved_epoch = 0    # epochs held by the checkpoint on disk
        self.seconds = 0.0      # training time so far, summed over every resume
        self.later_epochs = 0   # epochs of this model's cost that the run trains after this stage

    def resume(self):
        """Load the stage's checkpoint if there is one; keep only the metrics it covers."""
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        files.write_text(self.dir / "config.json", json.dumps(asdict(self.cfg), indent=1))
        if self.ckpt.exists():
            opt = self.step.opt
            spec = dict(param_spec(self.net))
            spec.update(opt.state_spec())
            arrays, meta = checkpoint.load(self.ckpt, expected=spec)
            stored = TrainConfig.from_dict(meta.get("config"), f"{self.ckpt}: its config")
            if replace(stored, epochs=self.cfg.epochs) != self.cfg or (
                    stored.epochs != self.cfg.epochs and self.schedule.depends_on_length):
                raise UserError(f"{self.ckpt} was written with another configuration; resume with the "
                                "same settings or start a new run folder")
            if self.cfg.epochs < meta["epoch"]:
                raise UserError(f"{self.ckpt} holds {meta['epoch']} epochs already: give "
                                f"`{self.field}epochs` of at least that to continue it")
            if stored.epochs != self.cfg.epochs:
                self.log(f"lengthening {self.dir} from {stored.epochs} to {self.cfg.epochs} epochs")
            if self.data_checksum and meta.get("data_checksum") not in (None, self.data_checksum):
                raise UserError(f"{self.ckpt} was trained on other data (checksum differs)")
            self.net.load_state(arrays)
            opt.load_state(arrays, self.backend.asarray)
            self.epoch = self.saved_epoch = meta["epoch"]
            self.seconds = meta.get("seconds", 0.0)
            self.log(f"resuming {self.dir} at epoch {self.epoch + 1} of {self.cfg.epochs}")
        # Rows of epochs after the checkpoint are trained again; a torn last line is dropped.
        kept = [row for row in files.read_metrics(self.metrics_path, log=self.log)
                if row["epoch"] <= self.epoch]
        files.write_metrics(self.metrics_path, kept)

    def save(self):
        arrays = dict(self.net.state())
        arrays.update(self.step.opt.state(self.backend.to_host))
        checkpoint.save(self.ckpt, arrays, {
            "config": asdict(self.cfg), "epoch": self.epoch, "seconds": self.seconds,
            "data_checksum": self.data_checksum, "backend": self.backend.name,
            # the products' rounding depends on both (nnkd.stepmode)
            "cpu_threads": self.threads, "step_mode": self.step_mode,
            "rng": {"seed": self.cfg.seed, "next_epoch": self.epoch,
                    "scheme": "per-epoch generators from (seed, epoch)"}})
        self.saved_epoch = self.epoch

    def run_epoch(self):
        """Train one epoch; returns its metrics row."""
        cfg, be, xp = self.cfg, self.backend, self.backend.xp
        X, Y = self.data["x_train"], self.data["y_train"]
        N, epoch = X.shape[0], self.epoch
        t0 = time.perf_counter()
        lr = self.schedule.rate(epoch)
        mom = momentum_at(epoch, cfg.momentum_start, cfg.momentum_end, cfg.momentum_epochs)
        host_rng = np.random.default_rng([cfg.seed, epoch, 0])
        self.net.set_rng(be.rng([cfg.seed, epoch, 1]))
        order = be.asarray(host_rng.permutation(N))
        loss_sum = xp.zeros((), dtype=np.float32)
        wrong = xp.zeros((), dtype=np.int64)
        slices = batch_slices(N, cfg.batch_size)
        for step, (a, b) in enumerate(slices):
            loss, wrong_b = self.step(X, Y, order[a:b], lr, mom, host_rng, self.teacher)
            wrong += wrong_b
            if (self.check_every and step % self.check_every == 0) or step == len(slices) - 1:
                if not math.isfinite(float(loss)):
                    cause = (f"a learning rate too high for this model (lower `{self.field}lr`)"
                             if self.teacher is None else
                             f"a learning rate too high for this model and temperature (lower "
                             f"`{self.field}lr`, or `{self.field}temperature`)")
                    raise TrainingDiverged(
                        f"the loss became {float(loss)} at epoch {epoch + 1}, step {step + 1} "
                        f"(lr {lr:.4g}); the inputs were checked finite, so the likely cause is {cause}; "
                        f"{self._kept()}")
            loss_sum += loss
            if self.stop:
                raise Interrupted(
                    f"stopped by {self.stop.signal} at epoch {epoch + 1}, step {step + 1}; " + (
                        f"the checkpoint {self.ckpt} holds epoch {self.saved_epoch} (later steps are discarded)"
                        if self.dir is not None else self._kept()))
        be.synchronize()
        train_seconds = time.perf_counter() - t0
        self.seconds += train_seconds
        self.epoch += 1
        row = {"epoch": self.epoch, "loss": float(loss_sum) / len(slices), "train_err": int(wrong) / N,
               "lr": lr, "momentum": mom}
        if "x_val" in self.data:
            row["val_err"] = count_errors(self.net, self.data["x_val"], self.data["y_val"]) \
                / self.data["x_val"].shape[0]
        if self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs:
            row["test_errors"] = count_errors(self.net, self.data["x_test"], self.data["y_test"])
        row["examples_per_s"] = N / train_seconds
        row["seconds"] = self.seconds
        return row

    def fit(self):
        cfg = self.cfg
        first, t_first = self.epoch, self.seconds
        while self.epoch < cfg.epochs:
            row = self.run_epoch()
            if self.dir is not None:
                files.append_metrics(self.metrics_path, row)
            per_epoch = (self.seconds - t_first) / (self.epoch - first)
            left = (cfg.epochs - self.epoch) * per_epoch
            run_left = f" (run {_fmt_time(left + self.later_epochs * per_epoch)})" if self.later_epochs else ""
            val = f"{100 * row['val_err']:5.2f}%" if "val_err" in row else "   -  "
            test = f"{row['test_errors']:4d}" if "test_errors" in row else "   -"
            self.log(f"  epoch {self.epoch:4d}/{cfg.epochs}  loss {row['loss']:.4f}  train err "
                     f"{100 * row['train_err']:5.2f}%  val err {val}  test {test}  "
                     f"lr {row['lr']:.4g}  mom {row['momentum']:.3f}  {row['examples_per_s']:7.0f} ex/s  "
                     f"left {_fmt_time(left)}{run_left}")
            if self.dir is not None and (self.epoch % cfg.checkpoint_every == 0 or self.epoch == cfg.epochs):
                self.save()

    def _kept(self):
        """What a stopped run keeps."""
        if self.dir is None:
            return "the model was trained in memory: nothing was saved"
        return f"the last good checkpoint ({self.ckpt}, epoch {self.saved_epoch}) is kept"


def _check_train_arguments(cfg, stage_dir, log):
    """:func:`train`'s arguments that are not data, each refused in one line."""
    if not isinstance(cfg, TrainConfig):
        raise UserError(f"cfg is a {type(cfg).__name__}: give a TrainConfig, e.g. "
                        "TrainConfig(arch='784-800-800-10', epochs=60)")
    if stage_dir is not None and (not isinstance(stage_dir, (str, os.PathLike)) or not str(stage_dir)):
        raise UserError(f"stage_dir is {stage_dir!r}: give the folder to train in (its checkpoints go "
                        "there), e.g. 'runs/student', or None to train in memory")
    if log is not None and not callable(log):
        raise UserError(f"log is a {type(log).__name__}: give a function of one line, e.g. print, or None")


def train(cfg, backend, data, stage_dir, *, teacher_logits=None, log=None, stop=None,
          data_checksum=None, check_every=None, name="", lock=True, later_epochs=0):
    """Train one model, resuming from ``stage_dir/checkpoint.npz`` if it exists
    (``stage_dir`` None: in memory, writing nothing).

    Args:
        cfg: a :class:`TrainConfig`.
        backend: a backend from :func:`nnkd.get_backend`, or its name (``"numpy"``, ``"cupy"``).
        data: dict of backend arrays: ``x_train`` float32 ``(N, 784)``, ``y_train``
            int ``(N,)``, ``x_test``, ``y_test`` and optionally ``x_val``, ``y_val``.
        teacher_logits: the teacher's logits on ``x_train``, by sample index: a
            :class:`~nnkd.transfer.TeacherLogits`, or an array ``(N, C)`` (row i belongs to
            ``x_train[i]``) or ``(shifts, N, C)`` with ``cfg.transfer_jitter``.  Training is
            then distillation at ``cfg.temperature``; None trains on hard labels.
        log: called with each progress line (e.g. ``print``); None: quiet.  stop: a
            :class:`StopFlag`; when set, training stops after the current step.
        check_every: steps between finiteness checks of the loss (each one reads a
            number back from the device); default 1 on NumPy; on CuPy, the epoch's last step only.
        name: what the model is (``teacher``, ``student``), for messages naming its settings.
        later_epochs: what the run trains after this model, in epochs of this model's cost; the
            progress lines then give the time left for the whole run too.
        lock: hold ``stage_dir``'s lock (:class:`nnkd.runlock.RunLock`); False: the caller does.

    Every input is checked before any work (a mistake is one :class:`~nnkd.errors.UserError`
    line).  Returns ``(net, summary)``: test errors, epochs, seconds, params.
    """
    _check_train_arguments(cfg, stage_dir, log)
    backend = get_backend(backend)  # a name, or a Backend as it is
    log = log or (lambda line: None)
    try:
        teacher = teacher_logits
        if teacher is not None and not isinstance(teacher, TeacherLogits):
            teacher = TeacherLogits(teacher, cfg.transfer_jitter)
        with training_conditions(backend) as workers:
            t = Trainer(cfg, backend, data, stage_dir, teacher, log, stop, data_checksum, check_every,
                        name, workers)  # every check, before anything is written
            t.later_epochs = later_epochs
            with RunLock(stage_dir) if lock and stage_dir is not None else contextlib.nullcontext():
                t.resume()
                t.fit()
        t.net.set_workers(SERIAL)  # the workers are gone
    except Exception as exc:
        if not backend.is_out_of_memory(exc):
            raise
        free, total = backend.free_memory()
        raise UserError(f"out of GPU memory training {cfg.arch} at batch size {cfg.batch_size} "
                        f"({free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB on the card): use a "
                        f"smaller `{_field_prefix(name)}batch_size` or architecture; checkpoints in {stage_dir} are kept") from None
    summary = {"test_errors": count_errors(t.net, data["x_test"], data["y_test"]), "epochs": cfg.epochs,
               "seconds": t.seconds, "params": t.net.n_params()}
    return t.net, summary

