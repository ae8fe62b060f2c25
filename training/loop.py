"""The training loop shared by `cpm train` and `cpm distill`: strategy, optimiser, checkpoints, validation,
events and a clean stop.

A run owns one output folder: `checkpoints/` (tf.train.CheckpointManager: the `checkpoint` index is replaced
atomically after the files it names are complete, so a killed run resumes from the last finished one),
`config.toml` of what ran, `model/` (the exported model folder with its card) and `metrics.csv`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cpm_core.atomic_io import atomic_write_text
from cpm_core.heatmaps import decode_predictions, grid_to_input
from cpm_core.metrics import end_point_error, pck
from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm, cpu_has_fast_bfloat16, fold_batch_norm
from cpm_core.preprocess import Normalisation
from cpm_core.spec import ModelSpec
from cpm_core.weights import load_model, save_model
from training.config import RunConfig
from training.events import CheckpointEvent, DoneEvent, EpochEvent, EvalEvent, EventWriter, StartEvent, StepEvent
from training.learning_curve import METRICS_COLUMNS, metrics_rows


class StopFlag:
    """Set by SIGTERM/SIGINT or by a line 'stop' on stdin (the GUI's control channel)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        self.reason = self.reason or reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def install(self, watch_stdin: bool = True) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda signum, frame: self.set(signal.Signals(signum).name))
        if watch_stdin and sys.stdin is not None and not sys.stdin.closed and not sys.stdin.isatty():
            def watch() -> None:
                try:
                    for line in sys.stdin:
                        if line.strip().lower() == "stop":
                            self.set("stop requested")
                            return
                except (OSError, ValueError):
                    return
            threading.Thread(target=watch, name="stop-watch", daemon=True).start()


class TrainingError(RuntimeError):
    """A run that cannot go on, with a message a user can act on (no traceback is shown for it)."""


_STRATEGIES: dict[str, tf.distribute.Strategy] = {}


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The distribution strategy `train.strategy` names, made once per process.

    "multiworker" must be made before TensorFlow runs its first operation (MultiWorkerMirroredStrategy
    configures the collective ops at program start-up, and refuses once any tensor exists), so `cpm train`
    makes it before reading data; the loop then gets the same object back."""
    if name in _STRATEGIES:
        return _STRATEGIES[name]
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # All local GPUs; without GPUs, every logical CPU device (MirroredStrategy alone would take only one).
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    elif name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise TrainingError("train.strategy = \"multiworker\" needs the TF_CONFIG environment variable (the "
                                "cluster's worker addresses and this worker's index); see docs/multiworker.md")
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except (ValueError, RuntimeError, KeyError, tf.errors.OpError) as exc:
            raise TrainingError(f"cannot start the multi-worker strategy from TF_CONFIG: "
                                f"{str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}") from exc
    else:
        raise ValueError(f"unknown strategy {name!r} (default, mirrored, multiworker)")
    _STRATEGIES[name] = strategy
    return strategy


def worker_role(strategy: tf.distribute.Strategy) -> tuple[bool, int, int]:
    """(is chief, this worker's index, number of workers): 1 worker and chief outside a multi-worker cluster.

    The chief is the task of type "chief", else worker 0, as TensorFlow's MultiWorkerMirroredStrategy has it."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not spec:
        return True, 0, 1
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    workers = sum(len(v) if isinstance(v, list) else len(v.keys()) for k, v in spec.items()
                  if k in ("chief", "worker"))
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in spec)
    index = 0 if task_type == "chief" else task_id + (1 if "chief" in spec else 0)
    return chief, index, workers


def resolve_precision(name: str) -> str:
    if name == "auto":
        return "bfloat16" if cpu_has_fast_bfloat16() else "float32"
    if name not in ("float32", "bfloat16"):
        raise ValueError(f"unknown precision {name!r} (auto, float32, bfloat16)")
    return name


def make_schedule(cfg, total_steps: int):
    t = cfg.train
    if t.schedule == "exponential":
        sched = keras.optimizers.schedules.ExponentialDecay(t.lr, t.decay_steps, t.decay_rate, staircase=True)
    elif t.schedule == "cosine":
        if t.warmup_steps:
            sched = keras.optimizers.schedules.CosineDecay(0.0, max(total_steps - t.warmup_steps, 1), alpha=0.02,
                                                           warmup_target=t.lr, warmup_steps=t.warmup_steps)
        else:
            sched = keras.optimizers.schedules.CosineDecay(t.lr, max(total_steps, 1), alpha=0.02)
    elif t.schedule == "constant":
        sched = t.lr
    else:
        raise ValueError(f"unknown schedule {t.schedule!r} (cosine, exponential, constant)")
    return sched


def ema_momentum(target: float, step: int) -> float:
    """The weight average's momentum at `step`: min(target, (1 + step) / (10 + step)).

    Why: a fixed momentum m keeps m ** n of the initial (random) weights after n steps: 0.998 ** 1200 = 9%, and
    the steps just after them weigh more still, so a short run exported weights whose heatmap peaks were a
    fifth of its raw weights' (0.06 against 0.31, body model, 1200 steps). Ramping the momentum up, as
    TensorFlow's ExponentialMovingAverage does with num_updates, averages over the steps so far while they
    are few, and reaches the target after about 10 / (1 - target) steps (5000 for 0.998)."""
    return min(float(target), (1.0 + step) / (10.0 + step))


def make_optimizer(cfg, schedule):
    t = cfg.train
    if not 0.0 <= t.ema < 1.0:
        raise ValueError(f"train.ema must be in [0, 1) (0: off), got {t.ema}")
    # The momentum is a variable the loop ramps up step by step (see ema_momentum); Keras reads it at every update.
    ema = {"use_ema": True, "ema_momentum": t.ema} if t.ema > 0 else {}
    if t.optimizer == "adam":
        opt = keras.optimizers.Adam(schedule, **ema)
    elif t.optimizer == "adamw":
        opt = keras.optimizers.AdamW(schedule, weight_decay=t.weight_decay, **ema)
    elif t.optimizer == "rmsprop":
        opt = keras.optimizers.RMSprop(schedule, **ema)
    else:
        raise ValueError(f"unknown optimizer {t.optimizer!r} (adam, adamw, rmsprop)")
    if t.ema > 0:
        opt.ema_momentum = tf.Variable(ema_momentum(t.ema, 0), dtype=tf.float32, trainable=False,
                                       name="ema_momentum")
    return opt


def swap_ema(model: keras.Model, optimizer) -> None:
    """Exchange the model's weights with the optimizer's moving averages (calling it twice restores them).

    A small net on a few scenes swings from checkpoint to checkpoint (validation PCK moved by +-0.15 between
    evaluations 500 steps apart); the exponential moving average of its weights is what gets evaluated and
    exported, so the card's number is not the luck of the last step."""
    averages = getattr(optimizer, "_model_variables_moving_average", None)
    if not averages:
        return
    for var, avg in zip(model.trainable_variables, averages):
        current = tf.identity(var)
        var.assign(avg)
        avg.assign(current)


def stage_l2(pred: tf.Tensor, targets: tf.Tensor, mask: tf.Tensor, global_batch: int) -> tf.Tensor:
    """The port's loss per stage: l2_loss(pred - gt) / batch = sum of squares / 2 / batch, over masked
    channels (absent joints teach nothing). pred (B, T, h, w, C), targets (B, h, w, C) or (B, T, h, w, C)."""
    if targets.shape.rank == 4:
        targets = targets[:, None]
    diff = (tf.cast(pred, tf.float32) - targets) * mask[:, None, None, None, :]
    return tf.reduce_sum(tf.square(diff), axis=[0, 2, 3, 4]) / (2.0 * global_batch)


@dataclass
class Validation:
    """Unaugmented validation crops and what PCK needs; evaluated in crop pixels (a similarity transform of
    the original, so box-normalised errors are the same)."""

    images: np.ndarray  # (N, S, S, 3) uint8
    keypoints: np.ndarray  # (N, J, 2) crop pixels
    labelled: np.ndarray  # (N, J) bool
    norm: np.ndarray  # (N,) box side in crop pixels


_EVAL_FORWARD: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def evaluate_model(model: keras.Model, spec: ModelSpec, val: Validation, batch: int = 32,
                   blur_sigma: float = 0.0) -> dict:
    """Val PCK and EPE in crop pixels; `blur_sigma` as in the exported card's decoding, so the curve and the
    card's numbers are what `cpm eval` and the app see."""
    fn = _EVAL_FORWARD.get(model)
    if fn is None:  # one traced function per model: a new one at every evaluation made TF warn of retracing
        fn = tf.function(lambda x: tf.cast(model(x, training=False)[:, -1], tf.float32), reduce_retracing=True)
        _EVAL_FORWARD[model] = fn
    preds = []
    for i in range(0, len(val.images), batch):
        x = val.images[i:i + batch].astype(np.float32) / 256.0 - 0.5
        hm = fn(tf.constant(x)).numpy()
        grid = decode_predictions(hm, spec.num_joints, blur_sigma)
        preds.append(grid_to_input(grid[..., :2], spec.stride))
    pred = np.concatenate(preds)
    per_joint, mean = pck(pred, val.keypoints, val.labelled, val.norm, 0.2)
    epe_joint, epe = end_point_error(pred, val.keypoints, val.labelled)
    return {"pck": mean, "pck_per_joint": per_joint, "epe": epe, "epe_per_joint": epe_joint,
            "epe_units": "crop pixels"}


@dataclass
class RunState:
    step: int = 0
    best: dict = field(default_factory=dict)
    history: list = field(default_factory=list)


def machine_note() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}"


