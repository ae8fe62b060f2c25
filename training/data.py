"""tf.data pipelines: subjects cropped once around their boxes, then augmented and encoded in the graph.

Decoding a 960-pixel JPEG costs more than a training step of a small CPM on two cores, so every labelled
subject is cut out once (with room to rotate, zoom and shift) into an in-memory uint8 cache. Augmentation
(one projective warp for rotation, scale, shift and flip, plus colour jitter) and the Gaussian targets run
inside tf.data with parallel calls and prefetching, so the model is not kept waiting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    the crop transforms (to map predictions back to the original images) and box sizes in original pixels."""

    images: np.ndarray
    keypoints: np.ndarray
    visibility: np.ndarray
    transforms: list[CropTransform]
    box_sizes: np.ndarray
    sources: list[str]
    skeleton: Skeleton

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx: np.ndarray) -> SubjectCache:
        return SubjectCache(self.images[idx], self.keypoints[idx], self.visibility[idx],
                            [self.transforms[i] for i in idx], self.box_sizes[idx], [self.sources[i] for i in idx],
                            self.skeleton)


def load_datasets(paths: list[str]) -> Dataset:
    """Read and concatenate datasets (they must share a joint count); image paths become absolute."""
    if not paths:
        raise ValueError("no dataset given")
    merged: Dataset | None = None
    for p in paths:
        ds = read_dataset(p)
        for s in ds.samples:
            if s.data is None:
                s.image = str(ds.image_path(s).resolve())
        if merged is None:
            merged = ds
        elif ds.skeleton.num_joints != merged.skeleton.num_joints:
            raise ValueError(f"{p}: {ds.skeleton.num_joints} joints, but {paths[0]} has "
                             f"{merged.skeleton.num_joints}")
        else:
            merged.samples.extend(ds.samples)
    return merged


def _decode_sample(ds: Dataset, sample) -> np.ndarray:
    if getattr(sample, "data", None) is not None:
        import cv2

        img = cv2.imdecode(np.frombuffer(sample.data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise SourceError(f"{sample.image}: embedded image cannot be decoded")
        return img
    return read_image(ds.image_path(sample))


def iter_subjects(ds: Dataset, min_joints: int = 3, log=None):
    """(sample, decoded frame, instances with >= `min_joints` labelled joints) for every image that has any;
    unreadable images are reported through `log` and skipped, so one bad file never stops a run."""
    for sample in ds.samples:
        usable = [inst for inst in sample.instances if inst.num_labelled >= min_joints]
        if not usable:
            continue
        try:
            frame = _decode_sample(ds, sample)
        except (SourceError, OSError) as exc:
            if log:
                log(f"skipping {sample.image}: {exc}")
            continue
        yield sample, frame, usable


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
                part_crops: list | None = None) -> SubjectCache:
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
    for sample, frame, usable in iter_subjects(ds, min_joints, log):
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
        raise ValueError(f"no usable subjects (with >= {min_joints} labelled joints) in the dataset")
    return SubjectCache(np.stack(images), np.stack(kps).astype(np.float32), np.stack(vis).astype(np.int32),
                        transforms, np.asarray(sizes, np.float32), sources, ds.skeleton)


def _gaussian_targets(grid_xy: tf.Tensor, visible: tf.Tensor, size: int, sigma: float) -> tf.Tensor:
    """(J, 2) grid coordinates -> (size, size, J + 1) targets; absent joints get an all-zero map."""
    coords = tf.range(size, dtype=tf.float32)
    dx = coords[None, :] - grid_xy[:, 0:1]
    dy = coords[None, :] - grid_xy[:, 1:2]
    gx = tf.exp(-(dx * dx) / (2 * sigma * sigma))
    gy = tf.exp(-(dy * dy) / (2 * sigma * sigma))
    maps = gy[:, :, None] * gx[:, None, :] * tf.cast(visible, tf.float32)[:, None, None]
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


def make_pipeline(cache: SubjectCache, input_size: int, stride: int, batch: int, augment: AugmentConfig | None,
                  cache_scale: float, sigma: float = 1.0, shuffle: bool = True, repeat: bool = True,
                  seed: int = 0) -> tf.data.Dataset:
    """Batches of (normalised images (B, S, S, 3), targets (B, h, w, J+1), loss mask (B, J+1)).

    Images are normalised as x / 256 - 0.5 in BGR order, the port's convention our model cards record.
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

    def transform(image, kp, vis):
        if augment is not None:
            angle = tf.random.uniform([], -augment.rotation, augment.rotation) * (math.pi / 180.0)
            scale = tf.random.uniform([], augment.scale[0], augment.scale[1])
            shift = tf.random.uniform([2], -augment.translate, augment.translate) * base_side
            flip = tf.random.uniform([]) < 0.5 if can_flip else tf.constant(False)
        else:
            angle, scale, shift, flip = 0.0, 1.0, tf.zeros([2]), tf.constant(False)
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
            if augment.low_res > 0:
                f = tf.random.uniform([], augment.low_res_min, 1.0)
                small = tf.maximum(tf.cast(tf.round(f * input_size), tf.int32), 8)
                degraded = tf.image.resize(tf.image.resize(warped, [small, small], antialias=True),
                                           [input_size, input_size])
                warped = tf.cond(tf.random.uniform([]) < augment.low_res, lambda: degraded, lambda: warped)
            if augment.erase > 0:
                warped = tf.cond(tf.random.uniform([]) < augment.erase,
                                 lambda: _erase_rectangle(warped, augment.erase_size), lambda: warped)
            if augment.noise > 0:
                warped = warped + tf.random.normal(tf.shape(warped)) * tf.random.uniform([], 0, augment.noise)
            warped = tf.clip_by_value(warped, 0.0, 255.0)
        labelled = vis_out > 0
        grid_xy = (kp_out + 0.5) / stride - 0.5
        targets = _gaussian_targets(grid_xy, labelled, grid, sigma)
        mask = tf.concat([tf.cast(labelled, tf.float32), tf.ones([1])], axis=0)
        return warped / 256.0 - 0.5, targets, mask

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
