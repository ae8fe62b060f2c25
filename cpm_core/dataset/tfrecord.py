"""TFRecord files: our own lossless format that training streams, and the CPM port's lossy one.

Own format (`write_tfrecord` / `read_tfrecord` / `parse_example`): one `tf.train.Example` per instance (an
image without instances is one example flagged `instance/empty`), holding the image file's encoded bytes as
stored (JPEG/PNG; other encodings are re-encoded to PNG), its name, size and extras, the joints as float32
(for `tf.data`) *and* as exact float64 bytes (so a round trip is lossless), visibility, predicted flags, bbox,
instance extras, the skeleton (name and JSON) and the dataset's extras. Samples are regrouped on read by
`image/index`.

Port format (`write_port_tfrecord` / `read_port_tfrecord`): feature `image` = raw uint8 bytes of a square
crop (size x size x 3: the bbox, longer side scaled to `size`, padded with 128), `heatmaps` = float list of
(hs, hs, J + 1) Gaussian maps (sigma in cells; background last = 1 - max of the joint maps). Writing is lossy:
reading decodes positions from the heatmap peaks, in crop pixels; occluded joints come back visible; the
images become the crops (PNG in memory).

TensorFlow is imported only when these functions run, so that loading datasets never pays for it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from cpm_core.atomic_io import atomic_output, atomic_write_bytes
from cpm_core.dataset.heatmaps import decode_heatmaps, render_heatmaps
from cpm_core.dataset.imageinfo import decode_image, encode_image, image_format
from cpm_core.dataset.issues import IssueLog, fatal
from cpm_core.dataset.jsonutil import json_default
from cpm_core.dataset.model import Dataset, Instance, Sample, bbox_from_keypoints, non_finite_joints
from cpm_core.preprocess import PAD_VALUE, CropBox, CropTransform
from cpm_core.skeleton import HAND_21, Skeleton


def _tf() -> Any:
    import tensorflow as tf  # noqa: PLC0415 - heavy, and only needed for TFRecord files

    return tf


def _bytes(tf: Any, value: bytes | str) -> Any:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _floats(tf: Any, values: Any) -> Any:
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float32).reshape(-1)))


def _ints(tf: Any, values: Any) -> Any:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in np.asarray(values).reshape(-1)]))


def _records(path: Path, log: IssueLog) -> Any:
    """Serialized records of a TFRecord file; a corrupt tail is reported, not raised (unless strict)."""
    tf = _tf()
    if not path.is_file():
        raise fatal(path, "no such file")
    it = iter(tf.data.TFRecordDataset(str(path)))
    i = 0
    while True:
        try:
            raw = next(it)
        except StopIteration:
            return
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError, tf.errors.InvalidArgumentError) as exc:
            log.report(path, f"corrupt TFRecord data after {i} records: {exc.message.splitlines()[0]}",
                       record=f"record {i}")
            return
        yield i, raw.numpy()
        i += 1


def _parse(tf: Any, raw: bytes) -> dict[str, Any] | None:
    try:
        ex = tf.train.Example.FromString(raw)
    except Exception:  # noqa: BLE001 - protobuf raises its own DecodeError type
        return None
    return dict(ex.features.feature)


def peek_tfrecord_kind(path: str | os.PathLike) -> str | None:
    """'tfrecord' (ours), 'port-tfrecord', or None, from the first record's features."""
    tf = _tf()
    for _, raw in _records(Path(path), IssueLog()):
        feats = _parse(tf, raw) or {}
        if "heatmaps" in feats:
            return "port-tfrecord"
        if "image/encoded" in feats:
            return "tfrecord"
        return None
    return None


# ----------------------------------------------------------------------------------------------------- own format

def _encoded_image(ds: Dataset, sample: Sample) -> tuple[bytes, str]:
    try:
        data = ds.read_image_bytes(sample)
    except OSError as exc:
        raise OSError(f"{ds.image_path(sample)}: cannot read image: {exc.strerror or exc}") from exc
    fmt = image_format(data)
    if fmt is not None:
        return data, fmt
    img = decode_image(data)
    if img is None:
        raise ValueError(f"{ds.image_path(sample)}: not an image OpenCV can decode")
    return encode_image(img, ".png"), "png"


