"""`cpm distill CONFIG`: train a small CPM (the student) from a bigger teacher, as a process that speaks the
JSON-lines protocol (docs/protocol.md); same flags as `cpm train`. The teacher is `distill.teacher`:

- a CPM (any weights `load_model` reads, or a model folder): online distillation. Every augmented training
  crop also goes through the teacher (resized to its input size, normalised as its card says) inside the
  training step; student stage s learns the teacher's stage `distill.stage_map[s]` (1-based; default evenly
  spaced ending at the teacher's last stage, the port's 1/2/3 -> 2/4/6), resized bilinearly to the student's
  grid, plus `distill.alpha` x the ground-truth loss where labels exist.
- a TFLite keypoint model (e.g. MediaPipe's hand_landmark_*.tflite): offline distillation. The teacher runs
  once per cached subject crop when the cache is built (central margin x box crop at the teacher's input
  size, RGB [0, 1]); its joints replace the labels (visibility 2) and subjects whose presence score is below
  `distill.confidence` are skipped; then training runs as `cpm train` does. Offline because the TFLite
  interpreter runs one frame per call outside the graph: on 2 cores, calling it per augmented crop would cost
  more than the student's training step, while labelling the cache once costs ~2-4 ms per subject. Augmented
  crops get their targets by warping the teacher's joints with the crop, exactly as labels are warped.
  `distill.alpha` does not apply to keypoint teachers (the labels are replaced).

Both report the teacher's and the student's PCK@0.2 on the validation split (the teacher sees the same crop
geometry at its own input size) and both models' frames/s (batch 1), in every `eval` event and in the final
model card's metrics.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import traceback
from pathlib import Path

import numpy as np

from training.config import RunConfig
from training.events import DoneEvent, ErrorEvent, EvalEvent, Event, EventWriter
from training.train import LeaveAfterLastEvent, add_common, prepare_config


def register(subparsers) -> None:
    p = subparsers.add_parser("distill", help="distil a teacher (CPM or .tflite keypoint model) into a student CPM",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p)
    p.set_defaults(func=run)


class DistillEvents(EventWriter):
    """The loop's event writer, plus the teacher comparison: `eval` events carry student_pck, teacher_pck and
    both frames/s; on `done` the exported card's metrics get the same numbers before the event goes out."""

    def __init__(self, summary: dict, stream=None):
        super().__init__(stream)
        self.summary = summary  # EvalEvent's teacher fields: teacher_kind, teacher_pck, ..., student_fps

    def write(self, event: Event) -> Event:
        if isinstance(event, EvalEvent):
            event = dataclasses.replace(event, student_pck=event.pck, **self.summary)
        elif isinstance(event, DoneEvent) and event.model:
            event = dataclasses.replace(event, metrics=self._update_card(Path(event.model), event.metrics or {}))
        return super().write(event)

    def _update_card(self, model_dir: Path, metrics: dict) -> dict:
        from cpm_core.atomic_io import atomic_write_text
        from cpm_core.model_card import ModelCard

        card_path = model_dir / "card.json"
        card = ModelCard.read(card_path)
        metrics = {**metrics, "student_pck@0.2": metrics.get("pck@0.2"),
                   **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.summary.items()}}
        card.metrics = {**card.metrics, **metrics}
        atomic_write_text(card_path, card.to_json())
        return metrics


def _split(cache, cfg: RunConfig):
    """The val_split hold-out, drawn as `cpm train` draws it."""
    rng = np.random.default_rng(cfg.train.seed)
    idx = rng.permutation(len(cache))
    n_val = max(1, int(round(len(cache) * cfg.data.val_split)))
    return cache.subset(idx[n_val:]), cache.subset(idx[:n_val])


def _rescale_cache(cache, res: int):
    """The same subjects at `res` pixels (area resize; keypoints with the pixel-centre convention)."""
    import cv2

    from cpm_core.preprocess import CropTransform
    from training.data import SubjectCache

    f = res / cache.images.shape[1]
    images = np.stack([cv2.resize(im, (res, res), interpolation=cv2.INTER_AREA) for im in cache.images])
    return SubjectCache(images, ((cache.keypoints + 0.5) * f - 0.5).astype(np.float32), cache.visibility,
                        [None if t is None else CropTransform(t.box, res) for t in cache.transforms],
                        cache.box_sizes, cache.sources, cache.skeleton)


