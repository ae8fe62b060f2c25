"""`cpm dataset check`: find labels that are probably wrong, so a person looks at those first.

Labels go wrong in a few typical ways, and each leaves a trace in the geometry alone (no images, no model):

- **swaps**: two fingers (thumb and little finger, say) or a left/right pair labelled the wrong way round. Test:
  put the two back and see whether the instance becomes much more typical (its summed squared robust z-scores,
  below, drop by at least `SWAP_GAIN` and to at most half). Hands try every pair of fingers; other skeletons
  try their `flip_pairs` one by one (a whole person labelled mirrored cannot be told from one seen from behind).
- **joints far from where the skeleton's proportions put them**: robust statistics (median and MAD) over the
  dataset of (a) each limb's length relative to the instance's median limb (log ratio; a limb much *longer*
  than usual is suspicious, a short one is usually foreshortening) and (b) for hands, each joint's position in
  a canonical hand frame (origin wrist, "up" wrist -> middle-finger base, mirrored so the index side is left,
  in units of that axis). A joint is flagged when its worst robust z-score passes `JOINT_Z`.
- **boxes that do not hold their joints**: labelled joints outside the box by more than `BOX_OUTSIDE` of the
  box's size, or joints filling under `BOX_FILL` of a box's area (a box left on another hand).
- **duplicate instances**: two instances of one image whose common joints lie within `DUPLICATE_DIST` of the
  hand's size of each other on average (a detector's double, a pasted copy).

Statistics come from the dataset itself when it has at least `MIN_INSTANCES` instances with every limb labelled,
so the check adapts to a lab's own labelling style; for hands their spreads are never taken tighter than the
built-in reference's (`hand21_reference`, measured on the shared training labels hand_pseudo/train and
hand_more/train, MediaPipe machine labels, see `reference_stats`): the labels of one video show a handful of poses,
and without that floor every other pose of a real hand would look wrong. Smaller hand datasets (an annotation
project with a dozen labelled frames) use the reference as it is.

Every flag's `score` is its evidence divided by its threshold, so 1 is "just flagged" whatever the kind and
flags of all kinds sort together; the list is most suspicious first. The thresholds were chosen on the shared
*training* label sets (false flags on hand_pseudo/train and hand_more/train), not on the val sets the report
counts on.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from cpm_core.atomic_io import atomic_write_text
from cpm_core.dataset.model import Dataset, Instance
from cpm_core.skeleton import Skeleton

JOINT_Z = 7.0  # robust z at which a joint is flagged as far from where the proportions put it
SWAP_GAIN = 60.0  # drop in summed squared z (capped at Z_CAP each) that un-swapping must bring
Z_CAP = 12.0  # one feature's z counts at most this much in the swap test (one wild joint must not dominate)
BOX_OUTSIDE = 0.1  # a labelled joint further outside its box than this fraction of the box's size
BOX_FILL = 0.04  # the joints' own box covers less than this fraction of the labelled box's area
DUPLICATE_DIST = 0.08  # mean distance of common joints, in the instances' size, below which two are duplicates
MIN_INSTANCES = 40  # complete instances needed to learn the dataset's own proportions
MIN_FEATURE_COUNT = 10  # a feature seen on fewer instances gets no statistics (and no z)
BONE_FLOOR = 0.06  # smallest robust spread of a log limb ratio (about 6 %)
COORD_FLOOR = 0.06  # smallest robust spread of a canonical coordinate, in wrist -> middle-base lengths

# Canonical frames: (origin joint, "up" joint, side joint, other side joint). The sides mirror the frame so that
# the side joint lies left of the other; hand21 uses index1 and ring1, which a thumb <-> little swap leaves alone.
_FRAMES: dict[str, tuple[int, int, int, int]] = {"hand21": (0, 9, 5, 13)}
# Joints whose distance along the frame's "up" is a feature: the palm's (rigid). A finger joint's position along
# the hand depends on how far the finger is bent (bimodal: open hand vs fist), so for those only the position
# across the hand is kept; their limbs' lengths still catch a joint put far off.
_ALONG: dict[str, tuple[int, ...]] = {"hand21": (1, 2, 5, 13, 17)}
_FINGERS_21 = tuple(tuple(1 + 4 * f + k for k in range(4)) for f in range(5))
_FINGER_NAMES = ("thumb", "index", "middle", "ring", "little")


@dataclass
class Flag:
    """One suspicious instance: what looks wrong (`kind`, `reason`), how sure (`score`, >= 1) and where."""

    annotation_id: int | str
    image: str
    reason: str
    score: float
    kind: str  # "swap", "joint", "box" or "duplicate"
    sample_index: int
    instance_index: int
    joints: tuple[int, ...] = ()
    extras: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {"annotation_id": self.annotation_id, "image": self.image, "reason": self.reason,
             "score": round(float(self.score), 3), "kind": self.kind, "sample_index": self.sample_index,
             "instance_index": self.instance_index, "joints": list(self.joints)}
        d.update(self.extras)
        return d


@dataclass
class Stats:
    """Per-feature median and robust spread (1.4826 MAD, floored); NaN where a feature was too rarely seen."""

    median: np.ndarray
    spread: np.ndarray
    source: str  # "dataset" or "reference"

    def z(self, features: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return (features - self.median) / self.spread


# ------------------------------------------------------------------------------------------------ features
def _limb_lengths(kp: np.ndarray, lab: np.ndarray, limbs: np.ndarray) -> np.ndarray:
    """(N, L) limb lengths, NaN where either end is unlabelled."""
    a, b = limbs[:, 0], limbs[:, 1]
    length = np.linalg.norm(kp[:, a] - kp[:, b], axis=-1)
    return np.where(lab[:, a] & lab[:, b], length, np.nan)


def _bone_features(kp: np.ndarray, lab: np.ndarray, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """(N, L) log of each limb's length over the instance's median limb (NaN with fewer than 3 limbs labelled),
    and that median limb (N,), the instance's scale."""
    limbs = np.asarray(skeleton.limbs, dtype=int).reshape(-1, 2)
    if not len(limbs):
        return np.zeros((len(kp), 0)), np.full(len(kp), np.nan)
    lengths = _limb_lengths(kp, lab, limbs)
    enough = np.isfinite(lengths).sum(axis=1) >= 3
    scale = np.full(len(kp), np.nan)
    if enough.any():
        scale[enough] = np.nanmedian(lengths[enough], axis=1)
    with np.errstate(all="ignore"):
        out = np.log(lengths / scale[:, None])
    out[~np.isfinite(out)] = np.nan
    return out, scale


