"""COCO keypoints JSON: the interchange format of the shared data and of most labelling tools.

Keeps: positions, visibility (0/1/2), bbox, image size, every extra image/annotation field (score,
handedness, area, iscrowd, source, frame ...) in `extras`, the file's info/licenses/category in
`Dataset.extras["coco"]`, `predicted` flags (as the extra annotation field `cpm_predicted`) and a custom
skeleton's flip pairs and colours (as the category field `cpm_skeleton`). Image and annotation ids are kept (in
extras, as "id") where they are not simply 1, 2, ... Loses: annotations of other categories than the one
read.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from cpm_core.atomic_io import atomic_write_bytes, atomic_write_text
from cpm_core.dataset.issues import FormatIssue, IssueLog, fatal
from cpm_core.dataset.jsonutil import json_default
from cpm_core.dataset.model import Dataset, Instance, Sample, non_finite_joints
from cpm_core.skeleton import BODY_14, COCO_17, HAND_21, Skeleton

_BUILTIN_BY_JOINTS = {s.joints: s for s in (HAND_21, COCO_17, BODY_14)}
_CATEGORY_NAMES = {HAND_21.name: "hand", COCO_17.name: "person", BODY_14.name: "person"}
_ANN_KEYS = {"id", "image_id", "category_id", "keypoints", "num_keypoints", "bbox", "cpm_predicted"}
_IMG_KEYS = {"id", "file_name", "width", "height"}


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _num(v: float) -> int | float:
    """Integral coordinates are written as ints (like COCO's own files); others as the shortest exact float."""
    f = float(v)
    if math.isfinite(f) and f.is_integer() and abs(f) < 2**53:
        return int(f)
    return f


def skeleton_from_category(category: dict, log: IssueLog | None = None, file: object = "") -> Skeleton:
    """The skeleton a COCO category describes: a built-in one when the joint names match, else a custom one.

    The category's 1-based `skeleton` pairs become 0-based limbs; pairs out of range are dropped (reported
    to `log`). A `cpm_skeleton` field written by `write_coco` restores flip pairs and colours.
    """
    names = tuple(str(n) for n in category.get("keypoints") or ())
    if names in _BUILTIN_BY_JOINTS:
        return _BUILTIN_BY_JOINTS[names]
    stored = category.get("cpm_skeleton")
    if isinstance(stored, dict):
        try:
            skel = Skeleton.from_dict(stored)
            if skel.joints == names:
                return skel
        except ValueError:
            pass
    if len(set(names)) != len(names):
        if log is not None:
            log.report(file, "category has duplicate keypoint names; numbered them", record="categories")
        names = tuple(f"{n}_{i}" for i, n in enumerate(names))
    limbs = []
    for pair in category.get("skeleton") or []:
        ok = (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(v, int) for v in pair)
              and all(1 <= v <= len(names) for v in pair))
        if ok:
            limbs.append((pair[0] - 1, pair[1] - 1))
        elif log is not None:
            log.report(file, f"category skeleton pair {pair!r} is not two 1-based joint numbers; dropped",
                       record="categories")
    return Skeleton(name=str(category.get("name") or f"joints{len(names)}"), joints=names, limbs=tuple(limbs))


def category_from_skeleton(skeleton: Skeleton, base: dict | None = None) -> dict:
    """A COCO category for `skeleton`, keeping id/name/supercategory and other fields from `base`."""
    cat = {"id": 1, "name": _CATEGORY_NAMES.get(skeleton.name, skeleton.name), "supercategory": "person"}
    cat.update(base or {})
    cat["keypoints"] = list(skeleton.joints)
    cat["skeleton"] = [[a + 1, b + 1] for a, b in skeleton.limbs]
    if skeleton.joints in _BUILTIN_BY_JOINTS:
        cat.pop("cpm_skeleton", None)
    else:
        cat["cpm_skeleton"] = skeleton.to_dict()
    return cat