def label_with_teacher(cache, teacher, cache_scale: float, confidence: float, log=None):
    """Offline distillation: replace the cache's keypoints by the teacher's on the central (training) crop of
    each subject; drop subjects whose presence is below `confidence`. Returns (cache, stats)."""
    from cpm_core.preprocess import CropBox, CropTransform
    from training.data import eval_arrays

    crops, _ = eval_arrays(cache, teacher.input_size, cache_scale)
    kps, presence = teacher.keypoints(crops)
    res = cache.images.shape[1]
    centre = (res - 1) / 2.0
    tr = CropTransform(CropBox(centre, centre, res / cache_scale), teacher.input_size)
    keep = np.flatnonzero(presence >= confidence)
    if not len(keep):
        raise ValueError(f"the teacher's presence score is below distill.confidence={confidence} on every one "
                         f"of {len(cache)} subjects (max {presence.max():.3f}); lower it or check the teacher")
    labelled = cache.subset(keep)
    labelled.keypoints = tr.to_frame(kps[keep].reshape(-1, 2)).reshape(len(keep), -1, 2).astype(np.float32)
    labelled.visibility = np.full(labelled.keypoints.shape[:2], 2, np.int32)
    if log:
        log(f"teacher labelled {len(keep)} of {len(cache)} subjects (presence >= {confidence})")
    return labelled, {"teacher_labelled": int(len(keep)), "teacher_skipped": int(len(cache) - len(keep)),
                      "teacher_presence_mean": float(presence.mean())}


def build_distill_data(cfg: RunConfig, teacher, log=None):
    """(spec, skeleton, train cache, student validation, teacher validation, stats).

    Validation crops are cut at the larger of the two input sizes and resized to each, so student and teacher
    are scored on the same crop geometry (margin x box) and the same labels."""
    from training.data import build_cache, eval_arrays, load_datasets
    from training.loop import Validation

    d = cfg.data
    train_ds = load_datasets([cfg.resolve(p) for p in d.train], log, d.format)
    spec = cfg.model_spec(train_ds.skeleton.num_joints)
    joints = train_ds.skeleton.num_joints
    teacher_joints = teacher.spec.num_joints if teacher.kind == "cpm" else teacher.num_joints
    if spec.num_joints != joints or teacher_joints != joints:
        raise ValueError(f"joint counts differ: dataset {joints}, student {spec.num_joints}, teacher {teacher_joints}")
    offline = teacher.kind == "keypoints"
    hi = max(spec.input_size, teacher.input_size)
    cache = build_cache(train_ds, teacher.input_size if offline else spec.input_size, d.margin, d.cache_scale,
                        d.min_joints, log, d.orientation, d.chirality, d.part_crops)
    val_cache = None
    if d.val:
        val_cache = build_cache(load_datasets([cfg.resolve(p) for p in d.val]), hi, d.margin, d.cache_scale,
                                d.min_joints, log, d.orientation, d.chirality)
    elif d.val_split > 0:
        cache, val_cache = _split(cache, cfg)
    stats: dict = {}
    if offline:
        cache, stats = label_with_teacher(cache, teacher, d.cache_scale, cfg.distill.confidence, log)
        cache = _rescale_cache(cache, int(round(spec.input_size * d.cache_scale)))
    val = teacher_val = None
    if val_cache is not None:
        parts = []
        for size in (spec.input_size, teacher.input_size):
            images, kps = eval_arrays(val_cache, size, d.cache_scale)
            parts.append(Validation(images, kps, val_cache.visibility > 0, np.full(len(images), size / d.margin,
                                                                                    np.float32)))
        val, teacher_val = parts
    return spec, train_ds.skeleton, cache, val, teacher_val, stats


def teacher_pck(teacher, val) -> dict:
    from cpm_core.metrics import end_point_error, pck

    pred, _ = teacher.keypoints(val.images)
    per_joint, mean = pck(pred, val.keypoints, val.labelled, val.norm, 0.2)
    _, epe = end_point_error(pred, val.keypoints, val.labelled)
    return {"pck": mean, "pck_per_joint": per_joint, "epe": epe}