def write_tfrecord(dataset: Dataset, path: str | os.PathLike, keep_empty: bool = True) -> int:
    """Write our TFRecord (one example per instance), atomically; returns the number of examples.

    `keep_empty` also writes images without instances (flagged `instance/empty`, all joints absent).
    """
    problems = dataset.validate()
    if problems:
        raise ValueError(f"{path}: cannot write TFRecord: {problems[0]}")
    tf = _tf()
    skel = dataset.skeleton
    skel_json = json.dumps(skel.to_dict())
    ds_extras = json.dumps(dataset.extras, default=json_default)
    n = skel.num_joints
    count = 0
    with atomic_output(path) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
        for si, sample in enumerate(dataset.samples):
            encoded, fmt = _encoded_image(dataset, sample)
            common = {
                "image/encoded": _bytes(tf, encoded),
                "image/format": _bytes(tf, fmt),
                "image/name": _bytes(tf, sample.image),
                "image/width": _ints(tf, [sample.width]),
                "image/height": _ints(tf, [sample.height]),
                "image/index": _ints(tf, [si]),
                "image/extras": _bytes(tf, json.dumps(sample.extras, default=json_default)),
                "skeleton/name": _bytes(tf, skel.name),
                "skeleton/json": _bytes(tf, skel_json),
                "dataset/extras": _bytes(tf, ds_extras),
            }
            insts: list[Instance | None] = list(sample.instances) or ([None] if keep_empty else [])
            for k, inst in enumerate(insts):
                if inst is None:
                    inst, empty = Instance(np.zeros((n, 2)), np.zeros(n, np.int8), (0.0, 0.0, 0.0, 0.0)), 1
                else:
                    empty = 0
                feats = dict(common)
                feats.update({
                    "instance/index": _ints(tf, [k]),
                    "instance/empty": _ints(tf, [empty]),
                    "joints": _floats(tf, inst.keypoints),
                    "joints/f64": _bytes(tf, inst.keypoints.astype("<f8").tobytes()),
                    "visibility": _ints(tf, inst.visibility),
                    "predicted": _ints(tf, inst.predicted.astype(np.int64)),
                    "bbox": _floats(tf, inst.bbox),
                    "bbox/f64": _bytes(tf, np.asarray(inst.bbox, "<f8").tobytes()),
                    "instance/extras": _bytes(tf, json.dumps(inst.extras, default=json_default)),
                })
                ex = tf.train.Example(features=tf.train.Features(feature=feats))
                writer.write(ex.SerializeToString())
                count += 1
    return count


def _get_bytes(feats: dict, key: str) -> bytes | None:
    f = feats.get(key)
    if f is None or len(f.bytes_list.value) != 1:
        return None
    return f.bytes_list.value[0]


def _get_ints(feats: dict, key: str) -> list[int] | None:
    f = feats.get(key)
    return None if f is None else list(f.int64_list.value)


def _get_f64(feats: dict, key: str, count: int) -> np.ndarray | None:
    """The exact float64 copy if present and well formed, else the float32 list."""
    raw = _get_bytes(feats, f"{key}/f64")
    if raw is not None and len(raw) == 8 * count:
        return np.frombuffer(raw, "<f8").astype(np.float64)
    f = feats.get(key)
    if f is None or len(f.float_list.value) != count:
        return None
    return np.asarray(f.float_list.value, dtype=np.float64)


def _get_json(feats: dict, key: str) -> dict | None:
    raw = _get_bytes(feats, key)
    if raw is None:
        return {}
    try:
        val = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return val if isinstance(val, dict) else None