def _frame_features(kp: np.ndarray, lab: np.ndarray, skeleton: Skeleton, scale: np.ndarray) -> np.ndarray:
    """(N, 2J) joint positions in the skeleton's canonical frame (see `_FRAMES`) in units of `scale` (the
    instance's median limb: a hand seen edge-on has a short wrist -> middle-base axis, and positions divided by it
    would explode); empty for skeletons without a frame. The frame's own origin and "up" joints come out NaN."""
    frame = _FRAMES.get(skeleton.name)
    if frame is None:
        return np.zeros((len(kp), 0))
    o, up, s1, s2 = frame
    axis = kp[:, up] - kp[:, o]
    length = np.linalg.norm(axis, axis=-1)
    ok = lab[:, o] & lab[:, up] & (length > 1e-6) & np.isfinite(scale) & (scale > 1e-6)
    with np.errstate(all="ignore"):
        u = axis / length[:, None]  # "up" in image coordinates
        v = np.stack([-u[:, 1], u[:, 0]], axis=-1)  # perpendicular
        rel = kp - kp[:, o:o + 1]
        x = (rel * v[:, None]).sum(-1) / scale[:, None]
        y = (rel * u[:, None]).sum(-1) / scale[:, None]
    mirror = lab[:, s1] & lab[:, s2] & (x[:, s1] > x[:, s2])
    x = np.where(mirror[:, None], -x, x)
    x = np.where(ok[:, None] & lab, x, np.nan)
    y = np.where(ok[:, None] & lab, y, np.nan)
    x[:, [o, up]] = np.nan
    y[:, [o, up]] = np.nan
    rigid = np.zeros(kp.shape[1], dtype=bool)
    rigid[list(_ALONG.get(skeleton.name, ()))] = True
    y[:, ~rigid] = np.nan
    return np.stack([x, y], axis=-1).reshape(len(kp), -1)