def student_fps(spec) -> float:
    import tensorflow as tf

    from cpm_core.network import build_cpm
    from training.teachers import frames_per_second

    model = build_cpm(spec, "float32")
    fn = tf.function(lambda x: model(x, training=False))
    x = tf.zeros((1, spec.input_size, spec.input_size, 3))
    return frames_per_second(lambda: fn(x).numpy())


def make_cpm_loss(teacher, stage_map: list[int], grid: int, alpha: float):
    """Online distillation loss: per student stage, the port's L2 against the mapped teacher stage's heatmaps
    (every channel counts: the teacher has an opinion everywhere), plus alpha x the masked ground-truth L2."""
    import tensorflow as tf

    from training.loop import stage_l2

    def loss_fn(model, batch, global_batch):
        images, targets, mask = batch
        soft = teacher.stage_heatmaps(images, stage_map, grid)
        pred = model(images, training=True)
        loss = stage_l2(pred, soft, tf.ones_like(mask), global_batch)
        if alpha:
            loss = loss + alpha * stage_l2(pred, targets, mask, global_batch)
        return loss

    return loss_fn


def run(args: argparse.Namespace) -> int:
    leave = getattr(args, "leave", None)  # the `cpm` process ends right after its last event (training.cli)
    events: EventWriter = LeaveAfterLastEvent(EventWriter(), leave)
    try:
        cfg = prepare_config(args)
        if not cfg.distill.teacher:
            raise ValueError("no teacher: set distill.teacher (a CPM model or a .tflite keypoint model)")
        from training.data import make_pipeline
        from training.loop import StopFlag, make_strategy, run_loop
        from training.teachers import check_stage_map, load_teacher

        # Before any tensor exists (the teacher's model included): MultiWorkerMirroredStrategy configures the
        # collective ops at start-up, as in `cpm train`.
        strategy = make_strategy(cfg.train.strategy)

        def log(m: str) -> None:
            print(m, file=sys.stderr)

        teacher = load_teacher(cfg.resolve(cfg.distill.teacher))
        stop = StopFlag()
        stop.install()
        spec, skeleton, cache, val, teacher_val, stats = build_distill_data(cfg, teacher, log)
        summary: dict = {"teacher_kind": teacher.kind}
        if teacher_val is not None:
            t = teacher_pck(teacher, teacher_val)
            summary.update({"teacher_pck": t["pck"], "teacher_epe_crop_px": t["epe"] * spec.input_size
                            / teacher.input_size})
        summary.update({"teacher_fps": teacher.fps(), "student_fps": student_fps(spec)})
        extra = {"teacher": cfg.resolve(cfg.distill.teacher), "teacher_kind": teacher.kind, **stats}
        loss_fn = None
        if teacher.kind == "cpm":
            stage_map = check_stage_map(cfg.distill.stage_map, spec.stages, teacher.spec.stages)
            extra.update({"stage_map": stage_map, "alpha": cfg.distill.alpha})
            loss_fn = make_cpm_loss(teacher, stage_map, spec.heatmap_size, cfg.distill.alpha)
        else:
            extra["confidence"] = cfg.distill.confidence
        log(f"teacher {teacher.kind}: {summary}")
        events = LeaveAfterLastEvent(DistillEvents(summary), leave)
        pipeline = make_pipeline(cache, spec.input_size, spec.stride, cfg.train.batch, cfg.augment,
                                 cfg.data.cache_scale, cfg.train.sigma, seed=cfg.train.seed)
        run_loop(cfg, spec, skeleton, pipeline, val, events, stop, args.resume, "distill", loss_fn=loss_fn,
                 extra_card=extra, steps_per_epoch=max(1, len(cache) // cfg.train.batch), num_train=len(cache),
                 strategy=strategy)
        return 0
    except Exception as exc:  # the protocol promises an `error` event, whatever went wrong
        traceback.print_exc(file=sys.stderr)
        events.write(ErrorEvent(message=f"{exc.__class__.__name__}: {exc}"))
        return 1