def _example_to_parts(feats: dict, skeleton: Skeleton) -> tuple[tuple, Sample, Instance | None]:
    """(grouping key, sample, instance or None when empty); ValueError describing what is malformed."""
    n = skeleton.num_joints
    encoded = _get_bytes(feats, "image/encoded")
    if encoded is None:
        raise ValueError("no image/encoded bytes")
    name = _get_bytes(feats, "image/name")
    try:
        name_s = (name or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("image/name is not UTF-8") from None
    width, height, index = (_get_ints(feats, k) or [0] for k in ("image/width", "image/height", "image/index"))
    if len(width) != 1 or len(height) != 1 or width[0] < 0 or height[0] < 0:
        raise ValueError("image/width and image/height must be one non-negative integer each")
    extras = _get_json(feats, "image/extras")
    if extras is None:
        raise ValueError("image/extras is not a JSON object")
    sample = Sample(image=name_s, width=width[0], height=height[0], extras=extras, data=encoded)
    key = (index[0] if index else None, name_s)
    empty = (_get_ints(feats, "instance/empty") or [0])[0]
    if empty:
        return key, sample, None
    joints = _get_f64(feats, "joints", 2 * n)
    if joints is None:
        raise ValueError(f"joints must hold {2 * n} values ({n} joints of skeleton {skeleton.name!r})")
    bad = non_finite_joints(joints.reshape(n, 2))
    if bad:
        raise ValueError(f"joints hold NaN or infinite values ({bad})")
    vis = _get_ints(feats, "visibility")
    if vis is None or len(vis) != n or not all(v in (0, 1, 2) for v in vis):
        raise ValueError(f"visibility must hold {n} values, each 0, 1 or 2")
    pred = _get_ints(feats, "predicted") or [0] * n
    if len(pred) != n or not all(v in (0, 1) for v in pred):
        raise ValueError(f"predicted must hold {n} flags 0/1")
    bbox = _get_f64(feats, "bbox", 4)
    if bbox is None or not np.isfinite(bbox).all():
        raise ValueError("bbox must hold 4 finite values")
    inst_extras = _get_json(feats, "instance/extras")
    if inst_extras is None:
        raise ValueError("instance/extras is not a JSON object")
    inst = Instance(keypoints=joints.reshape(n, 2), visibility=np.asarray(vis, np.int8), bbox=tuple(bbox),
                    predicted=np.asarray(pred, bool), extras=inst_extras)
    return key, sample, inst


def _skeleton_of(feats: dict) -> Skeleton | None:
    raw = _get_bytes(feats, "skeleton/json")
    if raw is None:
        return None
    try:
        return Skeleton.from_dict(json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError, TypeError, AttributeError):
        return None


def read_tfrecord(
    path: str | os.PathLike,
    strict: bool = False,
    skeleton: Skeleton | None = None,
    images_dir: str | os.PathLike | None = None,
) -> Dataset:
    """Read our TFRecord. Images stay in memory (`Sample.data`) with `root` = the file's folder, or are written
    under `images_dir` (which becomes `root`). The skeleton comes from the file (else `skeleton`, else
    HAND_21); bad examples are skipped and listed on `Dataset.issues` (record = example number)."""
    tf = _tf()
    path = Path(path)
    log = IssueLog(strict)
    skel = skeleton
    samples: list[Sample] = []
    ds_extras: dict | None = None
    last_key: tuple | None = None
    for i, raw in _records(path, log):
        feats = _parse(tf, raw)
        rec = f"example {i}"
        if feats is None:
            log.report(path, "not a tf.train.Example", record=rec)
            continue
        if "heatmaps" in feats:
            raise fatal(path, "this is a CPM-port TFRecord (image + heatmaps); read it with read_port_tfrecord")
        file_skel = _skeleton_of(feats)
        if skel is None:
            skel = file_skel or HAND_21
        elif file_skel is not None and file_skel.joints != skel.joints:
            log.report(path, f"skeleton {file_skel.name!r} differs from {skel.name!r}", record=rec)
            continue
        try:
            key, sample, inst = _example_to_parts(feats, skel)
        except ValueError as exc:
            log.report(path, str(exc), record=rec)
            continue
        if ds_extras is None:
            ds_extras = _get_json(feats, "dataset/extras")
        if key != last_key or not samples:
            samples.append(sample)
            last_key = key
        if inst is not None:
            samples[-1].instances.append(inst)
    ds = Dataset(skeleton=skel or HAND_21, samples=samples, root=path.parent, extras=ds_extras or {},
                 issues=log.issues)
    if images_dir is not None:
        out = Path(images_dir)
        for s in ds.samples:
            rel = Path(s.image)
            if rel.is_absolute() or ".." in rel.parts:
                rel = Path(rel.name)
                s.image = rel.as_posix()
            atomic_write_bytes(out / rel, s.data or b"")
            s.data = None
        ds.root = out
    return ds


def parse_example(serialized: Any) -> dict[str, Any]:
    """Parse one serialized example of our TFRecord inside `tf.data` (`dataset.map(parse_example)`).

    Returns tensors: image (H, W, 3) uint8 RGB decoded, keypoints (J, 2) float32 x/y pixels, visibility (J,)
    int32, bbox (4,) float32 x/y/w/h, predicted (J,) bool, empty () bool (an image without instances: all
    joints absent), name () string.
    """
    tf = _tf()
    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/name": tf.io.FixedLenFeature([], tf.string, default_value=""),
        "joints": tf.io.VarLenFeature(tf.float32),
        "visibility": tf.io.VarLenFeature(tf.int64),
        "predicted": tf.io.VarLenFeature(tf.int64),
        "bbox": tf.io.FixedLenFeature([4], tf.float32),
        "instance/empty": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    }
    f = tf.io.parse_single_example(serialized, spec)
    image = tf.io.decode_image(f["image/encoded"], channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    vis = tf.cast(tf.sparse.to_dense(f["visibility"]), tf.int32)
    return {
        "image": image,
        "keypoints": tf.reshape(tf.sparse.to_dense(f["joints"]), [-1, 2]),
        "visibility": vis,
        "bbox": f["bbox"],
        "predicted": tf.cast(tf.sparse.to_dense(f["predicted"]), tf.bool),
        "empty": tf.cast(f["instance/empty"], tf.bool),
        "name": f["image/name"],
    }


# ---------------------------------------------------------------------------------------------------- port format

def crop_instance(image: np.ndarray, bbox: tuple[float, float, float, float], size: int) -> tuple[np.ndarray,
                                                                                                CropTransform]:
    """The port's crop: the bbox region, its longer side scaled to `size`, centred and padded with 128.

    Returns the crop and its transform (`transform.to_input(points)` maps image points into the crop), the
    same crop geometry (`cpm_core.preprocess`) that training and inference use.
    """
    x, y, w, h = (float(v) for v in bbox)
    w, h = max(w, 1e-6), max(h, 1e-6)
    transform = CropTransform(CropBox(x + w / 2.0, y + h / 2.0, max(w, h)), size)
    crop = transform.apply(image)
    # Pad (not image context) outside the box, as the port does: keep pixels whose centre lies in the box.
    (u0, v0), (u1, v1) = transform.to_input(np.array([[x, y], [x + w, y + h]]))
    idx = np.arange(size)
    crop[:, (idx < u0 - 1e-6) | (idx > u1 + 1e-6)] = PAD_VALUE
    crop[(idx < v0 - 1e-6) | (idx > v1 + 1e-6)] = PAD_VALUE
    return crop, transform


def write_port_tfrecord(
    dataset: Dataset,
    path: str | os.PathLike,
    size: int = 64,
    heatmap_size: int | None = None,
    sigma: float = 1.0,
    channel_order: str = "bgr",
) -> int:
    """Write the CPM port's TFRecord (one example per instance with a usable box), atomically.

    `channel_order` of the raw crop bytes: "bgr" as the port's script stored `cv2.imread` output, or "rgb".
    Instances whose bbox is empty use the tight box of their joints; instances with neither are skipped.
    Returns the number of examples written.
    """
    if channel_order not in ("bgr", "rgb"):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    problems = dataset.validate()
    if problems:
        raise ValueError(f"{path}: cannot write TFRecord: {problems[0]}")
    tf = _tf()
    hs = heatmap_size or size
    count = 0
    with atomic_output(path) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
        for sample in dataset.samples:
            if not sample.instances:
                continue
            data, _ = _encoded_image(dataset, sample)
            image = decode_image(data)
            if image is None:
                raise ValueError(f"{dataset.image_path(sample)}: not an image OpenCV can decode")
            for inst in sample.instances:
                box = inst.bbox
                if box[2] <= 0 or box[3] <= 0:
                    box = bbox_from_keypoints(inst.keypoints, inst.visibility)
                    if box[2] <= 0 and box[3] <= 0:
                        continue
                crop, transform = crop_instance(image, box, size)
                if channel_order == "rgb":
                    crop = crop[:, :, ::-1]
                kp = transform.to_input(inst.keypoints)
                maps = render_heatmaps(kp, inst.visibility, size, hs, sigma)
                feats = {"image": _bytes(tf, np.ascontiguousarray(crop, np.uint8).tobytes()),
                         "heatmaps": _floats(tf, maps)}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
                count += 1
    return count


def _square_side(n: int) -> int | None:
    s = math.isqrt(n)
    return s if s > 0 and s * s == n else None


def read_port_tfrecord(
    path: str | os.PathLike,
    skeleton: Skeleton = HAND_21,
    strict: bool = False,
    channel_order: str = "bgr",
    threshold: float = 0.3,
    sigma: float = 1.0,
) -> Dataset:
    """Read the port's TFRecord: one sample per example, the crop as its image (PNG bytes in memory, named
    `<file stem>_<n>.png`), joints decoded from the heatmap peaks in crop pixels (peaks below `threshold`
    are absent; `sigma` as written, used for peaks on the crop's edge), bbox = tight box of the decoded
    joints. Heatmaps with J + 1 or J channels are accepted."""
    if channel_order not in ("bgr", "rgb"):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    tf = _tf()
    path = Path(path)
    log = IssueLog(strict)
    n = skeleton.num_joints
    samples = []
    for i, raw in _records(path, log):
        rec = f"example {i}"
        feats = _parse(tf, raw)
        if feats is None:
            log.report(path, "not a tf.train.Example", record=rec)
            continue
        img_raw = _get_bytes(feats, "image")
        size = _square_side(len(img_raw) // 3) if img_raw is not None and len(img_raw) % 3 == 0 else None
        if size is None:
            log.report(path, "image is not the raw bytes of a square size x size x 3 crop", record=rec)
            continue
        hm = feats.get("heatmaps")
        values = np.asarray(hm.float_list.value, dtype=np.float32) if hm is not None else np.zeros(0, np.float32)
        channels = next((c for c in (n + 1, n) if len(values) % c == 0 and _square_side(len(values) // c)), None)
        if channels is None:
            log.report(path, f"heatmaps ({len(values)} values) are not (hs, hs, {n + 1}) or (hs, hs, {n}) for "
                             f"skeleton {skeleton.name!r}", record=rec)
            continue
        hs = _square_side(len(values) // channels)
        maps = values.reshape(hs, hs, channels)
        kp, vis, peaks = decode_heatmaps(maps, n, size, threshold, sigma)
        crop = np.frombuffer(img_raw, np.uint8).reshape(size, size, 3)
        if channel_order == "rgb":
            crop = crop[:, :, ::-1]
        sample = Sample(image=f"{path.stem}_{i:06d}.png", width=size, height=size,
                        data=encode_image(np.ascontiguousarray(crop), ".png"))
        sample.instances.append(Instance(keypoints=kp, visibility=vis,
                                         extras={"peaks": [round(float(p), 4) for p in peaks]}))
        samples.append(sample)
    return Dataset(skeleton=skeleton, samples=samples, root=path.parent, issues=log.issues)