def _choose_category(doc: dict, path: Path, category: int | str | None) -> dict:
    cats = doc.get("categories")
    if not isinstance(cats, list):
        raise fatal(path, "no 'categories' list")
    with_kp = [c for c in cats if isinstance(c, dict) and isinstance(c.get("keypoints"), list) and c["keypoints"]]
    if not with_kp:
        raise fatal(path, "no category with keypoint names")
    if category is None:
        return with_kp[0]
    for c in with_kp:
        if (isinstance(category, int) and c.get("id") == category) or c.get("name") == category:
            return c
    raise fatal(path, f"no keypoint category {category!r}")


def _read_image(img: object, idx: int, path: Path, log: IssueLog) -> tuple[object, Sample] | None:
    rec = f"images[{idx}]"
    if not isinstance(img, dict):
        log.report(path, "image entry is not an object", record=rec)
        return None
    rec = f"image id {img.get('id')!r}"
    if "id" not in img or not isinstance(img.get("id"), int | str) or isinstance(img.get("id"), bool):
        log.report(path, "image has no valid id", record=rec)
        return None
    name = img.get("file_name")
    if not isinstance(name, str) or not name:
        log.report(path, "image has no file_name", record=rec)
        return None
    size = []
    for key in ("width", "height"):
        v = img.get(key, 0)
        if v is None:
            v = 0
        if not _is_number(v) or v < 0 or not float(v).is_integer():
            log.report(path, f"image {key} {v!r} is not a non-negative integer", record=rec)
            return None
        size.append(int(v))
    extras = {k: v for k, v in img.items() if k not in _IMG_KEYS}
    return img["id"], Sample(image=name, width=size[0], height=size[1], extras=extras)


def _read_annotation(ann: dict, rec: str, num_joints: int, path: Path, log: IssueLog) -> Instance | None:
    kp = ann.get("keypoints")
    if not isinstance(kp, list) or len(kp) != 3 * num_joints:
        n = len(kp) if isinstance(kp, list) else type(kp).__name__
        log.report(path, f"keypoints must be a list of {3 * num_joints} numbers ({num_joints} x, y, v), got {n}",
                   record=rec)
        return None
    if not all(_is_number(v) for v in kp):
        log.report(path, "keypoints contain a value that is not a number", record=rec)
        return None
    arr = np.asarray(kp, dtype=np.float64).reshape(num_joints, 3)
    # Python's json reads NaN and Infinity; kept, they were written back as `nan inf` that no reader accepts, and
    # training failed much later ("loss became nan"): the record is refused here, where its file and id are known.
    bad = non_finite_joints(arr)
    if bad:
        log.report(path, f"keypoints hold NaN or infinite values ({bad})", record=rec)
        return None
    vis = arr[:, 2]
    if not np.isin(vis, (0, 1, 2)).all():
        log.report(path, f"visibility values must be 0, 1 or 2, got {sorted(set(vis.tolist()))}", record=rec)
        return None
    bbox = ann.get("bbox")
    if bbox is not None and not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)
                                 and all(math.isfinite(v) for v in bbox)):
        log.report(path, f"bbox must be 4 finite numbers [x, y, w, h], got {bbox!r:.120}", record=rec)
        return None
    predicted = ann.get("cpm_predicted")
    if predicted is not None and not (isinstance(predicted, list) and len(predicted) == num_joints
                                      and all(v in (0, 1) for v in predicted)):
        log.report(path, f"cpm_predicted must be {num_joints} flags 0/1", record=rec)
        return None
    extras = {k: v for k, v in ann.items() if k not in _ANN_KEYS}
    # area and iscrowd are kept only where they say more than the writer's defaults (w * h, 0), so that a
    # dataset written and read back has the extras it started with.
    if extras.get("iscrowd") == 0:
        del extras["iscrowd"]
    if bbox is not None and _is_number(extras.get("area")) and extras["area"] == _num(bbox[2] * bbox[3]):
        del extras["area"]
    return Instance(keypoints=arr[:, :2], visibility=vis.astype(np.int8), bbox=bbox, predicted=predicted,
                    extras=extras)


