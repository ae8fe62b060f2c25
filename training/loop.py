"""The training loop shared by `cpm train` and `cpm distill`: strategy, optimiser, checkpoints, validation,
events and a clean stop.

A run owns one output folder: `checkpoints/` (tf.train.CheckpointManager: the `checkpoint` index is replaced
atomically after the files it names are complete, so a killed run resumes from the last finished one),
`config.toml` of what ran, `model/` (the exported model folder with its card) and `metrics.csv`.
"""

from __future__ import annotations

import csv
import math
import os
import platform
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cpm_core.heatmaps import decode_heatmaps, grid_to_input
from cpm_core.metrics import end_point_error, pck
from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm, cpu_has_fast_bfloat16, fold_batch_norm
from cpm_core.preprocess import Normalisation
from cpm_core.spec import ModelSpec
from cpm_core.weights import load_model, save_model
from training.config import RunConfig
from training.events import EventWriter


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


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # All local GPUs; without GPUs, every logical CPU device (MirroredStrategy alone would take only one).
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r} (default, mirrored, multiworker)")


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
        grid = decode_heatmaps(hm, spec.num_joints, blur_sigma)
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


def run_loop(cfg: RunConfig, spec: ModelSpec, skeleton, train_ds: tf.data.Dataset, val: Validation | None,
             events: EventWriter, stop: StopFlag, resume: bool, kind: str,
             loss_fn: Callable | None = None, extra_card: dict | None = None,
             steps_per_epoch: int = 0, num_train: int = 0,
             final_metrics: Callable[[keras.Model, ModelCard], dict] | None = None) -> Path:
    """Train `spec` on `train_ds` batches of (images, targets, mask). `loss_fn(model, batch, global_batch)`
    returns per-stage losses (T,); default: the port's stage L2 against the batch's targets.
    `final_metrics(exported model, its card)` may replace the card's metrics with a fuller evaluation (an
    upright model's PCK with the angle searched, not taken from the labels) before the model is saved."""
    out = cfg.output_dir
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    precision = resolve_precision(cfg.train.precision)
    # How this model's heatmaps become joints, in the exported card and in every evaluation during training alike.
    decoding = {"method": "dark", "blur_sigma": float(cfg.train.sigma)}
    strategy = make_strategy(cfg.train.strategy)
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
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var)
    manager = tf.train.CheckpointManager(checkpoint, str(ckpt_dir), max_to_keep=cfg.train.keep_checkpoints)
    resumed_from = None
    if resume and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).expect_partial()
        resumed_from = manager.latest_checkpoint
    global_batch = cfg.train.batch
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
    events.emit("start", kind=kind, output=str(out), steps=total, start_step=start_step, resumed_from=resumed_from,
                batch=global_batch, precision=precision, strategy=cfg.train.strategy,
                replicas=strategy.num_replicas_in_sync, spec=spec.to_dict(), train_subjects=num_train,
                val_subjects=0 if val is None else len(val.images), machine=machine_note())
    metrics_path = out / "metrics.csv"
    new_csv = not metrics_path.exists() or start_step == 0
    csv_file = open(metrics_path, "w" if new_csv else "a", newline="")
    writer = csv.writer(csv_file)
    if new_csv:
        writer.writerow(["step", "loss", "lr", "images_per_s", "val_pck", "val_epe"])
    wall0 = time.perf_counter()
    t_log, n_log = time.perf_counter(), 0
    last_eval: dict = {}
    step = start_step
    last_saved = start_step

    def save(reason: str) -> None:
        nonlocal last_saved
        path = manager.save(checkpoint_number=step)
        last_saved = step
        events.emit("checkpoint", step=step, path=path, reason=reason)

    def run_eval() -> None:
        nonlocal last_eval
        if val is None or not len(val.images):
            return
        swap_ema(model, optimizer)
        try:
            res = evaluate_model(model, spec, val, blur_sigma=decoding["blur_sigma"])
        finally:
            swap_ema(model, optimizer)
        last_eval = res
        events.emit("eval", step=step, pck=res["pck"], epe=res["epe"], pck_per_joint=res["pck_per_joint"],
                    joints=list(skeleton.joints))
        writer.writerow([step, "", "", "", f"{res['pck']:.4f}", f"{res['epe']:.3f}"])
        csv_file.flush()

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
                events.emit("step", step=step, steps=total, loss=loss, loss_per_stage=per_stage, lr=lr_now(),
                            images_per_s=ips, elapsed_s=time.perf_counter() - wall0)
                writer.writerow([step, f"{loss:.6f}", f"{lr_now():.6g}", f"{ips:.1f}", "", ""])
                t_log, n_log = now, 0
            if steps_per_epoch and step % steps_per_epoch == 0:
                events.emit("epoch", epoch=step // steps_per_epoch, step=step)
            if cfg.train.eval_every and step % cfg.train.eval_every == 0 and step < total:
                run_eval()
            if cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0:
                save("periodic")
        if step != last_saved or step == start_step:
            save("stop" if stop.is_set() else "final")
        run_eval()
    finally:
        csv_file.close()
    swap_ema(model, optimizer)  # from here on the model holds the averaged weights: they are exported
    wall = time.perf_counter() - wall0
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
                                 "wall_time_s": round(wall, 1), "machine": machine_note(), "precision": precision,
                                 "crop_margin": cfg.data.margin, "orientation": cfg.data.orientation,
                                 "chirality": cfg.data.chirality,
                                 "recipe": cfg.to_dict(),
                                 "date": time.strftime("%Y-%m-%d"), **(extra_card or {})},
                     metrics=metrics, decoding=decoding)
    if final_metrics is not None and metrics:
        card.metrics = {**metrics, **final_metrics(export_model, card)}
        metrics = card.metrics
    model_dir = save_model(export_model, card, out / "model")
    events.emit("done", step=step, model=str(model_dir), stopped=stop.is_set(), reason=stop.reason or "finished",
                wall_time_s=wall, metrics=metrics)
    return model_dir
