"""tf.data pipelines: subjects cropped once around their boxes, then augmented and encoded in the graph.

Decoding a 960-pixel JPEG costs more than a training step of a small CPM on two cores, so every labelled
subject is cut out once (with room to rotate, zoom and shift) into an in-memory uint8 cache. Augmentation
(one projective warp for rotation, scale, shift and flip, plus colour jitter) and the Gaussian targets run
inside tf.data with parallel calls and prefetching, so the model is not kept waiting.

A model trained on a handful of scenes learns the scenes (issue #17), so the pipeline can also cut each subject
out with a soft mask (precomputed per subject with the cache) and blend it onto other scenes (background images
loaded once, or other subjects' crops), paste other subjects' hands over it as unlabelled distractors, and add
the camera's faults the training videos lack (motion and defocus blur, JPEG artefacts, colour casts). Each is
off by default; when all are off the pipeline builds exactly the graph it always did.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from cpm_core.dataset.formats import read_dataset
from cpm_core.dataset.model import Dataset
from cpm_core.preprocess import CropBox, CropTransform
from cpm_core.skeleton import Skeleton
from cpm_core.sources import SourceError, read_image
from training.config import AugmentConfig


@dataclass
class SubjectCache:
    """Cropped subjects: images (N, R, R, 3) uint8 BGR, keypoints (N, J, 2) in cache pixels, visibility (N, J),
    the crop transforms (to map predictions back to the original images) and box sizes in original pixels.

    `masks` (N, R, R) uint8 are the subjects' soft cut-out masks for copy-paste (see `subject_masks`), made
    with `mask_params` = (shape, dilate, feather); None where a cache was made without them (the pipeline then
    builds them when it needs them)."""

    images: np.ndarray
    keypoints: np.ndarray
    visibility: np.ndarray
    transforms: list[CropTransform]
    box_sizes: np.ndarray
    sources: list[str]
    skeleton: Skeleton
    masks: np.ndarray | None = None
    mask_params: tuple | None = None

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx: np.ndarray) -> SubjectCache:
        return SubjectCache(self.images[idx], self.keypoints[idx], self.visibility[idx],
                            [self.transforms[i] for i in idx], self.box_sizes[idx], [self.sources[i] for i in idx],
                            self.skeleton, None if self.masks is None else self.masks[idx], self.mask_params)


def subject_masks(keypoints: np.ndarray, visibility: np.ndarray, res: int, shape: str = AugmentConfig.paste_mask,
                  dilate: float = AugmentConfig.mask_dilate,
                  feather: float = AugmentConfig.mask_feather) -> np.ndarray:
    """Soft masks (N, res, res) uint8 (255 = subject) around each subject's labelled joints.

    Joints are points on the skeleton's axis, so their convex hull misses the fingers' and palm's width: the hull
    (or the joints' bounding box, `shape="box"`) is grown by `dilate` x the subject's size (the longer side of
    its joints' extent) and its edge softened by a Gaussian of sigma `feather` x that size, so a pasted subject
    carries a thin rim of its own scene instead of a hard cut-out edge the net could learn to look for.
    A subject without labelled joints gets a full mask (pasting it changes nothing)."""
    import cv2

    if shape not in ("hull", "box"):
        raise ValueError(f"mask shape must be 'hull' or 'box', got {shape!r}")
    out = np.empty((len(keypoints), res, res), np.uint8)
    for n, (kp, vis) in enumerate(zip(keypoints, visibility)):
        pts = np.asarray(kp, np.float64)[np.asarray(vis) > 0]
        if len(pts) == 0:
            out[n] = 255
            continue
        size = max(float(np.ptp(pts, axis=0).max()), 0.1 * res)
        grow = dilate * size
        canvas = np.zeros((res, res), np.uint8)
        if shape == "box":
            (x0, y0), (x1, y1) = pts.min(axis=0) - grow, pts.max(axis=0) + grow
            cv2.rectangle(canvas, (round(x0), round(y0)), (round(x1), round(y1)), 255, -1)
        else:
            hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))
            cv2.fillConvexPoly(canvas, hull, 255, cv2.LINE_AA, 4)
            if grow >= 0.5:  # a thick outline with round ends = the hull grown by a disc (Minkowski sum)
                cv2.polylines(canvas, [hull], True, 255, max(1, round(2 * grow)), cv2.LINE_AA, 4)
        if feather > 0:
            canvas = cv2.GaussianBlur(canvas, (0, 0), max(feather * size, 0.5))
        out[n] = canvas
    return out


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def load_backgrounds(paths: list[str], size: int) -> np.ndarray:
    """Background images (B, size, size, 3) uint8 BGR from folders (searched recursively), files, and `.txt`
    lists of image files (one path per line, relative to the list; `#` comments): a list lets a recipe train on
    part of a folder and keep the rest held out for a benchmark (bench/presence.py).

    Each is resized (area) so its shorter side is `size` and cut to its central square, once: the pipeline
    then only takes random crops, so 400 backgrounds cost about 400 x size^2 x 3 bytes of memory and no
    decoding during training. A missing path, a folder without images, or no readable image at all is an
    error (a typo would otherwise silently train without backgrounds)."""
    import cv2

    files: list[Path] = []
    for entry in paths:
        p = Path(entry)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise ValueError(f"augment.backgrounds: {p} has no images ({', '.join(IMAGE_SUFFIXES)})")
            files.extend(found)
        elif p.is_file() and p.suffix.lower() == ".txt":
            listed = [line.split("#")[0].strip() for line in p.read_text().splitlines()]
            listed = [p.parent / name for name in listed if name]
            missing = [str(f) for f in listed if not f.is_file()]
            if missing:
                raise ValueError(f"augment.backgrounds: {p} lists {len(missing)} missing file(s), e.g. {missing[0]}")
            if not listed:
                raise ValueError(f"augment.backgrounds: {p} lists no images")
            files.extend(listed)
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"augment.backgrounds: {p} does not exist")
    if not files:
        raise ValueError("augment.backgrounds: no folders or files given")
    out = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            continue
        h, w = img.shape[:2]
        k = size / min(h, w)
        img = cv2.resize(img, (max(size, round(w * k)), max(size, round(h * k))), interpolation=cv2.INTER_AREA)
        h, w = img.shape[:2]
        y0, x0 = (h - size) // 2, (w - size) // 2
        out.append(img[y0:y0 + size, x0:x0 + size])
    if not out:
        raise ValueError(f"augment.backgrounds: none of the {len(files)} files could be read as an image")
    return np.stack(out)


class NoSubjectsError(ValueError):
    """No subject survived reading and the cache's checks; the message says which check removed them."""


def dropped_records_summary(path: str, ds: Dataset) -> str:
    """One line: how many records the reader of `path` dropped and why, grouped by reason, first record named."""
    reasons: dict[str, list] = {}
    for issue in ds.issues:
        # The reason without the record's specifics (values in parentheses), so equal reasons group together.
        key = issue.message.split(" (")[0]
        reasons.setdefault(key, []).append(issue)
    parts = [f"{len(v)} x {k} (first: {v[0]})" for k, v in sorted(reasons.items(), key=lambda kv: -len(kv[1]))]
    return f"{path}: dropped {len(ds.issues)} malformed record(s): " + "; ".join(parts)


def load_datasets(paths: list[str], log: Callable[[str], None] | None = None, fmt: str = "") -> Dataset:
    """Read and concatenate datasets (they must share a joint count); image paths become absolute.

    The records each reader refused (see `cpm_core.dataset.issues`) are kept on the result's `issues` and, with
    `log`, reported as one line per dataset: how many and why. Why: they used to vanish silently, and a run on
    a dataset whose every record was refused failed later with a message that gave no reason. `fmt` (a format
    name, `data.format`) reads every path as that format instead of telling it from the name and contents."""
    if not paths:
        raise ValueError("no dataset given")
    merged: Dataset | None = None
    for p in paths:
        ds = read_dataset(p, fmt or None)
        if ds.issues and log:
            log(dropped_records_summary(p, ds))
        for s in ds.samples:
            if s.data is None:
                s.image = str(ds.image_path(s).resolve())
        if merged is None:
            merged = ds
            merged.issues = list(ds.issues)
        elif ds.skeleton.num_joints != merged.skeleton.num_joints:
            raise ValueError(f"{p}: {ds.skeleton.num_joints} joints, but {paths[0]} has "
                             f"{merged.skeleton.num_joints}")
        else:
            merged.samples.extend(ds.samples)
            merged.issues.extend(ds.issues)
    return merged


def _decode_sample(ds: Dataset, sample) -> np.ndarray:
    if getattr(sample, "data", None) is not None:
        import cv2

        img = cv2.imdecode(np.frombuffer(sample.data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise SourceError(f"{sample.image}: embedded image cannot be decoded")
        return img
    return read_image(ds.image_path(sample))


def iter_subjects(ds: Dataset, min_joints: int = 3, log=None, counts: dict | None = None):
    """(sample, decoded frame, instances with >= `min_joints` labelled joints) for every image that has any;
    unreadable images are reported through `log` and skipped, so one bad file never stops a run. `counts`, if
    given, is filled with what each check removed (see `no_subjects_message`)."""
    c = counts if counts is not None else {}
    for key in ("images", "instances", "no_instances", "few_joints", "unreadable_images", "unreadable_instances"):
        c.setdefault(key, 0)
    for sample in ds.samples:
        c["images"] += 1
        c["instances"] += len(sample.instances)
        if not sample.instances:
            c["no_instances"] += 1
            continue
        usable = [inst for inst in sample.instances if inst.num_labelled >= min_joints]
        c["few_joints"] += len(sample.instances) - len(usable)
        if not usable:
            continue
        try:
            frame = _decode_sample(ds, sample)
        except (SourceError, OSError) as exc:
            c["unreadable_images"] += 1
            c["unreadable_instances"] += len(usable)
            c.setdefault("first_unreadable", f"{sample.image}: {exc}")
            if log:
                log(f"skipping {sample.image}: {exc}")
            continue
        yield sample, frame, usable


def no_subjects_message(ds: Dataset, min_joints: int, counts: dict) -> str:
    """Why no subject is left: what the reader dropped and what each of the cache's checks removed.

    Why: "no usable subjects" alone sent users looking for the wrong problem (a dataset whose every record the
    reader refused for NaN coordinates looks, from there, like one without labels)."""
    parts = []
    if ds.issues:
        parts.append(f"the reader dropped {len(ds.issues)} malformed record(s) (first: {ds.issues[0]})")
    parts.append(f"{counts.get('images', 0)} image(s) with {counts.get('instances', 0)} instance(s) remained")
    if counts.get("no_instances"):
        parts.append(f"{counts['no_instances']} image(s) have no instance")
    if counts.get("few_joints"):
        parts.append(f"{counts['few_joints']} instance(s) have fewer than {min_joints} labelled joints "
                     "(data.min_joints)")
    if counts.get("unreadable_images"):
        parts.append(f"{counts['unreadable_instances']} instance(s) are on {counts['unreadable_images']} image(s) "
                     f"that could not be read (first: {counts['first_unreadable']})")
    return "no usable subjects in the dataset: " + "; ".join(parts)


def part_groups(skeleton: Skeleton, groups: list) -> list[np.ndarray]:
    """`data.part_crops` as joint index arrays; names are looked up in the skeleton (ValueError if unknown)."""
    out = []
    for group in groups or []:
        idx = []
        for j in group:
            if isinstance(j, str):
                if j not in skeleton.joints:
                    raise ValueError(f"data.part_crops: no joint {j!r} in skeleton {skeleton.name!r} "
                                     f"(joints: {', '.join(skeleton.joints)})")
                idx.append(skeleton.joints.index(j))
            elif isinstance(j, int) and 0 <= j < skeleton.num_joints:
                idx.append(j)
            else:
                raise ValueError(f"data.part_crops: {j!r} is neither a joint name nor an index below "
                                 f"{skeleton.num_joints}")
        if len(idx) < 2:
            raise ValueError(f"data.part_crops: a group needs at least 2 joints, got {group!r}")
        out.append(np.asarray(sorted(set(idx))))
    return out


def build_cache(ds: Dataset, input_size: int, margin: float, cache_scale: float, min_joints: int = 3,
                log=None, orientation: str = "any", chirality: str = "any",
                part_crops: list | None = None, mask: str = AugmentConfig.paste_mask,
                mask_dilate: float = AugmentConfig.mask_dilate,
                mask_feather: float = AugmentConfig.mask_feather) -> SubjectCache:
    """Cut every subject with at least `min_joints` labelled joints out of its image.

    The cache crop has side margin * cache_scale * box side, at input_size * cache_scale pixels, so a training
    crop of margin * box side at input_size pixels can be rotated and zoomed out inside it.
    `orientation="upright"` rotates each crop so the subject's labelled axis (wrist -> middle-finger base for
    hands) points up; the augmentation's rotation then jitters around upright (subjects without the axis
    joints keep their image orientation). `chirality="canonical"` (upright crops only) also mirrors every
    hand whose thumb side would be on the right, so the model only ever sees one chirality.

    `part_crops` (groups of joints, see `part_groups`): every subject also gets a second entry cropped around
    one group's labelled joints (group k for the k-th subject, cyclically; skipped where fewer than
    `min_joints` of the group are labelled or the part's box is the whole box). Why: a top-down crop is made
    around what is labelled, and a person seen from the chest up has a box around head and shoulders, a close
    view a full-body training set never shows (HRNet's half-body augmentation). Joints outside such a crop
    keep their labels: their maps are all background, which teaches "not in view" rather than a guess.

    Every entry also gets its soft copy-paste mask (`subject_masks` with `mask`, `mask_dilate`,
    `mask_feather`), made here once rather than per training crop.
    """
    if orientation not in ("any", "upright"):
        raise ValueError(f"data.orientation must be 'any' or 'upright', got {orientation!r}")
    if chirality not in ("any", "canonical"):
        raise ValueError(f"data.chirality must be 'any' or 'canonical', got {chirality!r}")
    if chirality == "canonical" and orientation != "upright":
        raise ValueError("data.chirality = 'canonical' needs data.orientation = 'upright'")
    if orientation == "upright":
        from cpm_core.orientation import label_angle, label_mirror, orientation_axis

        orientation_axis(ds.skeleton)  # fail before decoding anything
    groups = part_groups(ds.skeleton, part_crops)
    res = int(round(input_size * cache_scale))
    images, kps, vis, transforms, sizes, sources = [], [], [], [], [], []
    subject = 0
    counts: dict = {}
    for sample, frame, usable in iter_subjects(ds, min_joints, log, counts):
        for inst in usable:
            x, y, w, h = inst.bbox
            boxes = [(x, y, w, h)]
            if groups:
                group = groups[subject % len(groups)]
                labelled = group[inst.visibility[group] > 0]
                if len(labelled) >= min_joints:
                    (x0, y0), (x1, y1) = inst.keypoints[labelled].min(axis=0), inst.keypoints[labelled].max(axis=0)
                    if max(x1 - x0, y1 - y0) < 0.9 * max(w, h):
                        boxes.append((x0, y0, x1 - x0, y1 - y0))
            subject += 1
            angle, mirror = 0.0, False
            if orientation == "upright":
                angle = label_angle(inst.keypoints, inst.visibility > 0, ds.skeleton) or 0.0
                mirror = chirality == "canonical" and bool(
                    label_mirror(inst.keypoints, inst.visibility > 0, ds.skeleton, angle))
            for bx, by, bw, bh in boxes:
                box = CropBox.around(bx, by, bx + bw, by + bh, margin * cache_scale)
                box = CropBox(box.cx, box.cy, box.side, angle, mirror)
                tr = CropTransform(box, res)
                images.append(tr.apply(frame))
                kps.append(tr.to_input(inst.keypoints))
                vis.append(inst.visibility.copy())
                transforms.append(tr)
                sizes.append(max(bw, bh, 1.0))
                sources.append(str(sample.image))
    if not images:
        raise NoSubjectsError(no_subjects_message(ds, min_joints, counts))
    kps_arr, vis_arr = np.stack(kps).astype(np.float32), np.stack(vis).astype(np.int32)
    masks = subject_masks(kps_arr, vis_arr, res, mask, mask_dilate, mask_feather)
    return SubjectCache(np.stack(images), kps_arr, vis_arr, transforms, np.asarray(sizes, np.float32), sources,
                        ds.skeleton, masks, (mask, mask_dilate, mask_feather))


def _gaussian_targets(grid_xy: tf.Tensor, visible: tf.Tensor, size: int, sigma: float,
                      peak: float | tf.Tensor = 1.0) -> tf.Tensor:
    """(J, 2) grid coordinates -> (size, size, J + 1) targets of height `peak`; absent joints get an all-zero map;
    the background map is one minus the joints' maximum."""
    coords = tf.range(size, dtype=tf.float32)
    dx = coords[None, :] - grid_xy[:, 0:1]
    dy = coords[None, :] - grid_xy[:, 1:2]
    gx = tf.exp(-(dx * dx) / (2 * sigma * sigma))
    gy = tf.exp(-(dy * dy) / (2 * sigma * sigma))
    maps = gy[:, :, None] * gx[:, None, :] * (tf.cast(visible, tf.float32) * peak)[:, None, None]
    maps = tf.transpose(maps, [1, 2, 0])
    bg = 1.0 - tf.reduce_max(maps, axis=-1, keepdims=True)
    return tf.concat([maps, bg], axis=-1)


def _erase_rectangle(image: tf.Tensor, max_fraction: float) -> tf.Tensor:
    """Paint a random rectangle (sides a tenth to `max_fraction` of the image's, anywhere) in one random colour.

    Random erasing: hands hide their own fingers (a tucked thumb, a fist) and objects hide hands; the labels
    under the rectangle stay, so the net learns to place a hidden joint from the rest of the hand instead of
    taking the nearest visible finger for it (the default hand model's main failure on its unseen scene)."""
    size = tf.shape(image)[0]
    fsize = tf.cast(size, tf.float32)
    lo = 0.1 * fsize
    hi = tf.maximum(lo + 1.0, max_fraction * fsize)
    h = tf.cast(tf.random.uniform([], lo, hi), tf.int32)
    w = tf.cast(tf.random.uniform([], lo, hi), tf.int32)
    y0 = tf.random.uniform([], 0, tf.maximum(size - h, 1), tf.int32)
    x0 = tf.random.uniform([], 0, tf.maximum(size - w, 1), tf.int32)
    rows = tf.range(size)
    inside = (((rows >= y0) & (rows < y0 + h))[:, None] & ((rows >= x0) & (rows < x0 + w))[None, :])
    colour = tf.random.uniform([1, 1, 3], 0.0, 255.0)
    return tf.where(inside[..., None], colour, image)


def blur_kernels(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pre-built blur kernels, all (size, size) float32 summing to 1: motion lines (lengths 3 to `size`, 8
    directions) and defocus discs (diameters 3 to `size`). The pipeline picks one by index and runs one depthwise
    convolution, far cheaper than drawing a kernel per crop."""
    import cv2

    c = (size - 1) / 2.0
    motion = []
    for length in range(3, size + 1, 2):
        for k in range(8):
            a = math.pi * k / 8
            dx, dy = (length - 1) / 2 * math.cos(a), (length - 1) / 2 * math.sin(a)
            ker = np.zeros((size * 8, size * 8), np.float32)  # drawn at 8x (sub-pixel shift 3) and averaged down
            p0 = (round((c - dx + 0.5) * 64) - 32, round((c - dy + 0.5) * 64) - 32)
            p1 = (round((c + dx + 0.5) * 64) - 32, round((c + dy + 0.5) * 64) - 32)
            cv2.line(ker, p0, p1, 1.0, 8, cv2.LINE_AA, 3)
            ker = cv2.resize(ker, (size, size), interpolation=cv2.INTER_AREA)
            motion.append(ker / ker.sum())
    defocus = []
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - c
    for diameter in range(3, size + 1, 2):
        r = diameter / 2.0
        ker = np.clip(r + 0.5 - np.hypot(xx, yy), 0.0, 1.0)  # anti-aliased disc
        defocus.append(ker / ker.sum())
    return np.stack(motion).astype(np.float32), np.stack(defocus).astype(np.float32)


def _blur(image: tf.Tensor, kernels: tf.Tensor) -> tf.Tensor:
    """Convolve an (S, S, 3) float image with one of `kernels` (K, k, k), edges reflected (no dark rim)."""
    k = kernels.shape[1]
    ker = tf.gather(kernels, tf.random.uniform([], 0, kernels.shape[0], tf.int32))
    ker = tf.tile(ker[:, :, None, None], [1, 1, 3, 1])
    padded = tf.pad(image[None], [[0, 0], [k // 2, k // 2], [k // 2, k // 2], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, ker, [1, 1, 1, 1], "VALID")[0]


def _colour_cast(image: tf.Tensor, max_hue_deg: float, max_gain: float) -> tf.Tensor:
    """A small hue rotation about the grey axis (the luminance-preserving matrix of CSS's hue-rotate) times a
    per-channel gain: other skin tones and lighting colours for one 3x3 matrix product per pixel."""
    h = tf.random.uniform([], -max_hue_deg, max_hue_deg) * (math.pi / 180.0)
    c, s = tf.cos(h), tf.sin(h)
    lr, lg, lb = 0.213, 0.715, 0.072
    rgb = tf.reshape(tf.stack([
        lr + c * (1 - lr) - s * lr, lg - c * lg - s * lg, lb - c * lb + s * (1 - lb),
        lr - c * lr + s * 0.143, lg + c * (1 - lg) + s * 0.140, lb - c * lb - s * 0.283,
        lr - c * lr - s * (1 - lr), lg - c * lg + s * lg, lb + c * (1 - lb) + s * lb]), [3, 3])
    bgr = tf.reverse(tf.reverse(rgb, [0]), [1])  # the same matrix for B, G, R channel order
    gain = tf.random.uniform([3], 1.0 - max_gain, 1.0 + max_gain)
    m = gain[:, None] * bgr
    return tf.tensordot(image, tf.transpose(m), axes=1)


def _jpeg(image: tf.Tensor, quality: tuple[float, float]) -> tf.Tensor:
    """Re-encode the (S, S, 3) float BGR image as a JPEG of random quality: blocking, ringing and chroma loss
    as webcams and phone videos have them (encoded in RGB order, as a real camera would)."""
    q = tf.random.uniform([], int(quality[0]), int(quality[1]) + 1, tf.int32)
    rgb = tf.cast(tf.round(tf.reverse(tf.clip_by_value(image, 0.0, 255.0), [-1])), tf.uint8)
    out = tf.image.adjust_jpeg_quality(rgb, q)
    return tf.reverse(tf.cast(out, tf.float32), [-1])


def _warp(image: tf.Tensor, matrix: tf.Tensor, size: int) -> tf.Tensor:
    """One bilinear projective warp of an (H, W, C) image to (size, size, C) float32: output (u, v) -> input
    (matrix . (u, v, 1)); outside the input reads 128 (grey, as the plain pipeline fills)."""
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(image, tf.float32)[None], transforms=matrix[None], output_shape=[size, size],
        fill_value=128.0, interpolation="BILINEAR", fill_mode="CONSTANT")[0]


def mask_codes(masks: np.ndarray) -> np.ndarray:
    """Masks (N, R, R) uint8 (255 = subject) as (N, R, R, 1) uint8 codes 128 * (1 - m): the warp's fill value
    (128) then reads as mask 0 outside the cache crop, and as the warp is linear, `1 - code / 128` after it is
    the warped mask (to 1/128)."""
    return np.round(128.0 * (1.0 - masks.astype(np.float32) / 255.0)).astype(np.uint8)[..., None]


def _warp_mask(code: tf.Tensor, matrix: tf.Tensor, size: int, step: int) -> tf.Tensor:
    """The soft mask (from `mask_codes`) under the image's warp `matrix`, as (size, size, 1) float in [0, 1].

    The mask is smooth (feathered), so it is warped at 1/`step` of the resolution and resized up: the warp op
    costs about as much per channel as per pixel, and a full-size 4th channel would add 40% to the main warp.
    Small-output pixel i is big-output pixel step * i + (step - 1) / 2, the centre convention of the resize."""
    k, c = float(step), (step - 1) / 2.0
    m00, m01, tx, m10, m11, ty = (matrix[i] for i in range(6))
    small = tf.stack([m00 * k, m01 * k, tx + (m00 + m01) * c, m10 * k, m11 * k, ty + (m10 + m11) * c, 0.0, 0.0])
    m = tf.clip_by_value(1.0 - _warp(code, small, size // step) / 128.0, 0.0, 1.0)
    return tf.image.resize(m, [size, size]) if step > 1 else m


def _random_crops(images: tf.Tensor, index: tf.Tensor, size: int, min_fraction: float = 0.35) -> tf.Tensor:
    """A random square crop (side `min_fraction` to all of the image, anywhere in it, mirrored half the time)
    of images[index], resized to (size, size, 3) float: a different view of the scene every time.
    crop_and_resize reads the batch in place and costs half a projective warp."""
    frac = tf.random.uniform([], min_fraction, 1.0)
    y0 = tf.random.uniform([], 0.0, 1.0) * (1.0 - frac)
    x0 = tf.random.uniform([], 0.0, 1.0) * (1.0 - frac)
    mirror = tf.random.uniform([]) < 0.5  # x1 > x2 samples the crop mirrored
    box = tf.where(mirror, tf.stack([y0, x0 + frac, y0 + frac, x0]), tf.stack([y0, x0, y0 + frac, x0 + frac]))
    return tf.image.crop_and_resize(images, box[None], index[None], [size, size])[0]


def make_pipeline(cache: SubjectCache, input_size: int, stride: int, batch: int, augment: AugmentConfig | None,
                  cache_scale: float, sigma: float = 1.0, shuffle: bool = True, repeat: bool = True,
                  seed: int = 0) -> tf.data.Dataset:
    """Batches of (normalised images (B, S, S, 3), targets (B, h, w, J+1), loss mask (B, J+1)).

    Images are normalised as x / 256 - 0.5 in BGR order, the port's convention our model cards record.
    With copy-paste or occluders on, the subjects are held once as tensors and picked by index (the main one
    from a shuffled index stream, the pasted ones at random), so no second copy of the cache sits in a shuffle
    buffer; with them off the pipeline is the plain one (slices of the cache, shuffled).
    """
    res = cache.images.shape[1]
    grid = input_size // stride
    flip_perm = tf.constant(cache.skeleton.flip_permutation(), tf.int32)
    # Flipping a hand turns a left hand into a right one with the same joint order (no pairs to swap); a body
    # skeleton's left/right pairs are swapped through the flip permutation.
    can_flip = bool(augment and augment.flip)
    base_side = res / cache_scale  # training crop side, in cache pixels, at scale 1
    centre_c = (res - 1) / 2.0
    centre_o = (input_size - 1) / 2.0
    a_cfg = augment if augment is not None else AugmentConfig()
    paste_bg = augment is not None and a_cfg.paste_background > 0
    negatives = augment is not None and a_cfg.negative > 0
    paste_subject = augment is not None and a_cfg.paste_subject > 0
    occlude = augment is not None and a_cfg.occluder > 0
    use_pool = paste_bg or paste_subject or occlude
    motion_k = defocus_k = None
    if augment is not None and (a_cfg.motion_blur > 0 or a_cfg.defocus_blur > 0):
        motion_np, defocus_np = blur_kernels(int(a_cfg.blur_size))
        motion_k, defocus_k = tf.constant(motion_np), tf.constant(defocus_np)
    if use_pool:
        params = (a_cfg.paste_mask, a_cfg.mask_dilate, a_cfg.mask_feather)
        masks = cache.masks
        if masks is None or cache.mask_params != params:
            masks = subject_masks(cache.keypoints, cache.visibility, res, *params)
        pool_images = tf.constant(cache.images)
        pool_codes = tf.constant(mask_codes(masks))
        pool_kp = tf.constant(cache.keypoints)
        pool_vis = tf.constant(cache.visibility)
        n_pool = len(cache)
    mask_step = 2 if input_size % 2 == 0 else 1
    if paste_bg or negatives:
        backgrounds = tf.constant(load_backgrounds(list(a_cfg.backgrounds), max(int(round(1.5 * input_size)), 32)))
        n_bg = int(backgrounds.shape[0])

    def composite(warped, m):
        """Blend the warped subject (mask m) onto a random scene: a background image's crop or another
        subject's crop, with the configured probabilities (else unchanged; the grey fill stays)."""
        u = tf.random.uniform([])

        def onto_background():
            return _random_crops(backgrounds, tf.random.uniform([], 0, n_bg, tf.int32), input_size)

        def onto_subject():
            return _random_crops(pool_images, tf.random.uniform([], 0, n_pool, tf.int32), input_size)

        p_bg = a_cfg.paste_background if paste_bg else 0.0
        p_sub = a_cfg.paste_subject if paste_subject else 0.0
        branches = [lambda: warped]
        if paste_bg:
            branches.append(lambda: m * warped + (1.0 - m) * onto_background())
        if paste_subject:
            branches.append(lambda: m * warped + (1.0 - m) * onto_subject())
        # u below p_bg: a background; then, below p_bg + p_sub: another subject's crop; else neither.
        if paste_bg and paste_subject:
            index = tf.where(u < p_bg, 1, tf.where(u < p_bg + p_sub, 2, 0))
        else:
            index = tf.where(u < p_bg + p_sub, 1, 0)
        return tf.switch_case(index, branches)

    def add_occluder(warped):
        """Another subject's masked hand over the crop, rotated anywhere, scaled and shifted off-centre."""
        j = tf.random.uniform([], 0, n_pool, tf.int32)
        # Centre the other subject's joints (its crop is centred on its box, but be exact where labelled).
        vis_o = tf.cast(tf.gather(pool_vis, j) > 0, tf.float32)[:, None]
        centre = tf.reduce_sum(tf.gather(pool_kp, j) * vis_o, 0) / tf.maximum(tf.reduce_sum(vis_o), 1.0)
        ang = tf.random.uniform([], -math.pi, math.pi)
        scl = tf.random.uniform([], a_cfg.occluder_scale[0], a_cfg.occluder_scale[1])
        direction = tf.random.uniform([], -math.pi, math.pi)
        dist = tf.random.uniform([], a_cfg.occluder_shift[0], a_cfg.occluder_shift[1]) * input_size
        pu, pv = centre_o + dist * tf.cos(direction), centre_o + dist * tf.sin(direction)
        a = base_side / input_size / scl
        c, s = tf.cos(ang), tf.sin(ang)
        m00, m01, m10, m11 = a * c, -a * s, a * s, a * c
        tx = centre[0] - m00 * pu - m01 * pv
        ty = centre[1] - m10 * pu - m11 * pv
        matrix = tf.stack([m00, m01, tx, m10, m11, ty, 0.0, 0.0])
        img_o = _warp(tf.gather(pool_images, j), matrix, input_size)
        m_o = _warp_mask(tf.gather(pool_codes, j), matrix, input_size, mask_step)
        return m_o * img_o + (1.0 - m_o) * warped

    def transform(image, kp, vis, code=None):
        if augment is not None:
            angle = tf.random.uniform([], -augment.rotation, augment.rotation) * (math.pi / 180.0)
            scale = tf.random.uniform([], augment.scale[0], augment.scale[1])
            shift = tf.random.uniform([2], -augment.translate, augment.translate) * base_side
            flip = tf.random.uniform([]) < 0.5 if can_flip else tf.constant(False)
            # A wrong-side crop is a mirrored one (a hand's joints need no permutation) with lower target peaks.
            wrong = tf.random.uniform([]) < a_cfg.wrong_side if a_cfg.wrong_side > 0 else tf.constant(False)
            flip = tf.logical_or(flip, wrong)
        else:
            angle, scale, shift, flip, wrong = 0.0, 1.0, tf.zeros([2]), tf.constant(False), tf.constant(False)
        angle = tf.cast(angle, tf.float32)
        a = base_side * tf.cast(scale, tf.float32) / input_size  # cache pixels per output pixel
        c, s = tf.cos(angle), tf.sin(angle)
        fx = tf.where(flip, -1.0, 1.0)
        # output (u, v) -> cache (x, y): centre + a * R(angle) * F * ((u, v) - centre_o)
        m00, m01 = a * c * fx, -a * s
        m10, m11 = a * s * fx, a * c
        cx, cy = centre_c + shift[0], centre_c + shift[1]
        tx = cx - m00 * centre_o - m01 * centre_o
        ty = cy - m10 * centre_o - m11 * centre_o
        matrix = tf.stack([m00, m01, tx, m10, m11, ty, 0.0, 0.0])[None]
        warped = tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.cast(image, tf.float32)[None], transforms=matrix, output_shape=[input_size, input_size],
            fill_value=128.0, interpolation="BILINEAR", fill_mode="CONSTANT")[0]
        if code is not None and (paste_bg or paste_subject):
            warped = composite(warped, _warp_mask(code, matrix[0], input_size, mask_step))
        negative = tf.constant(False)
        if negatives:
            # A subject-free crop in place of the subject, degraded like every other crop below, so "no paste
            # edge" or "no blur" cannot tell a negative apart.
            negative = tf.random.uniform([]) < a_cfg.negative
            warped = tf.cond(negative, lambda: _random_crops(backgrounds, tf.random.uniform([], 0, n_bg, tf.int32),
                                                             input_size), lambda: warped)
        if occlude:  # no other hand is pasted onto a negative: it must stay subject-free
            warped = tf.cond(tf.logical_and(tf.random.uniform([]) < a_cfg.occluder, tf.logical_not(negative)),
                             lambda: add_occluder(warped), lambda: warped)
        # Keypoints: invert the 2x2 part.
        det = m00 * m11 - m01 * m10
        dxk, dyk = kp[:, 0] - tx, kp[:, 1] - ty
        u = (m11 * dxk - m01 * dyk) / det
        v = (-m10 * dxk + m00 * dyk) / det
        kp_out = tf.stack([u, v], axis=-1)
        kp_out = tf.cond(flip, lambda: tf.gather(kp_out, flip_perm), lambda: kp_out)
        vis_out = tf.cond(flip, lambda: tf.gather(vis, flip_perm), lambda: vis)
        if augment is not None:
            warped = warped + tf.random.uniform([], -augment.brightness, augment.brightness) * 255.0
            mean = tf.reduce_mean(warped)
            warped = (warped - mean) * tf.random.uniform([], 1 - augment.contrast, 1 + augment.contrast) + mean
            grey = tf.reduce_mean(warped, axis=-1, keepdims=True)
            warped = (warped - grey) * tf.random.uniform([], 1 - augment.saturation, 1 + augment.saturation) + grey
            if augment.hue > 0 or augment.channel_gain > 0:
                warped = _colour_cast(warped, augment.hue, augment.channel_gain)
            if augment.low_res > 0:
                f = tf.random.uniform([], augment.low_res_min, 1.0)
                small = tf.maximum(tf.cast(tf.round(f * input_size), tf.int32), 8)
                degraded = tf.image.resize(tf.image.resize(warped, [small, small], antialias=True),
                                           [input_size, input_size])
                warped = tf.cond(tf.random.uniform([]) < augment.low_res, lambda: degraded, lambda: warped)
            if motion_k is not None and augment.motion_blur > 0:
                warped = tf.cond(tf.random.uniform([]) < augment.motion_blur,
                                 lambda: _blur(warped, motion_k), lambda: warped)
            if defocus_k is not None and augment.defocus_blur > 0:
                warped = tf.cond(tf.random.uniform([]) < augment.defocus_blur,
                                 lambda: _blur(warped, defocus_k), lambda: warped)
            if augment.erase > 0:
                warped = tf.cond(tf.random.uniform([]) < augment.erase,
                                 lambda: _erase_rectangle(warped, augment.erase_size), lambda: warped)
            if augment.noise > 0:
                warped = warped + tf.random.normal(tf.shape(warped)) * tf.random.uniform([], 0, augment.noise)
            warped = tf.clip_by_value(warped, 0.0, 255.0)
            if augment.jpeg > 0:
                warped = tf.cond(tf.random.uniform([]) < augment.jpeg,
                                 lambda: _jpeg(warped, augment.jpeg_quality), lambda: warped)
                warped = tf.ensure_shape(warped, [input_size, input_size, 3])
        labelled = vis_out > 0
        grid_xy = (kp_out + 0.5) / stride - 0.5
        # A negative: no joint anywhere (all maps zero, background one), and every channel counts in the loss.
        peak = tf.where(wrong, a_cfg.wrong_side_peak, 1.0)
        targets = _gaussian_targets(grid_xy, tf.logical_and(labelled, tf.logical_not(negative)), grid, sigma, peak)
        mask_out = tf.concat([tf.cast(tf.logical_or(labelled, negative), tf.float32), tf.ones([1])], axis=0)
        return warped / 256.0 - 0.5, targets, mask_out

    if use_pool:
        ds = tf.data.Dataset.range(len(cache))
        if shuffle:
            ds = ds.shuffle(len(cache), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        ds = ds.map(lambda i: transform(tf.gather(pool_images, i), tf.gather(pool_kp, i), tf.gather(pool_vis, i),
                                        tf.gather(pool_codes, i)),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    else:
        ds = tf.data.Dataset.from_tensor_slices((cache.images, cache.keypoints, cache.visibility))
        if shuffle:
            ds = ds.shuffle(len(cache), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        ds = ds.map(transform, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ds = ds.batch(batch, drop_remainder=repeat)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_arrays(cache: SubjectCache, input_size: int, cache_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Validation crops without augmentation: images (N, S, S, 3) uint8 BGR and keypoints (N, J, 2) in crop
    pixels. The crop is the cache's central 1 / cache_scale, i.e. margin x the box, as in training at scale 1."""
    res = cache.images.shape[1]
    centre = (res - 1) / 2.0
    tr = CropTransform(CropBox(centre, centre, res / cache_scale), input_size)
    images = np.stack([tr.apply(im) for im in cache.images])
    return images, tr.to_input(cache.keypoints.reshape(-1, 2)).reshape(cache.keypoints.shape).astype(np.float32)