def _drop_default_ids(samples: list[Sample]) -> None:
    """Keep an image's or annotation's id in its extras only where it is not the number `write_coco` would
    give it (1, 2, ... in order): files with other ids (gaps, COCO's own) keep them, so results files that
    refer to them still match, while a dataset written and read back gets no extras it did not have."""
    k = 0
    for i, s in enumerate(samples, start=1):
        if s.extras.get("id") == i and not isinstance(s.extras.get("id"), bool):
            del s.extras["id"]
        for inst in s.instances:
            k += 1
            if inst.extras.get("id") == k and not isinstance(inst.extras.get("id"), bool):
                del inst.extras["id"]


def _assign_ids(wanted: list[object]) -> list[int | str]:
    """Ids for a written list: the wanted (kept) id where it is a usable, unused int or string, else the
    position (1-based) when free, else the next free number."""
    usable = [w if isinstance(w, int | str) and not isinstance(w, bool) else None for w in wanted]
    counts: dict[object, int] = {}
    for w in usable:
        if w is not None:
            counts[w] = counts.get(w, 0) + 1
    used: set[object] = {w for w, c in counts.items() if c == 1}
    out: list[int | str] = []
    next_free = 1
    for pos, w in enumerate(usable, start=1):
        if w is not None and counts[w] == 1:
            out.append(w)
            continue
        candidate = pos
        if candidate in used:
            while next_free in used:
                next_free += 1
            candidate = next_free
        used.add(candidate)
        out.append(candidate)
    return out


