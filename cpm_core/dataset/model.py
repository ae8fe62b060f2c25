"""The one in-memory dataset model every file format reads into and writes from.

Formats differ in what they can hold (labels.txt has no visibility, the port's TFRecord has only heatmaps), so
converting between N formats goes through this model rather than N x N converters, and each format's losses
are stated once, in its own module. Positions are in image pixels, x before y, whatever the file's order.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cpm_core.dataset.issues import FormatIssue
from cpm_core.skeleton import HAND_21, Skeleton

BBox = tuple[float, float, float, float]


class OutsideRootError(ValueError):
    """An image path that leaves the dataset's folder (`../`, an absolute path, or a symlink out of it)."""

#: Visibility codes, as in COCO.
ABSENT, OCCLUDED, VISIBLE = 0, 1, 2


def bbox_from_keypoints(
    keypoints: np.ndarray | Sequence,
    visibility: np.ndarray | Sequence | None = None,
    margin: float = 0.0,
    image_size: tuple[int, int] | None = None,
) -> BBox:
    """Tight (x, y, w, h) box of the labelled joints (visibility > 0), grown by `margin` on every side.

    `margin` is a fraction of the box's longer side (0.1 adds 10% of it left, right, above and below), so thin
    boxes (a flat hand seen edge-on) still get room around them. With `image_size` (width, height) the box is
    clipped to the image. No labelled joint gives (0, 0, 0, 0).
    """
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    mask = np.isfinite(kp).all(axis=1)
    if visibility is not None:
        mask &= np.asarray(visibility).reshape(-1) > 0
    if not mask.any():
        return (0.0, 0.0, 0.0, 0.0)
    x0, y0 = kp[mask].min(axis=0)
    x1, y1 = kp[mask].max(axis=0)
    grow = margin * max(x1 - x0, y1 - y0)
    x0, y0, x1, y1 = x0 - grow, y0 - grow, x1 + grow, y1 + grow
    if image_size is not None:
        w, h = image_size
        x0, y0 = max(x0, 0.0), max(y0, 0.0)
        x1, y1 = min(x1, float(w)), min(y1, float(h))
        x1, y1 = max(x1, x0), max(y1, y0)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def non_finite_joints(values: np.ndarray, limit: int = 3) -> str:
    """'' if every value of the (J, k) joint rows is finite, else which ones are not ('joint 3 x = nan, ...').

    Readers refuse records with such values at read time, naming the record: NaN and infinity are no
    coordinates, and kept they fail far from their cause (an exported file our own reader rejects, a training
    loss that becomes NaN)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr.reshape(len(arr), -1) if arr.ndim != 2 else arr
    rows, cols = np.nonzero(~np.isfinite(arr))
    if not len(rows):
        return ""
    axis = "xyv"
    shown = [f"joint {r} {axis[c] if c < 3 else c} = {arr[r, c]}" for r, c in zip(rows[:limit], cols[:limit])]
    return ", ".join(shown) + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


@dataclass(eq=False)
class Instance:
    """One labelled object (a hand, a person) in an image.

    `keypoints` (J, 2) float x, y in image pixels; `visibility` (J,) int8, 0 absent / 1 occluded / 2 visible
    (default: all visible); `bbox` (x, y, w, h) in pixels (default: the tight box of the labelled joints);
    `predicted` (J,) bool marks joints a model filled in and no person has confirmed yet (default: none);
    `extras` keeps format fields the model has no slot for (COCO's score, handedness, area) so that a round
    trip through the same format gives them back.
    """

    keypoints: np.ndarray
    visibility: np.ndarray | None = None
    bbox: BBox | None = None
    predicted: np.ndarray | None = None
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        kp = np.array(self.keypoints, dtype=np.float64)
        if kp.ndim == 1 and kp.size % 2 == 0:
            kp = kp.reshape(-1, 2)
        if kp.ndim != 2 or kp.shape[1] != 2:
            raise ValueError(f"keypoints must have shape (J, 2), got {kp.shape}")
        self.keypoints = kp
        n = len(kp)
        if self.visibility is None:
            vis = np.full(n, VISIBLE, dtype=np.int8)
        else:
            raw = np.asarray(self.visibility).reshape(-1)
            if raw.shape != (n,):
                raise ValueError(f"visibility must have {n} entries, got {raw.shape[0]}")
            if not np.isin(raw, (ABSENT, OCCLUDED, VISIBLE)).all():
                raise ValueError(f"visibility values must be 0, 1 or 2, got {sorted(set(raw.tolist()))}")
            vis = raw.astype(np.int8)
        self.visibility = vis
        if self.predicted is None:
            pred = np.zeros(n, dtype=bool)
        else:
            pred = np.array(self.predicted, dtype=bool).reshape(-1)
            if pred.shape != (n,):
                raise ValueError(f"predicted must have {n} entries, got {pred.shape[0]}")
        self.predicted = pred
        if self.bbox is None:
            self.bbox = bbox_from_keypoints(kp, vis)
        else:
            box = tuple(float(v) for v in self.bbox)
            if len(box) != 4:
                raise ValueError(f"bbox must be (x, y, w, h), got {len(box)} values")
            self.bbox = box  # type: ignore[assignment]
        self.extras = dict(self.extras)

    @property
    def num_joints(self) -> int:
        return len(self.keypoints)

    @property
    def num_labelled(self) -> int:
        """Joints with a position (visibility > 0): COCO's num_keypoints."""
        return int((self.visibility > 0).sum())


@dataclass(eq=False)
class Sample:
    """One image and its instances.

    `image` is a path relative to `Dataset.root` (or absolute); `width`/`height` are 0 when unknown. `data`
    holds the encoded image (JPEG/PNG bytes) when it lives only in memory, e.g. read from a TFRecord; writers
    that need pixels use `Dataset.read_image_bytes`, which prefers it. `extras` keeps per-image fields such
    as the source video and frame index.
    """

    image: str
    width: int = 0
    height: int = 0
    instances: list[Instance] = field(default_factory=list)
    extras: dict = field(default_factory=dict)
    data: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.image = os.fspath(self.image)
        self.width, self.height = int(self.width), int(self.height)
        self.instances = list(self.instances)
        self.extras = dict(self.extras)


@dataclass(eq=False)
class Dataset:
    """A skeleton, its samples, and the folder relative image paths start from.

    `extras` keeps file-level fields (COCO's info, licenses, category); `issues` lists the bad records a
    reader skipped (see `cpm_core.dataset.issues`). `allow_outside_root` lets exporters read image files outside
    `root` (see `source_image_path`); off unless the user says so (`--allow-outside-root`).
    """

    skeleton: Skeleton = HAND_21
    samples: list[Sample] = field(default_factory=list)
    root: Path = field(default_factory=lambda: Path("."))
    extras: dict = field(default_factory=dict)
    issues: list[FormatIssue] = field(default_factory=list)
    allow_outside_root: bool = False

    bbox_from_keypoints = staticmethod(bbox_from_keypoints)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.samples = list(self.samples)

    @property
    def num_images(self) -> int:
        return len(self.samples)

    @property
    def num_instances(self) -> int:
        return sum(len(s.instances) for s in self.samples)

    def instances(self) -> Iterator[tuple[Sample, Instance]]:
        """Every (sample, instance) pair, in order."""
        for s in self.samples:
            for inst in s.instances:
                yield s, inst

    def image_path(self, sample: Sample) -> Path:
        """Where the sample's image file is: `sample.image` if absolute, else under `root`."""
        p = Path(sample.image)
        return p if p.is_absolute() else self.root / p

    def source_image_path(self, sample: Sample) -> Path:
        """`image_path`, for a writer that copies or embeds the file: it must lie inside `root`.

        Why: a dataset is data from elsewhere. A COCO `file_name` of `../../etc/passwd` or `/home/me/.ssh/id_rsa`,
        or a labels.txt name with `../`, would otherwise make an export copy that file into a dataset the user
        then shares. The path is checked as written (normalised, not resolved): symlinks inside the folder, such
        as an `images` link to a shared image store, are the folder owner's choice and are followed.
        `allow_outside_root` (the user's explicit `--allow-outside-root`) lifts the check.
        """
        path = self.image_path(sample)
        if self.allow_outside_root:
            return path
        root = Path(os.path.normpath(os.path.abspath(self.root)))
        where = Path(os.path.normpath(os.path.abspath(path)))
        if not where.is_relative_to(root):
            raise OutsideRootError(f"{sample.image}: image path leaves the dataset folder {root} (it is {where}); "
                                   "refusing to copy it into the export (pass --allow-outside-root if you trust "
                                   "this dataset)")
        return path

    def check_image_paths(self) -> None:
        """Raise `OutsideRootError` for the first file-backed image outside `root`, before a writer starts, so a
        refused export leaves no half-written output behind."""
        for sample in self.samples:
            if sample.data is None:
                self.source_image_path(sample)

    def read_image_bytes(self, sample: Sample) -> bytes:
        """The encoded image: the in-memory copy if there is one, else the file's bytes (inside `root` only,
        see `source_image_path`)."""
        if sample.data is not None:
            return sample.data
        return self.source_image_path(sample).read_bytes()

    def validate(self) -> list[str]:
        """Problems that would make a writer or trainer fail: joint counts that disagree with the skeleton, and
        NaN or infinite positions or boxes (a writer would put `nan` in a file no reader accepts)."""
        problems = []
        n = self.skeleton.num_joints
        for i, s in enumerate(self.samples):
            for k, inst in enumerate(s.instances):
                if inst.num_joints != n:
                    problems.append(f"{s.image} instance {k} (sample {i}): {inst.num_joints} joints, skeleton "
                                    f"{self.skeleton.name!r} has {n}")
                bad = non_finite_joints(inst.keypoints)
                if bad or not np.isfinite(np.asarray(inst.bbox, np.float64)).all():
                    problems.append(f"{s.image} instance {k} (sample {i}): NaN or infinite "
                                    f"{'keypoints (' + bad + ')' if bad else 'bbox'}")
        return problems

    def copy(self) -> Dataset:
        """A deep copy (arrays and extras included)."""
        return copy.deepcopy(self)

    def with_samples(self, samples: Sequence[Sample]) -> Dataset:
        """A dataset with the same skeleton, root and extras, holding `samples` (not copied)."""
        return Dataset(skeleton=self.skeleton, samples=list(samples), root=self.root, extras=dict(self.extras),
                       allow_outside_root=self.allow_outside_root)

    def split(
        self,
        fraction: float = 0.1,
        seed: int = 0,
        group: Callable[[Sample], Hashable] | None = None,
    ) -> tuple[Dataset, Dataset]:
        """Split into (train, val) with about `fraction` of the images in val.

        `group` keeps samples with the same key together (e.g. `lambda s: s.extras.get("source")`), so frames
        of one video do not land on both sides and make validation look better than it is.
        """
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        keys: dict[Hashable, list[int]] = {}
        for i, s in enumerate(self.samples):
            keys.setdefault(group(s) if group else i, []).append(i)
        groups = list(keys.values())
        order = np.random.default_rng(seed).permutation(len(groups))
        target = fraction * len(self.samples)
        val_idx: set[int] = set()
        for g in order:
            if len(val_idx) >= target:
                break
            val_idx.update(groups[g])
        train = [s for i, s in enumerate(self.samples) if i not in val_idx]
        val = [s for i, s in enumerate(self.samples) if i in val_idx]
        return self.with_samples(train), self.with_samples(val)
