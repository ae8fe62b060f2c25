"""An annotation project: the frames a person is labelling, their joints, and the file that keeps them.

The GUI's undo stack, autosave and model-assisted labelling all work on this one pure model, so it can be
tested, and recovered after a crash, without Qt. A project is one JSON file (`*.cpmproj.json`) that names
images by paths relative to its own folder (the project moves with its images) and holds, per frame, one
instance: joints with visibility (0 absent / 1 occluded / 2 visible), which joints a model predicted and no
person has confirmed yet, the bbox and whether it follows the joints, and whether the frame is labelled.

Edits are pure functions from one `FrameState` to the next: an undo command is just (frame, before, after),
which makes every edit undoable by construction. Saving is atomic (temp file, fsync, rename): a crash at any
moment leaves either the previous or the new file, never a torn one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cpm_core.atomic_io import atomic_write_bytes, atomic_write_text
from cpm_core.dataset.imageinfo import image_size
from cpm_core.dataset.jsonutil import json_default
from cpm_core.dataset.model import ABSENT, OCCLUDED, VISIBLE, BBox, Dataset, Instance, Sample, bbox_from_keypoints
from cpm_core.skeleton import HAND_21, Skeleton
from cpm_core.sources import IMAGE_SUFFIXES

PROJECT_FORMAT = "cpm-annotation-project"
PROJECT_VERSION = 1
PROJECT_SUFFIX = ".cpmproj.json"
DEFAULT_MARGIN = 0.1
DECIMALS = 3  # positions are kept to 1/1000 pixel in memory and on disk, so a reload is exactly what was edited


class ProjectError(ValueError):
    """A project file that cannot be read, named with the reason."""


@dataclass(frozen=True, eq=False)
class FrameState:
    """Everything one edit can change on one frame; arrays are private copies and never mutated."""

    keypoints: np.ndarray  # (J, 2) float64 x, y in image pixels (kept when a joint is absent, for V cycling)
    visibility: np.ndarray  # (J,) int8
    predicted: np.ndarray  # (J,) bool
    bbox: BBox
    bbox_auto: bool  # the box follows the joints (tight box + margin) until a person edits it
    labelled: bool

    @classmethod
    def empty(cls, num_joints: int) -> FrameState:
        return cls(np.zeros((num_joints, 2)), np.zeros(num_joints, np.int8), np.zeros(num_joints, bool),
                   (0.0, 0.0, 0.0, 0.0), True, False)

    @property
    def placed(self) -> np.ndarray:
        return self.visibility > 0

    def same_as(self, other: FrameState) -> bool:
        return (np.array_equal(self.keypoints, other.keypoints) and np.array_equal(self.visibility, other.visibility)
                and np.array_equal(self.predicted, other.predicted) and self.bbox == other.bbox
                and self.bbox_auto == other.bbox_auto and self.labelled == other.labelled)


@dataclass(eq=False)
class ProjectFrame:
    """One image of the project and its (single) instance."""

    image: str  # relative to the project's folder (or absolute)
    width: int = 0
    height: int = 0
    state: FrameState | None = None  # None until the first edit: nothing placed
    extras: dict = field(default_factory=dict)  # source video, frame index, fields imported from a dataset


# ---------------------------------------------------------------------------------------------- pure edits
def _refit(state: FrameState, margin: float, image_size_wh: tuple[int, int] | None) -> FrameState:
    """Recompute the box from the joints when it follows them, and the labelled flag after a human edit."""
    placed = state.visibility > 0
    labelled = bool(placed.any() and not state.predicted[placed].any())
    bbox = state.bbox
    if state.bbox_auto:
        size = image_size_wh if image_size_wh and all(image_size_wh) else None
        bbox = _round_box(bbox_from_keypoints(state.keypoints, state.visibility, margin, size))
    return replace(state, bbox=bbox, labelled=labelled)


def _round_box(box: Sequence[float]) -> BBox:
    return tuple(round(float(v), DECIMALS) for v in box)  # type: ignore[return-value]


def _with_joint(state: FrameState, j: int, xy: Sequence[float] | None, vis: int | None) -> FrameState:
    kp, v, p = state.keypoints.copy(), state.visibility.copy(), state.predicted.copy()
    if xy is not None:
        kp[j] = (round(float(xy[0]), DECIMALS), round(float(xy[1]), DECIMALS))
    if vis is not None:
        v[j] = vis
    p[j] = False  # a person touched this joint: it is no longer the model's guess
    return replace(state, keypoints=kp, visibility=v, predicted=p)


# ---------------------------------------------------------------------------------------------- the project
class AnnotationProject:
    """The frames being labelled, their skeleton, and where the project file lives."""

    def __init__(self, path: str | os.PathLike, skeleton: Skeleton = HAND_21,
                 frames: Iterable[ProjectFrame] = (), bbox_margin: float = DEFAULT_MARGIN, extras: dict | None = None):
        self.path = Path(path)
        self.skeleton = skeleton
        self.frames = list(frames)
        self.bbox_margin = float(bbox_margin)
        self.extras = dict(extras or {})

    # -------------------------------------------------------------- access
    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def num_joints(self) -> int:
        return self.skeleton.num_joints

    def __len__(self) -> int:
        return len(self.frames)

    def image_path(self, index: int) -> Path:
        p = Path(self.frames[index].image)
        return p if p.is_absolute() else self.folder / p

    def state(self, index: int) -> FrameState:
        """The frame's current state (an empty one, nothing placed, for a frame never edited)."""
        st = self.frames[index].state
        return st if st is not None else FrameState.empty(self.num_joints)

    def set_state(self, index: int, state: FrameState) -> None:
        if state.keypoints.shape != (self.num_joints, 2):
            raise ValueError(f"state has {len(state.keypoints)} joints, the skeleton {self.num_joints}")
        self.frames[index].state = state

    def is_labelled(self, index: int) -> bool:
        return self.state(index).labelled

    def next_unlabelled(self, start: int, step: int = 1) -> int | None:
        """The first unlabelled frame after `start` (wrapping around), or None when every frame is labelled."""
        n = len(self.frames)
        for k in range(1, n + 1):
            i = (start + step * k) % n
            if not self.is_labelled(i):
                return i
        return None

    def counts(self) -> dict[str, int]:
        """Frames labelled, with unconfirmed predictions, and untouched: for the status line."""
        labelled = predicted = 0
        for i in range(len(self.frames)):
            st = self.state(i)
            labelled += st.labelled
            predicted += bool(st.predicted.any())
        return {"frames": len(self.frames), "labelled": labelled, "predicted": predicted}

    def _size(self, index: int) -> tuple[int, int] | None:
        f = self.frames[index]
        return (f.width, f.height) if f.width and f.height else None

    # -------------------------------------------------------------- edits: each returns the frame's next state
    def placed_state(self, index: int, joint: int, xy: Sequence[float]) -> FrameState:
        """Place (or move) `joint` at `xy`, visible unless it was marked occluded; clears its predicted flag."""
        st = self.state(index)
        vis = int(st.visibility[joint]) or VISIBLE
        return _refit(_with_joint(st, joint, xy, vis), self.bbox_margin, self._size(index))

    def visibility_state(self, index: int, joint: int, visibility: int) -> FrameState:
        """Set one joint's visibility (ABSENT removes it; its last position is kept for cycling back)."""
        if visibility not in (ABSENT, OCCLUDED, VISIBLE):
            raise ValueError(f"visibility must be 0, 1 or 2, got {visibility}")
        return _refit(_with_joint(self.state(index), joint, None, visibility), self.bbox_margin, self._size(index))

    def cycled_state(self, index: int, joint: int) -> FrameState:
        """Visible -> occluded -> absent -> visible (at its last position)."""
        nxt = {VISIBLE: OCCLUDED, OCCLUDED: ABSENT, ABSENT: VISIBLE}[int(self.state(index).visibility[joint])]
        return self.visibility_state(index, joint, nxt)

    def bbox_state(self, index: int, bbox: Sequence[float] | None) -> FrameState:
        """A person-drawn box (it stops following the joints), or None to make it follow them again."""
        st = self.state(index)
        if bbox is None:
            return _refit(replace(st, bbox_auto=True), self.bbox_margin, self._size(index))
        x, y, w, h = (float(v) for v in bbox)
        if w < 0:
            x, w = x + w, -w
        if h < 0:
            y, h = y + h, -h
        return replace(st, bbox=_round_box((x, y, w, h)), bbox_auto=False)

    def confirmed_state(self, index: int) -> FrameState:
        """Accept the model's joints as a person's and mark the frame labelled (also an empty frame: no hand)."""
        st = self.state(index)
        return replace(st, predicted=np.zeros_like(st.predicted), labelled=True)

    def predicted_state(self, index: int, keypoints: np.ndarray) -> FrameState:
        """Fill the joints a person has not placed with a model's (J, 2+) keypoints, marked predicted.

        Joints a person placed (placed and not predicted) are kept: a prediction never overwrites human work.
        """
        st = self.state(index)
        pred_kp = np.asarray(keypoints, dtype=np.float64)
        if pred_kp.shape[0] != self.num_joints:
            raise ValueError(f"the model gives {pred_kp.shape[0]} joints, the project's skeleton "
                             f"{self.skeleton.name!r} has {self.num_joints}")
        human = (st.visibility > 0) & ~st.predicted
        fill = ~human & np.isfinite(pred_kp[:, :2]).all(axis=1)
        kp, v, p = st.keypoints.copy(), st.visibility.copy(), st.predicted.copy()
        kp[fill] = np.round(pred_kp[fill, :2], DECIMALS)
        v[fill] = VISIBLE
        p[fill] = True
        return _refit(replace(st, keypoints=kp, visibility=v, predicted=p), self.bbox_margin, self._size(index))

    # -------------------------------------------------------------- creation
    @classmethod
    def from_images(cls, path: str | os.PathLike, images: Iterable[str | os.PathLike], skeleton: Skeleton = HAND_21,
                    extras: Sequence[dict] | None = None) -> AnnotationProject:
        """A project over existing image files (stored relative to the project's folder where possible)."""
        proj = cls(path, skeleton)
        for k, img in enumerate(images):
            wh = image_size(img) or (0, 0)
            proj.frames.append(ProjectFrame(proj._relative(img), wh[0], wh[1], None,
                                            dict(extras[k]) if extras else {}))
        return proj

    @classmethod
    def from_folder(cls, path: str | os.PathLike, folder: str | os.PathLike,
                    skeleton: Skeleton = HAND_21) -> AnnotationProject:
        images = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ProjectError(f"{folder}: no images in this folder")
        return cls.from_images(path, images, skeleton)

    @classmethod
    def from_video(cls, path: str | os.PathLike, video: str | os.PathLike, count: int, method: str = "uniform",
                   skeleton: Skeleton = HAND_21, frames_dir: str | os.PathLike | None = None,
                   progress: Callable[[str, int], None] | None = None) -> AnnotationProject:
        """Extract `count` frames (uniform or k-means) into `<project folder>/<video stem>_frames/`."""
        from cpm_core.dataset.frames import extract_frames  # noqa: PLC0415 - OpenCV video decoding only here

        video = Path(video)
        out = Path(frames_dir) if frames_dir else Path(path).parent / f"{video.stem}_frames"
        saved = extract_frames(video, out, count, method=method, progress=progress)
        return cls.from_images(path, [p for _, p in saved], skeleton,
                               [{"source": video.name, "frame": i} for i, _ in saved])

    @classmethod
    def from_dataset(cls, path: str | os.PathLike, dataset: Dataset) -> AnnotationProject:
        """Import any dataset: its first instance per image becomes the frame's joints, labelled if it has any.

        Images that live only in memory (a TFRecord) are written to `<project folder>/images/`.
        """
        proj = cls(path, dataset.skeleton)
        for k, s in enumerate(dataset.samples):
            img_path = dataset.image_path(s)
            if s.data is not None and not img_path.is_file():
                img_path = proj.folder / "images" / f"{k:06d}_{Path(s.image).name or 'image.jpg'}"
                atomic_write_bytes(img_path, s.data)
            w, h = s.width, s.height
            if not (w and h):
                w, h = image_size(img_path) or (0, 0)
            frame = ProjectFrame(proj._relative(img_path), w, h, None, dict(s.extras))
            if s.instances:
                inst = s.instances[0]
                if inst.num_joints != proj.num_joints:
                    raise ProjectError(f"{s.image}: {inst.num_joints} joints, skeleton has {proj.num_joints}")
                placed = inst.visibility > 0
                frame.state = FrameState(inst.keypoints.copy(), inst.visibility.copy(), inst.predicted.copy(),
                                         tuple(inst.bbox), False,
                                         bool(placed.any() and not inst.predicted[placed].any()))
                if len(s.instances) > 1:
                    frame.extras["more_instances"] = len(s.instances) - 1
            proj.frames.append(frame)
        return proj

    def _relative(self, image: str | os.PathLike) -> str:
        p = Path(image).absolute()
        try:
            return Path(os.path.relpath(p, self.folder.absolute())).as_posix()
        except ValueError:  # another drive (Windows)
            return p.as_posix()

    # -------------------------------------------------------------- export
    def to_dataset(self, only_labelled: bool = True) -> Dataset:
        """A Dataset of the frames (only labelled ones by default, a training set has no half-done frames).

        Absent joints get (0, 0), as COCO expects; predicted flags travel on the instances. Images may lie outside
        the project's folder (`allow_outside_root`): a project lists frames its user added and looked at in the
        app; `cpm dataset convert` of a project file still asks for `--allow-outside-root`.
        """
        samples = []
        for i, f in enumerate(self.frames):
            st = self.state(i)
            if only_labelled and not st.labelled:
                continue
            instances = []
            if st.placed.any():
                kp = st.keypoints.copy()
                kp[~st.placed] = 0.0
                instances.append(Instance(kp, st.visibility.copy(), st.bbox, st.predicted & st.placed))
            extras = {k: v for k, v in f.extras.items() if k != "more_instances"}
            samples.append(Sample(f.image, f.width, f.height, instances, extras))
        return Dataset(skeleton=self.skeleton, samples=samples, root=self.folder, allow_outside_root=True)

    # -------------------------------------------------------------- files
    def to_dict(self) -> dict:
        frames = []
        for f in self.frames:
            d: dict = {"image": f.image, "width": f.width, "height": f.height}
            if f.extras:
                d["extras"] = f.extras
            st = f.state
            if st is not None:
                d["labelled"] = st.labelled
                d["keypoints"] = [[round(float(x), DECIMALS), round(float(y), DECIMALS)] for x, y in st.keypoints]
                d["visibility"] = [int(v) for v in st.visibility]
                d["predicted"] = [int(p) for p in st.predicted]
                d["bbox"] = [round(float(v), DECIMALS) for v in st.bbox]
                d["bbox_auto"] = st.bbox_auto
            frames.append(d)
        return {"format": PROJECT_FORMAT, "version": PROJECT_VERSION, "skeleton": self.skeleton.to_dict(),
                "bbox_margin": self.bbox_margin, "extras": self.extras, "frames": frames}

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the project atomically (to `path`, which becomes the project's path, or where it was)."""
        if path is not None:
            old_folder = self.folder.absolute()
            self.path = Path(path)
            if self.folder.absolute() != old_folder:
                for f in self.frames:
                    if not Path(f.image).is_absolute():
                        f.image = self._relative(old_folder / f.image)
        text = json.dumps(self.to_dict(), default=json_default, separators=(",", ":"))
        atomic_write_text(self.path, text + "\n")
        return self.path

    @classmethod
    def load(cls, path: str | os.PathLike) -> AnnotationProject:
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ProjectError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProjectError(f"{path}: not a valid project file: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != PROJECT_FORMAT:
            raise ProjectError(f"{path}: not a CPM annotation project (no \"format\": \"{PROJECT_FORMAT}\")")
        if int(doc.get("version", 0)) > PROJECT_VERSION:
            raise ProjectError(f"{path}: made by a newer CPM Studio (version {doc['version']})")
        try:
            skeleton = Skeleton.from_dict(doc["skeleton"])
            proj = cls(path, skeleton, bbox_margin=doc.get("bbox_margin", DEFAULT_MARGIN), extras=doc.get("extras"))
            n = skeleton.num_joints
            for k, d in enumerate(doc["frames"]):
                frame = ProjectFrame(str(d["image"]), int(d.get("width", 0)), int(d.get("height", 0)), None,
                                     dict(d.get("extras") or {}))
                if "keypoints" in d:
                    kp = np.array(d["keypoints"], dtype=np.float64).reshape(-1, 2)
                    vis = np.array(d["visibility"], dtype=np.int8)
                    pred = np.array(d.get("predicted", [0] * n), dtype=bool)
                    if kp.shape != (n, 2) or vis.shape != (n,) or pred.shape != (n,):
                        raise ProjectError(f"{path}: frame {k} ({frame.image}) does not have {n} joints")
                    frame.state = FrameState(kp, vis, pred, tuple(float(v) for v in d["bbox"]),
                                             bool(d.get("bbox_auto", True)), bool(d.get("labelled", False)))
                proj.frames.append(frame)
        except ProjectError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ProjectError(f"{path}: malformed project file: {exc}") from exc
        return proj