def read_coco(path: str | os.PathLike, strict: bool = False, category: int | str | None = None) -> Dataset:
    """Read a COCO keypoints JSON file; image paths stay relative to the file's folder (`Dataset.root`).

    Reads the annotations of one keypoint category (`category`: id or name; default the first with keypoint
    names). Bad images/annotations are skipped and listed on `Dataset.issues` (record = annotation id), or
    raise `DatasetFormatError` when `strict`; a file that is not a COCO JSON object always raises it.
    """
    path = Path(path)
    log = IssueLog(strict)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise fatal(path, f"cannot read file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise fatal(path, "not UTF-8 text") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fatal(path, f"not valid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from exc
    except RecursionError as exc:
        raise fatal(path, "JSON nested too deeply") from exc
    if not isinstance(doc, dict):
        raise fatal(path, "top level is not a JSON object")
    cat = _choose_category(doc, path, category)
    skeleton = skeleton_from_category(cat, log, path)
    images, anns = doc.get("images", []), doc.get("annotations", [])
    if not isinstance(images, list) or not isinstance(anns, list):
        raise fatal(path, "'images' and 'annotations' must be lists")

    samples: list[Sample] = []
    by_id: dict[object, Sample] = {}
    for idx, img in enumerate(images):
        got = _read_image(img, idx, path, log)
        if got is None:
            continue
        image_id, sample = got
        if image_id in by_id:
            log.report(path, "duplicate image id", record=f"image id {image_id!r}")
            continue
        by_id[image_id] = sample
        sample.extras["id"] = image_id
        samples.append(sample)

    other = 0
    for idx, ann in enumerate(anns):
        if not isinstance(ann, dict):
            log.report(path, "annotation is not an object", record=f"annotations[{idx}]")
            continue
        rec = f"annotation id {ann['id']!r}" if "id" in ann else f"annotations[{idx}]"
        if "category_id" in ann and ann["category_id"] != cat.get("id"):
            other += 1
            continue
        image_id = ann.get("image_id")
        if not isinstance(image_id, int | str) or image_id not in by_id:
            log.report(path, f"image_id {image_id!r} names no image", record=rec)
            continue
        inst = _read_annotation(ann, rec, skeleton.num_joints, path, log)
        if inst is not None:
            if "id" in ann:
                inst.extras["id"] = ann["id"]
            by_id[image_id].instances.append(inst)
    if other:
        log.issues.append(_other_category_note(path, other, cat))

    _drop_default_ids(samples)
    coco_extras = {k: v for k, v in doc.items() if k not in ("images", "annotations", "categories")}
    coco_extras["category"] = {k: v for k, v in cat.items() if k not in ("keypoints", "skeleton", "cpm_skeleton")}
    return Dataset(skeleton=skeleton, samples=samples, root=path.parent, extras={"coco": coco_extras},
                   issues=log.issues)


def _other_category_note(path: Path, count: int, cat: dict) -> FormatIssue:
    return FormatIssue(file=str(path), message=f"skipped {count} annotation(s) of other categories than "
                                               f"{cat.get('name')!r} (id {cat.get('id')!r})")


def _file_name(ds: Dataset, sample: Sample, out_dir: Path) -> tuple[str, bool]:
    """The image's path relative to the JSON's folder, and whether its in-memory bytes must be written there."""
    src = ds.image_path(sample)
    if sample.data is not None and not src.exists():
        rel = Path(sample.image)
        if rel.is_absolute() or ".." in rel.parts:
            rel = Path(rel.name)
        return rel.as_posix(), True
    try:
        rel_name = os.path.relpath(os.path.abspath(src), os.path.abspath(out_dir))
    except ValueError:  # another drive (Windows)
        return Path(os.path.abspath(src)).as_posix(), False
    return Path(rel_name).as_posix(), False


def write_coco(dataset: Dataset, path: str | os.PathLike, write_missing_images: bool = True,
               indent: int | None = None) -> None:
    """Write `dataset` as a COCO keypoints JSON file, atomically.

    `file_name`s are relative to the JSON's folder. Images that exist only in memory (`Sample.data`, e.g.
    from a TFRecord) are written beside it when `write_missing_images`.
    """
    problems = dataset.validate()
    if problems:
        raise ValueError(f"{path}: cannot write COCO: {problems[0]}")
    path = Path(path)
    out_dir = path.parent
    coco_extras = dict(dataset.extras.get("coco") or {})
    cat = category_from_skeleton(dataset.skeleton, coco_extras.pop("category", None))
    images, annotations = [], []
    image_ids = _assign_ids([s.extras.get("id") for s in dataset.samples])
    ann_ids = iter(_assign_ids([inst.extras.get("id") for _, inst in dataset.instances()]))
    for image_id, sample in zip(image_ids, dataset.samples, strict=True):
        file_name, write_bytes = _file_name(dataset, sample, out_dir)
        if write_bytes and write_missing_images and not (out_dir / file_name).exists():
            atomic_write_bytes(out_dir / file_name, sample.data or b"")
        img = {"id": image_id, "file_name": file_name, "width": sample.width, "height": sample.height}
        img.update({k: v for k, v in sample.extras.items() if k not in img})
        images.append(img)
        for inst in sample.instances:
            kp = np.concatenate([inst.keypoints, inst.visibility[:, None].astype(np.float64)], axis=1)
            x, y, w, h = inst.bbox
            ann = {
                "id": next(ann_ids),
                "image_id": image_id,
                "category_id": cat["id"],
                "keypoints": [_num(v) if i % 3 != 2 else int(v) for i, v in enumerate(kp.reshape(-1))],
                "num_keypoints": inst.num_labelled,
                "bbox": [_num(x), _num(y), _num(w), _num(h)],
                "area": _num(w * h),
                "iscrowd": 0,
            }
            if inst.predicted.any():
                ann["cpm_predicted"] = inst.predicted.astype(int).tolist()
            ann.update({k: v for k, v in inst.extras.items() if k not in _ANN_KEYS})
            annotations.append(ann)
    doc = dict(coco_extras)
    doc.update({"images": images, "annotations": annotations, "categories": [cat]})
    atomic_write_text(path, json.dumps(doc, indent=indent, default=json_default, ensure_ascii=False) + "\n")
