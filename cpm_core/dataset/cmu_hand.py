"""CMU Panoptic hand labels: one JSON per image, beside it with the same stem (`x.json` + `x.jpg`/`x.png`).

Each JSON holds `hand_pts` (or `hand_pts_crop`): 21 `[x, y, v]` in OpenPose hand order (our HAND_21),
v = 1 labelled (visible, 2 here) or 0 (absent), plus fields such as `is_left` and `head_size`, kept in the
instance's extras. One hand per file. Writing (for tests and exports) loses occluded vs visible, predicted
flags and per-image extras; an image with several hands is written once per hand (`<stem>_<k>`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from cpm_core.atomic_io import atomic_write_bytes, atomic_write_text
from cpm_core.dataset.image_copy import copy_image_file
from cpm_core.dataset.imageinfo import image_size
from cpm_core.dataset.issues import IssueLog, fatal
from cpm_core.dataset.jsonutil import json_default
from cpm_core.dataset.model import Dataset, Instance, Sample
from cpm_core.skeleton import HAND_21

POINT_KEYS = ("hand_pts", "hand_pts_crop")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def _image_for(json_path: Path) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        p = json_path.with_suffix(suffix)
        if p.is_file():
            return p
    return None


def _parse_points(doc: object) -> tuple[np.ndarray, np.ndarray, str, dict]:
    """(keypoints, visibility, key used, extras); ValueError describing what is malformed."""
    if not isinstance(doc, dict):
        raise ValueError("top level is not a JSON object")
    key = next((k for k in POINT_KEYS if k in doc), None)
    if key is None:
        raise ValueError("no 'hand_pts' (or 'hand_pts_crop') list")
    pts = doc[key]
    n = HAND_21.num_joints
    if not isinstance(pts, list) or len(pts) != n:
        raise ValueError(f"{key} must hold {n} points, got {len(pts) if isinstance(pts, list) else type(pts).__name__}")
    rows = []
    for i, p in enumerate(pts):
        ok = (isinstance(p, list) and len(p) == 3
              and all(isinstance(v, int | float) and not isinstance(v, bool) for v in p))
        if not ok:
            raise ValueError(f"{key}[{i}] is not [x, y, v] numbers: {p!r}")
        if p[2] not in (0, 1):
            raise ValueError(f"{key}[{i}] visibility must be 0 or 1, got {p[2]!r}")
        rows.append(p)
    arr = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{key} holds an infinite or NaN value")
    vis = np.where(arr[:, 2] > 0, 2, 0).astype(np.int8)
    extras = {k: v for k, v in doc.items() if k not in POINT_KEYS}
    if key != "hand_pts":
        extras["cmu_points_key"] = key
    return arr[:, :2], vis, key, extras


def read_cmu_hand(path: str | os.PathLike, strict: bool = False, read_sizes: bool = True) -> Dataset:
    """Read a folder of CMU hand JSONs (searched recursively, sorted) or one such JSON.

    Files that are not valid JSON, hold the wrong number of points or have no image beside them are skipped
    and listed on `Dataset.issues` (or raise `DatasetFormatError` when `strict`).
    """
    path = Path(path)
    if path.is_file():
        root, files = path.parent, [path]
    elif path.is_dir():
        root, files = path, sorted(path.rglob("*.json"))
    else:
        raise fatal(path, "no such file or folder")
    log = IssueLog(strict)
    samples = []
    for f in files:
        try:
            doc = json.loads(f.read_bytes().decode("utf-8-sig"))
        except OSError as exc:
            log.report(f, f"cannot read file: {exc.strerror or exc}")
            continue
        except UnicodeDecodeError:
            log.report(f, "not UTF-8 text")
            continue
        except json.JSONDecodeError as exc:
            log.report(f, f"not valid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno)
            continue
        except RecursionError:
            log.report(f, "JSON nested too deeply")
            continue
        try:
            kp, vis, _key, extras = _parse_points(doc)
        except ValueError as exc:
            log.report(f, str(exc))
            continue
        image = _image_for(f)
        if image is None:
            log.report(f, "no image with the same name (.jpg or .png) beside it")
            continue
        sample = Sample(image=image.relative_to(root).as_posix())
        sample.instances.append(Instance(keypoints=kp, visibility=vis, extras=extras))
        if read_sizes:
            size = image_size(image)
            if size is not None:
                sample.width, sample.height = size
        samples.append(sample)
    return Dataset(skeleton=HAND_21, samples=samples, root=root, issues=log.issues)


def write_cmu_hand(dataset: Dataset, path: str | os.PathLike) -> None:
    """Write one JSON per hand into folder `path`, with a copy of its image beside it (same stem)."""
    if dataset.skeleton.joints != HAND_21.joints:
        raise ValueError(f"{path}: CMU hand files hold the 21-joint hand; this dataset is "
                         f"{dataset.skeleton.name!r}")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for sample in dataset.samples:
        base = re.sub(r"[^\w.-]+", "_", Path(sample.image).stem) or "image"
        suffix = Path(sample.image).suffix.lower() or ".jpg"
        if suffix not in (".jpg", ".jpeg", ".png"):
            suffix = ".png" if (sample.data or b"")[:4] == b"\x89PNG" else ".jpg"
        for k, inst in enumerate(sample.instances):
            stem = base if len(sample.instances) == 1 else f"{base}_{k}"
            candidate, i = stem, 1
            while candidate in used:
                candidate, i = f"{stem}_{i}", i + 1
            used.add(candidate)
            target = out / f"{candidate}{suffix}"
            if sample.data is not None:
                atomic_write_bytes(target, sample.data)
            else:
                src = dataset.source_image_path(sample)
                if not (target.exists() and os.path.samefile(src, target)):
                    copy_image_file(src, target)
            pts = [[float(x), float(y), 1 if v > 0 else 0]
                   for (x, y), v in zip(inst.keypoints, inst.visibility, strict=True)]
            extras = dict(inst.extras)
            key = extras.pop("cmu_points_key", "hand_pts")
            doc = {key if key in POINT_KEYS else "hand_pts": pts, **extras}
            atomic_write_text(out / f"{candidate}.json", json.dumps(doc, default=json_default) + "\n")
