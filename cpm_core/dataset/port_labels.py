"""The CPM port's dataset layout: `<dataset>/<person>/imgs/*.jpg` and `<dataset>/<person>/labels.txt`.

One line per instance: `name y1 x1 y2 x2 j0_y j0_x j1_y j1_x ...` (bbox corners, then joints), y first as the
port's README says; `order="xy"` reads and writes x first, as the port's own script did. Several lines with
the same name are several instances of one image.

Keeps: positions and bbox to the printed precision (`precision` decimals; the reader rounds box sizes to the
decimals it was given, so values with at most that many decimals come back exactly), which joints are
labelled. Loses: occluded vs visible (labelled joints read back as visible, 2), predicted flags, extras,
image sizes (read back from the image headers), images without instances, and any labelled joint at (0, 0)
or at a negative coordinate, which the format uses to mean "absent" (absent joints are written as `0 0`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cpm_core.atomic_io import atomic_write_bytes, atomic_write_text
from cpm_core.dataset.image_copy import copy_image_file
from cpm_core.dataset.imageinfo import image_size
from cpm_core.dataset.issues import IssueLog, fatal
from cpm_core.dataset.model import Dataset, Instance, Sample
from cpm_core.skeleton import HAND_21, Skeleton

LABELS_NAME = "labels.txt"
IMAGES_DIR = "imgs"


def _check_order(order: str) -> None:
    if order not in ("yx", "xy"):
        raise ValueError(f"order must be 'yx' or 'xy', got {order!r}")


def _decimals(token: str) -> int | None:
    """Decimals written in a number token (None for exponent notation, where rounding would be a guess)."""
    if "e" in token.lower():
        return None
    return len(token.split(".", 1)[1]) if "." in token else 0


def _parse_line(tokens: list[str], num_joints: int, order: str) -> tuple[str, tuple, np.ndarray, np.ndarray]:
    """name, bbox (x, y, w, h), keypoints (J, 2) x/y, visibility; ValueError with a message when malformed."""
    expected = 5 + 2 * num_joints
    if len(tokens) != expected:
        raise ValueError(f"expected {expected} fields (name, 4 bbox values, {num_joints} joints x 2), "
                         f"got {len(tokens)}")
    try:
        values = [float(t) for t in tokens[1:]]
    except ValueError as exc:
        raise ValueError(f"not a number: {exc}") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError("infinite or NaN value")
    pairs = np.asarray(values, dtype=np.float64).reshape(-1, 2)
    if order == "yx":
        pairs = pairs[:, ::-1]
    (x1, y1), (x2, y2) = pairs[0], pairs[1]
    toks = tokens[1:5] if order == "xy" else [tokens[2], tokens[1], tokens[4], tokens[3]]  # x1 y1 x2 y2
    dx, dy = _decimals(toks[0]), _decimals(toks[2])
    ex, ey = _decimals(toks[1]), _decimals(toks[3])
    w, h = x2 - x1, y2 - y1
    if dx is not None and dy is not None:
        w = round(w, max(dx, dy))
    if ex is not None and ey is not None:
        h = round(h, max(ex, ey))
    kp = pairs[2:]
    absent = (kp < 0).any(axis=1) | (kp == 0).all(axis=1)
    vis = np.where(absent, 0, 2).astype(np.int8)
    return tokens[0], (float(x1), float(y1), float(w), float(h)), kp, vis


def _labels_files(path: Path) -> list[tuple[str, Path]]:
    if path.is_file():
        return [(path.parent.name, path)]
    if not path.is_dir():
        raise fatal(path, "no such file or folder")
    found = [(p.parent.name, p) for p in sorted(path.glob(f"*/{LABELS_NAME}"))]
    if not found:
        raise fatal(path, f"no <person>/{LABELS_NAME} in this folder")
    return found


def read_labels(
    path: str | os.PathLike,
    skeleton: Skeleton = HAND_21,
    order: str = "yx",
    strict: bool = False,
    read_sizes: bool = True,
) -> Dataset:
    """Read a port-layout dataset folder (or one person's labels.txt).

    Image paths are `<person>/imgs/<name>` relative to the dataset folder; `extras["person"]` holds the person.
    Malformed lines are skipped and listed on `Dataset.issues` with their file and line number (or raise
    `DatasetFormatError` when `strict`). `read_sizes` fills width/height from the image headers.
    """
    _check_order(order)
    path = Path(path)
    files = _labels_files(path)
    root = files[0][1].parent.parent
    log = IssueLog(strict)
    samples: dict[str, Sample] = {}
    for person, labels in files:
        try:
            text = labels.read_bytes().decode("utf-8", errors="replace")
        except OSError as exc:
            log.report(labels, f"cannot read file: {exc.strerror or exc}")
            continue
        for lineno, line in enumerate(text.splitlines(), start=1):
            tokens = line.split()
            if not tokens or tokens[0].startswith("#"):
                continue
            try:
                name, bbox, kp, vis = _parse_line(tokens, skeleton.num_joints, order)
            except ValueError as exc:
                log.report(labels, str(exc), line=lineno)
                continue
            image = f"{person}/{IMAGES_DIR}/{name}"
            sample = samples.get(image)
            if sample is None:
                sample = samples[image] = Sample(image=image, extras={"person": person})
            sample.instances.append(Instance(keypoints=kp, visibility=vis, bbox=bbox))
    ds = Dataset(skeleton=skeleton, samples=list(samples.values()), root=root, issues=log.issues)
    if read_sizes:
        for s in ds.samples:
            size = image_size(ds.image_path(s))
            if size is not None:
                s.width, s.height = size
    return ds


def _safe(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("._") or "images"


def default_person(sample: Sample) -> str:
    """Folder name for a sample: its `person` extra, else its source video's name, else its image's folder."""
    if sample.extras.get("person"):
        return _safe(str(sample.extras["person"]))
    source = sample.extras.get("source")
    if isinstance(source, str) and source:
        p = Path(source)
        return _safe("_".join([*p.parent.parts, p.stem]))
    parent = Path(sample.image).parent.name
    return _safe(parent) if parent else "images"


def _place_image(ds: Dataset, sample: Sample, target: Path, images: str) -> None:
    if images == "none":
        return
    src = ds.image_path(sample) if sample.data is not None else ds.source_image_path(sample)
    target.parent.mkdir(parents=True, exist_ok=True)
    if sample.data is None and target.exists() and src.exists() and os.path.samefile(src, target):
        return
    if images == "link" and sample.data is None:
        if target.is_symlink() or target.exists():
            target.unlink()
        os.symlink(os.path.abspath(src), target)
    elif sample.data is not None:
        atomic_write_bytes(target, sample.data)
    else:
        copy_image_file(src, target)


def write_labels(
    dataset: Dataset,
    path: str | os.PathLike,
    order: str = "yx",
    precision: int = 2,
    images: str = "copy",
    person: Callable[[Sample], str] = default_person,
) -> None:
    """Write `dataset` in the port's layout under folder `path` (labels.txt files written atomically).

    `images`: "copy" copies each image into `<person>/imgs/`, "link" makes symbolic links, "none" writes only
    labels. Names are the images' file names with whitespace replaced (the format splits on it), made unique
    within a person. Samples without instances are not written.
    """
    _check_order(order)
    if images not in ("copy", "link", "none"):
        raise ValueError(f"images must be 'copy', 'link' or 'none', got {images!r}")
    problems = dataset.validate()
    if problems:
        raise ValueError(f"{path}: cannot write labels: {problems[0]}")
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    fmt = f"{{:.{int(precision)}f}}"

    def pair(x: float, y: float) -> str:
        return f"{fmt.format(y)} {fmt.format(x)}" if order == "yx" else f"{fmt.format(x)} {fmt.format(y)}"

    lines: dict[str, list[str]] = {}
    used: dict[str, dict[str, str]] = {}  # person -> name -> source key
    for sample in dataset.samples:
        if not sample.instances:
            continue
        who = person(sample)
        names = used.setdefault(who, {})
        key = str(dataset.image_path(sample)) + f"#{id(sample)}"
        base = re.sub(r"\s+", "_", Path(sample.image).name) or "image.jpg"
        name, k = base, 1
        while name in names and names[name] != key:
            name = f"{Path(base).stem}_{k}{Path(base).suffix}"
            k += 1
        names[name] = key
        _place_image(dataset, sample, root / who / IMAGES_DIR / name, images)
        for inst in sample.instances:
            x, y, w, h = inst.bbox
            fields = [name, pair(x, y), pair(x + w, y + h)]
            for (jx, jy), v in zip(inst.keypoints, inst.visibility, strict=True):
                fields.append("0 0" if v == 0 else pair(jx, jy))
            lines.setdefault(who, []).append(" ".join(fields))
    for who, rows in lines.items():
        atomic_write_text(root / who / LABELS_NAME, "\n".join(rows) + "\n")