def dataset_names(paths: list[str]) -> list[str]:
    """Data sets by name ('hand_more/train.json': folder and file), not by a path on the machine that trained:
    a card travels with its model, and '../../../shared/...' means nothing on a user's machine."""
    return [f"{Path(p).parent.name}/{Path(p).name}" if Path(p).parent.name else Path(p).name for p in paths]


def clean_temp_checkpoints(ckpt_dir: Path) -> list[str]:
    """Remove the `ckpt-N_temp*` folders (and files) a save killed midway leaves in `ckpt_dir`; their names.

    Why: TensorFlow writes each checkpoint's shards under `<prefix>_temp/` and merges them into `<prefix>.*`
    when complete; a run killed meanwhile leaves the folder (17 MB for the hand recipe) that no later save or
    resume ever looks at or removes. Only the chief's own folder is cleaned, at the start of a run, when no
    save of this run can be in progress."""
    removed = []
    for p in sorted(ckpt_dir.glob("ckpt-*_temp*")):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p.name)
    return removed


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text.splitlines()[0][:300]}" if text else exc.__class__.__name__


def restore_newest_intact(checkpoint: tf.train.Checkpoint, ckpt_dir: Path, set_aside: bool,
                          log: Callable[[str], None]) -> tuple[str | None, list[dict]]:
    """Restore the newest checkpoint of `ckpt_dir` that reads back whole; (its path, the ones skipped and why).

    Why: a checkpoint truncated by a full disk or a copy cut short stopped `--resume` with `IndexError: Read
    less bytes than requested`, naming no file, although an older checkpoint beside it was intact. Each
    candidate, newest first, is restored in full (a later one overwrites whatever a failed attempt assigned);
    the broken ones are named with their error. With `set_aside` (the chief, which owns the folder) they are
    moved into `checkpoints/broken/` (kept, not deleted) and the index is rewritten to list the intact ones, so
    the next save and its rotation never meet them again. If none is intact: `TrainingError` naming them all."""
    state = tf.train.get_checkpoint_state(str(ckpt_dir))
    paths = list(state.all_model_checkpoint_paths) if state is not None else []
    if state is not None and state.model_checkpoint_path and state.model_checkpoint_path not in paths:
        paths.append(state.model_checkpoint_path)
    paths = [p if os.path.isabs(p) else str(ckpt_dir / p) for p in paths]
    skipped: list[dict] = []
    restored = None
    for path in reversed(paths):
        try:
            checkpoint.restore(path).expect_partial()
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is skipped, and named with its error
            skipped.append({"path": path, "reason": _first_line(exc)})
            log(f"checkpoint {path} is not intact, skipped ({_first_line(exc)})")
            continue
        restored = path
        break
    if skipped and restored is None:
        listed = "; ".join(f"{Path(d['path']).name}: {d['reason']}" for d in skipped)
        raise TrainingError(f"--resume: no intact checkpoint in {ckpt_dir} ({listed}); start without --resume "
                            "or with another output folder")
    if skipped and set_aside:
        broken = ckpt_dir / "broken"
        broken.mkdir(exist_ok=True)
        for d in skipped:
            for f in Path(d["path"]).parent.glob(Path(d["path"]).name + ".*"):
                os.replace(f, broken / f.name)
        keep = [p for p in paths if p not in {d["path"] for d in skipped}]
        tf.compat.v1.train.update_checkpoint_state(str(ckpt_dir), restored, all_model_checkpoint_paths=keep)
        log(f"moved the broken checkpoint(s) to {broken}; resuming from {restored}")
    return restored, skipped