def instance_features(kp: np.ndarray, lab: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """(N, F) features of N instances: limb log ratios, then canonical coordinates (see the module docstring).

    `kp` (N, J, 2) positions, `lab` (N, J) bool labelled. NaN marks a feature that an instance does not have."""
    kp = np.asarray(kp, dtype=np.float64)
    lab = np.asarray(lab, dtype=bool) & np.isfinite(kp).all(axis=-1)
    bones, scale = _bone_features(kp, lab, skeleton)
    return np.concatenate([bones, _frame_features(kp, lab, skeleton, scale)], axis=1)


def feature_joints(skeleton: Skeleton) -> list[tuple[int, ...]]:
    """For each feature of `instance_features`, the joints it depends on most (a limb's two ends, a joint)."""
    out: list[tuple[int, ...]] = [tuple(limb) for limb in skeleton.limbs]
    if skeleton.name in _FRAMES:
        for j in range(skeleton.num_joints):
            out += [(j,), (j,)]
    return out


def feature_names(skeleton: Skeleton) -> list[str]:
    names = [f"limb {skeleton.joints[a]}-{skeleton.joints[b]}" for a, b in skeleton.limbs]
    if skeleton.name in _FRAMES:
        for j in skeleton.joints:
            names += [f"{j} across", f"{j} along"]
    return names


def learn_stats(features: np.ndarray, skeleton: Skeleton, source: str = "dataset") -> Stats:
    """Robust per-feature statistics of an (N, F) feature matrix (NaN ignored)."""
    n_limbs = len(skeleton.limbs)
    count = np.isfinite(features).sum(axis=0)
    with np.errstate(all="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(features, axis=0) if len(features) else np.full(features.shape[1], np.nan)
            mad = np.nanmedian(np.abs(features - med), axis=0) if len(features) else med
    floor = np.where(np.arange(features.shape[1]) < n_limbs, BONE_FLOOR, COORD_FLOOR)
    spread = np.maximum(1.4826 * mad, floor)
    rare = count < MIN_FEATURE_COUNT
    med[rare] = np.nan
    spread[rare] = np.nan
    return Stats(med, spread, source)


# ------------------------------------------------------------------------------------------------ the check
def _arrays(ds: Dataset) -> tuple[list[tuple[int, int, Instance]], np.ndarray, np.ndarray]:
    items = [(si, k, inst) for si, s in enumerate(ds.samples) for k, inst in enumerate(s.instances)
             if inst.num_joints == ds.skeleton.num_joints]
    j = ds.skeleton.num_joints
    kp = np.array([inst.keypoints for _, _, inst in items], dtype=np.float64).reshape(-1, j, 2)
    lab = np.array([inst.visibility > 0 for _, _, inst in items], dtype=bool).reshape(-1, j)
    return items, kp, lab


def dataset_stats(ds: Dataset, reference: Stats | None = None) -> Stats:
    """The statistics the check compares against: the dataset's own when it has `MIN_INSTANCES` complete
    instances, else `reference` (default: `HAND21_REFERENCE` for hand21), else the dataset's own anyway."""
    _, kp, lab = _arrays(ds)
    feats = instance_features(kp, lab, ds.skeleton)
    n_limbs = len(ds.skeleton.limbs)
    complete = int(np.isfinite(feats[:, :n_limbs]).all(axis=1).sum()) if n_limbs else len(feats)
    if complete >= MIN_INSTANCES:
        own = learn_stats(feats, ds.skeleton)
        if ds.skeleton.name == "hand21":
            # One video's labels show a few poses: their spread is no measure of how far a real hand can bend.
            # The typical position is the dataset's own (its labelling style), the spread at least the reference's.
            ref = hand21_reference()
            own.spread = np.where(np.isfinite(own.spread), np.fmax(own.spread, ref.spread), own.spread)
        return own
    if reference is None and ds.skeleton.name == "hand21":
        reference = hand21_reference()
    return reference if reference is not None else learn_stats(feats, ds.skeleton)


def _swap_candidates(skeleton: Skeleton) -> list[tuple[str, list[tuple[int, int]]]]:
    """(description, joint pairs to exchange) for every swap worth testing on this skeleton."""
    if skeleton.name == "hand21":
        return [(f"{_FINGER_NAMES[a]} and {_FINGER_NAMES[b]} finger look swapped",
                 list(zip(_FINGERS_21[a], _FINGERS_21[b]))) for a, b in combinations(range(5), 2)]
    return [(f"{skeleton.joints[a]} and {skeleton.joints[b]} look swapped", [(a, b)]) for a, b in skeleton.flip_pairs]


def _anomaly(z: np.ndarray) -> np.ndarray:
    """Summed squared z per instance (each capped at Z_CAP), over the features an instance has."""
    return np.nansum(np.minimum(np.nan_to_num(z, nan=0.0) ** 2, Z_CAP ** 2), axis=1)


def check_dataset(ds: Dataset, stats: Stats | None = None) -> list[Flag]:
    """Every flag the checks raise on `ds`, most suspicious first (see the module docstring)."""
    skel = ds.skeleton
    items, kp, lab = _arrays(ds)
    if not items:
        return []
    stats = stats or dataset_stats(ds)
    ann_ids = _annotation_ids(ds)
    flags: list[Flag] = []

    def flag(i: int, kind: str, reason: str, score: float, joints: Sequence[int] = (), **extras) -> None:
        si, k, _ = items[i]
        flags.append(Flag(ann_ids[(si, k)], ds.samples[si].image, reason, float(score), kind, si, k,
                          tuple(int(j) for j in joints), dict(extras)))

    # swaps
    feats = instance_features(kp, lab, skel)
    z = stats.z(feats)
    base = _anomaly(z)
    explained: dict[int, set[int]] = {}
    best_gain = np.zeros(len(items))
    best_swap: list[tuple[str, list[tuple[int, int]]] | None] = [None] * len(items)
    for text, pairs in _swap_candidates(skel):
        perm = np.arange(skel.num_joints)
        for a, b in pairs:
            perm[a], perm[b] = b, a
        z_swapped = stats.z(instance_features(kp[:, perm], lab[:, perm], skel))
        swapped = _anomaly(z_swapped)
        typical = np.nan_to_num(np.abs(z_swapped), nan=0.0).max(axis=1, initial=0.0) < JOINT_Z
        gain = base - swapped
        better = (gain > best_gain) & (gain >= SWAP_GAIN) & (swapped <= 0.5 * base) & typical
        for i in np.flatnonzero(better):
            best_gain[i] = gain[i]
            best_swap[i] = (text, pairs)
    for i, found in enumerate(best_swap):
        if found is not None:
            text, pairs = found
            joints = sorted({j for p in pairs for j in p})
            explained[i] = set(joints)
            flag(i, "swap", f"{text} (putting them back makes the hand {base[i] / max(base[i] - best_gain[i], 1):.0f}x"
                 " more typical)" if skel.name == "hand21" else f"{text} (putting them back makes the pose much more "
                 "typical)", best_gain[i] / SWAP_GAIN, joints)

    # joints far from where the proportions put them
    fj = feature_joints(skel)
    n_limbs = len(skel.limbs)
    evidence = np.zeros((len(items), skel.num_joints))
    with np.errstate(invalid="ignore"):
        ev = np.nan_to_num(np.abs(z), nan=0.0)
        ev[:, :n_limbs] = np.nan_to_num(np.maximum(z[:, :n_limbs], 0.0), nan=0.0)  # only too-long limbs
    for f, joints in enumerate(fj[:z.shape[1]]):
        for j in joints:
            evidence[:, j] = np.maximum(evidence[:, j], ev[:, f])
    # a too-long limb blames both its ends; keep the blame on the end whose own position is odd (when known)
    names = feature_names(skel)
    for i in range(len(items)):
        e = evidence[i].copy()
        for j in explained.get(i, ()):
            e[j] = 0.0
        j = int(np.argmax(e))
        if e[j] >= JOINT_Z:
            worst = int(np.nanargmax(np.where(np.isfinite(z[i]), np.abs(z[i]), -1)))
            far = [int(q) for q in np.flatnonzero(e >= JOINT_Z)]
            flag(i, "joint", f"{skel.joints[j]} is far from where the skeleton's proportions put it "
                 f"({names[worst]}: {abs(z[i, worst]):.1f} robust SDs from the {stats.source}'s typical)",
                 e[j] / JOINT_Z, far)

    # boxes
    for i, (_, _, inst) in enumerate(items):
        pts = kp[i][lab[i]]
        x, y, w, h = inst.bbox
        if len(pts) == 0 or w <= 0 or h <= 0:
            continue
        size = max(w, h, float(np.ptp(pts[:, 0])), float(np.ptp(pts[:, 1])), 1e-6)
        out = np.maximum.reduce([x - pts[:, 0], pts[:, 0] - (x + w), y - pts[:, 1], pts[:, 1] - (y + h),
                                 np.zeros(len(pts))]) / size
        worst = float(out.max())
        if worst > BOX_OUTSIDE:
            outside = np.flatnonzero(lab[i])[out > 0.02]
            if len(outside) <= max(2, len(pts) // 5):  # most joints inside: the odd ones are likely misplaced
                names = ", ".join(skel.joints[j] for j in outside)
                reason = (f"{names} outside the box ({worst:.2f} box sizes out) while the other joints are inside: "
                          "a joint put off the hand, or a box too tight")
            else:
                reason = (f"box does not hold its joints: {len(outside)} of {len(pts)} labelled joints outside it, "
                          f"the farthest {worst:.2f} box sizes out")
            flag(i, "box", reason, worst / BOX_OUTSIDE, outside)
            continue
        if len(pts) >= 3:
            fill = float(max(np.ptp(pts[:, 0]), 1.0) * max(np.ptp(pts[:, 1]), 1.0) / (w * h))
            if fill < BOX_FILL:
                flag(i, "box", f"box is far larger than its joints (they fill {100 * fill:.1f}% of it)",
                     BOX_FILL / max(fill, 1e-3))

    # duplicates
    by_sample: dict[int, list[int]] = {}
    for i, (si, _, _) in enumerate(items):
        by_sample.setdefault(si, []).append(i)
    for members in by_sample.values():
        for a, b in combinations(members, 2):
            common = lab[a] & lab[b]
            if common.sum() < 3:
                continue
            pa, pb = kp[a][common], kp[b][common]
            size = max(float(np.ptp(pa[:, 0])), float(np.ptp(pa[:, 1])), float(np.ptp(pb[:, 0])),
                       float(np.ptp(pb[:, 1])), 1e-6)
            dist = float(np.linalg.norm(pa - pb, axis=1).mean()) / size
            if dist < DUPLICATE_DIST:
                other = ann_ids[items[a][:2]]
                flag(b, "duplicate", f"duplicate of annotation {other} (joints {dist:.3f} hand sizes apart on "
                     "average)", DUPLICATE_DIST / max(dist, DUPLICATE_DIST / 20), duplicate_of=other)

    flags.sort(key=lambda f: -f.score)
    return flags


def _annotation_ids(ds: Dataset) -> dict[tuple[int, int], int | str]:
    """(sample, instance) -> the annotation's id: its COCO id where the file had one, else its 1-based position
    (what `write_coco` would number it)."""
    out: dict[tuple[int, int], int | str] = {}
    n = 0
    for si, s in enumerate(ds.samples):
        for k, inst in enumerate(s.instances):
            n += 1
            got = inst.extras.get("id")
            out[(si, k)] = got if isinstance(got, int | str) and not isinstance(got, bool) else n
    return out


def flags_document(flags: Sequence[Flag], dataset: str = "") -> dict:
    """The JSON document `cpm dataset check --json` writes: {"dataset", "flags": [...]}, most suspicious first."""
    return {"dataset": dataset, "flags": [f.to_dict() for f in flags]}


# ------------------------------------------------------------------------------------------------ reference
def reference_stats(datasets: Sequence[Dataset]) -> Stats:
    """Statistics pooled over several hand21 datasets: how `HAND21_REFERENCE` was made (from the shared data's
    hand_pseudo/train.json and hand_more/train.json)."""
    feats = []
    for ds in datasets:
        _, kp, lab = _arrays(ds)
        feats.append(instance_features(kp, lab, ds.skeleton))
    return learn_stats(np.concatenate(feats), datasets[0].skeleton, "reference")


# Measured by `reference_stats` on hand_pseudo/train.json + hand_more/train.json (1898 hands); NaN: no statistic
# (the frame's own joints, finger joints along the hand). Order: `feature_names(HAND_21)`.
_REF_MEDIAN: list[float] = [
    0.2884, 0.2281, -0.0024, -0.2348, 1.0876, 0.3469, -0.2927, -0.4487, 1.0378, 0.3545, -0.3022, -0.4579, 0.9942,
    0.2429, -0.4330, -0.5092, 0.9454, 0.0240, -0.4657, -0.5719, float("nan"), float("nan"), -1.0701, 0.7291, -1.7057,
    1.7758, -2.0201, float("nan"), -2.1341, float("nan"), -0.8429, 2.8482, -0.8554, float("nan"), -0.9025,
    float("nan"), -0.9047, float("nan"), float("nan"), float("nan"), 0.0917, float("nan"), 0.0605, float("nan"),
    -0.0041, float("nan"), 0.7305, 2.6224, 0.8718, float("nan"), 0.7084, float("nan"), 0.5898, float("nan"), 1.3427,
    2.2391, 1.6846, float("nan"), 1.8923, float("nan"), 1.8043, float("nan"),
]
_REF_SPREAD: list[float] = [
    0.2343, 0.2053, 0.1347, 0.2163, 0.2779, 0.2164, 0.3084, 0.2171, 0.2956, 0.2124, 0.4759, 0.3060, 0.3021, 0.2334,
    0.5379, 0.2849, 0.2859, 0.2230, 0.2986, 0.2413, float("nan"), float("nan"), 0.3171, 0.3767, 0.5927, 0.5574,
    1.2292, float("nan"), 1.7719, float("nan"), 0.2139, 0.8521, 0.5222, float("nan"), 0.7176, float("nan"), 0.7471,
    float("nan"), float("nan"), float("nan"), 0.4678, float("nan"), 0.7587, float("nan"), 0.8305, float("nan"),
    0.1576, 0.8359, 0.5427, float("nan"), 0.8214, float("nan"), 0.9184, float("nan"), 0.3126, 0.7553, 0.6532,
    float("nan"), 0.7858, float("nan"), 1.1162, float("nan"),
]


def hand21_reference() -> Stats:
    """The built-in hand21 statistics, for hand datasets too small to learn their own."""
    return Stats(np.array(_REF_MEDIAN, dtype=np.float64), np.array(_REF_SPREAD, dtype=np.float64), "reference")


# ------------------------------------------------------------------------------------------------ command line
def register_check(subparsers: argparse._SubParsersAction, add_read_options=None) -> argparse.ArgumentParser:
    """Add `check` to the `cpm dataset` subcommands (`add_read_options` adds the shared --from/--skeleton/...)."""
    p = subparsers.add_parser("check", help="flag labels that are probably wrong (swaps, far joints, boxes, "
                              "duplicates); exit status 1 when anything is flagged",
                              description="Flag likely label errors, most suspicious first: swapped fingers or "
                              "left/right joints, joints far from where the skeleton's proportions put them, boxes "
                              "that do not hold their joints, duplicate instances. Exit status: 0 clean, 1 flags, "
                              "2 error.")
    p.add_argument("input", help="dataset (COCO .json, annotation project, labels folder, ...)")
    p.add_argument("--json", default=None, metavar="OUT", help="write all flags to this JSON file")
    p.add_argument("--top", type=int, default=20, metavar="N",
                   help="print at most N flags (default 20; the JSON holds them all)")
    if add_read_options is not None:
        add_read_options(p)
    p.set_defaults(func=run_check)
    return p


def run_check(args: argparse.Namespace) -> int:
    """`cpm dataset check`: 0 when nothing is flagged, 1 when something is, 2 when the dataset cannot be read."""
    from cpm_core.dataset.commands import _error, _read, _warn_issues  # noqa: PLC0415 - commands imports this module
    from cpm_core.dataset.issues import DatasetFormatError  # noqa: PLC0415

    if args.top < 0:
        print(f"cpm dataset check: error: --top must be 0 or more, got {args.top}", file=sys.stderr)
        return 2
    try:
        ds = _read(args)
        _warn_issues("check", ds)
        stats = dataset_stats(ds)
        flags = check_dataset(ds, stats)
        if args.json:
            atomic_write_text(args.json, json.dumps(flags_document(flags, str(args.input)), indent=1) + "\n")
    except (DatasetFormatError, OSError, ValueError, KeyError) as exc:
        return _error("check", exc)
    where = "its own labels" if stats.source == "dataset" else "built-in reference proportions (too few labels)"
    print(f"{ds.num_instances} instances in {ds.num_images} images checked against {where}: "
          f"{len(flags)} flagged" + (f"; all flags in {args.json}" if args.json else ""))
    for f in flags[:args.top]:
        print(f"  {f.score:6.2f}  {f.kind:9s} annotation {f.annotation_id} in {f.image}: {f.reason}")
    if len(flags) > args.top:
        print(f"  ... and {len(flags) - args.top} more")
    return 1 if flags else 0