class _MetricsLog:
    """metrics.csv, written a row at a time and flushed at once, so a killed run keeps every row it logged.

    Why: rows sat in Python's buffer until the next evaluation, so a kill lost them, and a kill before the first
    flush lost the header too (then `training.learning_curve` failed with `KeyError: 'step'`). On a new leg the
    file is first rewritten (atomically) with its header and the rows up to the step the run resumes from: rows
    logged after that checkpoint are about to be trained again."""

    def __init__(self, path: Path | None, start_step: int) -> None:
        self._file = None
        if path is None:  # a worker that is not the chief keeps no metrics file
            return
        keep = [r for r in metrics_rows(path) if int(r["step"]) <= start_step] if start_step > 0 else []
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(METRICS_COLUMNS)
        writer.writerows([[r.get(c, "") for c in METRICS_COLUMNS] for r in keep])
        atomic_write_text(path, buf.getvalue())
        self._file = open(path, "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)

    def row(self, values: list) -> None:
        if self._file is not None:
            self._writer.writerow(values)
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _op_error_reason(exc: BaseException) -> str:
    """The informative line of a TensorFlow error: its message minus "Graph execution error:", the node's
    definition site and the Python stack TensorFlow prints under it."""
    text = getattr(exc, "message", None) or str(exc)
    for line in text.splitlines():
        stripped = line.strip()
        if (not stripped or line[:1].isspace() or stripped.startswith(("Graph execution error", "Detected at node",
                                                                      "Additional GRPC error", "Stack trace"))):
            continue
        return f"{exc.__class__.__name__}: {stripped[:300]}"
    return exc.__class__.__name__


def _cluster_error(exc: BaseException, index: int) -> TrainingError:
    return TrainingError(f"worker {index}: the training cluster failed, stopping this worker "
                         f"({_op_error_reason(exc)}); a worker stopped or became unreachable: restart every "
                         "worker with --resume to continue from the chief's last checkpoint")


def _agree_on_start(strategy: tf.distribute.Strategy, start_step: int, index: int) -> None:
    """Check that every worker resumes from the same step (one all-reduce of the step and its square).

    Why: a worker that could not see the chief's checkpoints (no shared folder) would start at step 0 while the
    others resume, and the workers would then wait on each other's collectives for steps the others never
    run. Sum and sum of squares equal n * s and n * s^2 only if all n values are s."""
    n = strategy.num_replicas_in_sync
    value = tf.constant([float(start_step), float(start_step) ** 2], tf.float64)
    per_replica = strategy.run(lambda: tf.identity(value))
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy()
    if not (total[0] == n * start_step and total[1] == n * float(start_step) ** 2):
        raise TrainingError(f"worker {index}: the workers resume from different steps (this one from {start_step}, "
                            f"the cluster's mean is {total[0] / n:g}); every worker must read the chief's "
                            "checkpoints folder (a shared folder, or a copy of it) to resume")


def run_loop(cfg: RunConfig, spec: ModelSpec, skeleton, train_ds: tf.data.Dataset, val: Validation | None,
             events: EventWriter, stop: StopFlag, resume: bool, kind: str,
             loss_fn: Callable | None = None, extra_card: dict | None = None,
             steps_per_epoch: int = 0, num_train: int = 0,
             final_metrics: Callable[[keras.Model, ModelCard], dict] | None = None,
             strategy: tf.distribute.Strategy | None = None, data_notes: list[str] | None = None) -> Path | None:
    """Train `spec` on `train_ds` batches of (images, targets, mask). `loss_fn(model, batch, global_batch)`
    returns per-stage losses (T,); default: the port's stage L2 against the batch's targets.
    `final_metrics(exported model, its card)` may replace the card's metrics with a fuller evaluation (an
    upright model's PCK with the angle searched, not taken from the labels) before the model is saved.

    Under "multiworker" every worker runs this loop in step with the others; only the chief writes the output
    folder (checkpoints, metrics.csv, model). The other workers read the chief's checkpoints to resume, save
    their own copies to a temporary folder (TensorFlow's saving may need every worker) that is deleted again,
    and return None. `data_notes` (e.g. how many records the dataset readers dropped, and why) go into the
    `start` event."""
    out = cfg.output_dir
    ckpt_dir = out / "checkpoints"
    strategy = strategy or make_strategy(cfg.train.strategy)
    chief, worker_index, num_workers = worker_role(strategy)
    multiworker = num_workers > 1 or cfg.train.strategy == "multiworker"

    def say(message: str) -> None:
        print(f"cpm {kind}: {message}", file=sys.stderr, flush=True)

    removed_temp: list[str] = []
    if chief:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        removed_temp = clean_temp_checkpoints(ckpt_dir)
        if removed_temp:
            say(f"removed {len(removed_temp)} unfinished checkpoint save(s) of a killed run: {', '.join(removed_temp)}")
        save_dir = ckpt_dir
    else:
        save_dir = Path(tempfile.mkdtemp(prefix=f"cpm-worker{worker_index}-ckpt-"))
    precision = resolve_precision(cfg.train.precision)
    # How this model's heatmaps become joints, in the exported card and in every evaluation during training alike.
    decoding = {"method": "dark", "blur_sigma": float(cfg.train.sigma)}
    total = cfg.train.steps
    with strategy.scope():
        model = build_cpm(spec, precision)
        if cfg.model.init:
            init_model, _ = load_model(cfg.resolve(cfg.model.init), spec=spec)
            model.set_weights(init_model.get_weights())
        schedule = make_schedule(cfg, total)
        optimizer = make_optimizer(cfg, schedule)
        # Slots are made now, not lazily inside the first tf.function step, which MirroredStrategy rejects.
        optimizer.build(model.trainable_variables)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        # Training time and legs (runs) so far, saved with the checkpoint, so that a resumed run's card counts
        # every leg's time, not only the last one's (checkpoints written before these existed restore them as 0).
        wall_var = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="wall_time_s")
        legs_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="legs")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var, wall_time_s=wall_var,
                                         legs=legs_var)
    resumed_from, skipped = None, []
    if resume:
        resumed_from, skipped = restore_newest_intact(checkpoint, ckpt_dir, set_aside=chief, log=say)
    manager = tf.train.CheckpointManager(checkpoint, str(save_dir),
                                         max_to_keep=cfg.train.keep_checkpoints if chief else 1)
    global_batch = cfg.train.batch
    if multiworker:
        options = tf.data.Options()
        # The subjects are one in-memory tensor, not files: each worker takes every n-th batch element.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_ds = train_ds.with_options(options)
    dist_ds = strategy.experimental_distribute_dataset(train_ds)
    iterator = iter(dist_ds)
    loss_fn = loss_fn or (lambda m, b, gb: stage_l2(m(b[0], training=True), b[1], b[2], gb))

    def step_fn(batch):
        with tf.GradientTape() as tape:
            per_stage = loss_fn(model, batch, global_batch)
            loss = tf.reduce_sum(per_stage)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return per_stage

    @tf.function
    def train_step(it):
        per_replica = strategy.run(step_fn, args=(next(it),))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def lr_now() -> float:
        return float(schedule(optimizer.iterations)) if callable(schedule) else float(schedule)

    start_step = int(step_var.numpy())
    prior_wall = float(wall_var.numpy())
    legs_var.assign_add(1)
    if multiworker:
        try:
            _agree_on_start(strategy, start_step, worker_index)
        except tf.errors.OpError as exc:
            raise _cluster_error(exc, worker_index) from None
    events.write(StartEvent(
        kind=kind, output=str(out), steps=total, start_step=start_step, resumed_from=resumed_from,
        skipped_checkpoints=skipped, removed_temp=removed_temp, data_notes=list(data_notes or []),
        batch=global_batch, precision=precision, strategy=cfg.train.strategy,
        replicas=strategy.num_replicas_in_sync, worker=worker_index, workers=num_workers, chief=chief,
        spec=spec.to_dict(), train_subjects=num_train,
        val_subjects=0 if val is None else len(val.images), machine=machine_note()))
    metrics_log = _MetricsLog(out / "metrics.csv" if chief else None, start_step)
    wall0 = time.perf_counter()
    t_log, n_log = time.perf_counter(), 0
    last_eval: dict = {}
    step = start_step
    last_saved = start_step

    def save(reason: str) -> None:
        nonlocal last_saved
        wall_var.assign(prior_wall + time.perf_counter() - wall0)
        path = manager.save(checkpoint_number=step)
        last_saved = step
        if chief:
            events.write(CheckpointEvent(step=step, path=path, reason=reason))
        else:  # a worker's copy: TensorFlow needs every worker to save, the chief's is the one kept
            shutil.rmtree(save_dir, ignore_errors=True)
            save_dir.mkdir(parents=True, exist_ok=True)

    def run_eval() -> None:
        nonlocal last_eval
        if val is None or not len(val.images) or not chief:
            return
        swap_ema(model, optimizer)
        try:
            res = evaluate_model(model, spec, val, blur_sigma=decoding["blur_sigma"])
        finally:
            swap_ema(model, optimizer)
        last_eval = res
        metrics_log.row([step, "", "", "", f"{res['pck']:.4f}", f"{res['epe']:.3f}"])
        events.write(EvalEvent(step=step, pck=float(res["pck"]), epe=float(res["epe"]),
                               pck_per_joint=[float(v) for v in res["pck_per_joint"]], joints=list(skeleton.joints)))

    try:
        while step < total and not stop.is_set():
            if cfg.train.ema > 0:
                optimizer.ema_momentum.assign(ema_momentum(cfg.train.ema, step))
            per_stage = train_step(iterator).numpy()
            step += 1
            step_var.assign(step)
            n_log += 1
            if not np.isfinite(per_stage).all():
                raise FloatingPointError(f"loss became {per_stage.sum()} at step {step}; lower the learning rate")
            if step % cfg.train.log_every == 0 or step == total:
                now = time.perf_counter()
                ips = n_log * global_batch / max(now - t_log, 1e-9)
                loss = float(per_stage.sum())
                # The row is on disk before the event says so: a run killed after it keeps it.
                metrics_log.row([step, f"{loss:.6f}", f"{lr_now():.6g}", f"{ips:.1f}", "", ""])
                events.write(StepEvent(step=step, steps=total, loss=loss, loss_per_stage=per_stage.tolist(),
                                       lr=lr_now(), images_per_s=ips, elapsed_s=time.perf_counter() - wall0))
                t_log, n_log = now, 0
            if steps_per_epoch and step % steps_per_epoch == 0:
                events.write(EpochEvent(epoch=step // steps_per_epoch, step=step))
            if cfg.train.eval_every and step % cfg.train.eval_every == 0 and step < total:
                run_eval()
            if cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0:
                save("periodic")
        if step != last_saved or step == start_step:
            save("stop" if stop.is_set() else "final")
        run_eval()
    except tf.errors.OpError as exc:
        if multiworker:
            raise _cluster_error(exc, worker_index) from None
        raise
    finally:
        metrics_log.close()
        if not chief:
            shutil.rmtree(save_dir, ignore_errors=True)
    leg = time.perf_counter() - wall0
    wall = prior_wall + leg
    if not chief:
        events.write(DoneEvent(step=step, model=None, stopped=stop.is_set(), reason=stop.reason or "finished",
                               wall_time_s=wall, leg_wall_time_s=leg, metrics={}, worker=worker_index, chief=False))
        return None
    swap_ema(model, optimizer)  # from here on the model holds the averaged weights: they are exported
    norm = Normalisation(1 / 256, -0.5, "BGR")
    metrics = {}
    if last_eval:
        metrics = {"pck@0.2": round(last_eval["pck"], 4), "epe_crop_px": round(last_eval["epe"], 3),
                   "pck_per_joint": {j: (None if not math.isfinite(v) else round(float(v), 4))
                                     for j, v in zip(skeleton.joints, last_eval["pck_per_joint"])},
                   "val_subjects": int(len(val.images))}
    export_model, export_spec = fold_batch_norm(model, spec)
    card = ModelCard(spec=export_spec, skeleton=skeleton, normalisation=norm, name=cfg.name or out.name,
                     description=f"Trained with `cpm {kind}` on {', '.join(dataset_names(cfg.data.train))}",
                     trained=True,
                     provenance={"kind": kind, "data": dataset_names(cfg.data.train),
                                 "val": dataset_names(cfg.data.val), "steps": step,
                                 "wall_time_s": round(wall, 1), "legs": int(legs_var.numpy()),
                                 "machine": machine_note(), "precision": precision,
                                 "crop_margin": cfg.data.margin, "orientation": cfg.data.orientation,
                                 "chirality": cfg.data.chirality,
                                 "recipe": cfg.to_dict(),
                                 "date": time.strftime("%Y-%m-%d"), **(extra_card or {})},
                     metrics=metrics, decoding=decoding)
    if final_metrics is not None and metrics:
        card.metrics = {**metrics, **final_metrics(export_model, card)}
        metrics = card.metrics
    model_dir = save_model(export_model, card, out / "model")
    events.write(DoneEvent(step=step, model=str(model_dir), stopped=stop.is_set(), reason=stop.reason or "finished",
                           wall_time_s=wall, leg_wall_time_s=leg, metrics=metrics))
    return model_dir
