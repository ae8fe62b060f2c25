"""Which way a subject points, so a model can be fed upright crops.

A small CPM that must find a hand at every angle spends its capacity on rotation; MediaPipe's landmark models
instead see the hand rotated upright (wrist at the bottom, fingers up) and are far more accurate for their
size. Models trained that way say so on their card (`provenance.orientation = "upright"`). The angle
convention is `CropBox.angle`: degrees clockwise in image coordinates, so a crop with the subject's angle
shows the subject upright.
"""

from __future__ import annotations

import math

import numpy as np

from cpm_core.skeleton import Skeleton

# (base joint, tip joint): the direction base -> tip is the subject's "up". The hand's wrist -> middle-finger
# base is what MediaPipe's palm detector aligns to.
_AXES: dict[str, tuple[int, int]] = {"hand21": (0, 9)}
# (thumb-side joint, far-side joint) across the palm: index and little-finger bases. In a canonical crop the
# thumb side is on the left; a hand whose thumb side is on the right (the other hand, or the same hand seen
# from the other side) is shown mirrored, so the model never has to tell the two apart.
_SIDES: dict[str, tuple[int, int]] = {"hand21": (5, 17)}


def orientation_axis(skeleton: Skeleton) -> tuple[int, int]:
    """The joint pair that defines 'up' for this skeleton; ValueError if it has none."""
    if skeleton.name in _AXES:
        return _AXES[skeleton.name]
    if skeleton.num_joints == 21:
        return _AXES["hand21"]
    raise ValueError(f"upright crops need a known 'up' direction; skeleton {skeleton.name!r} has none "
                     f"(known: {', '.join(_AXES)})")


def angle_of(direction: np.ndarray) -> float:
    """CropBox angle (degrees) that turns the image vector `direction` to point up."""
    dx, dy = float(direction[0]), float(direction[1])
    return math.degrees(math.atan2(dx, -dy))


def label_angle(keypoints: np.ndarray, labelled: np.ndarray, skeleton: Skeleton) -> float | None:
    """Angle of a labelled subject (None when the axis joints are not labelled)."""
    base, tip = orientation_axis(skeleton)
    if not (labelled[base] and labelled[tip]):
        return None
    d = np.asarray(keypoints[tip], np.float64) - np.asarray(keypoints[base], np.float64)
    if not np.isfinite(d).all() or float(np.hypot(*d)) < 1e-6:
        return None
    return angle_of(d)


def _sides(skeleton: Skeleton) -> tuple[int, int]:
    orientation_axis(skeleton)
    return _SIDES.get(skeleton.name, _SIDES["hand21"])


def thumb_on_right(points: np.ndarray, angle: float, near: int, far: int) -> bool:
    """Whether, in a crop turned by `angle`, point `near` (thumb side) lies right of point `far`."""
    a = math.radians(angle)
    d = np.asarray(points[near], np.float64) - np.asarray(points[far], np.float64)
    return bool(d[0] * math.cos(a) + d[1] * math.sin(a) > 0)  # x component after rotating by -angle


def label_mirror(keypoints: np.ndarray, labelled: np.ndarray, skeleton: Skeleton, angle: float) -> bool | None:
    """Whether a labelled subject must be mirrored to show its thumb side on the left (None: not labelled)."""
    near, far = _sides(skeleton)
    if not (labelled[near] and labelled[far]):
        return None
    return thumb_on_right(keypoints, angle, near, far)


def pose_angle(keypoints: np.ndarray, skeleton: Skeleton) -> float:
    """Angle of a predicted pose (J, 2 or 3), measured exactly as `label_angle` measures a label, so a model
    trained on label-upright crops sees the same 'upright' when the angle comes from its own last pose."""
    base, tip = orientation_axis(skeleton)
    xy = np.asarray(keypoints[:, :2], np.float64)
    return angle_of(xy[tip] - xy[base])


def wrap(angle: float) -> float:
    """Angle in (-180, 180]."""
    a = math.fmod(angle + 180.0, 360.0)
    if a <= 0:
        a += 360.0
    return a - 180.0


# --- running an upright model -------------------------------------------------------------------------------

SEARCH_ANGLES = (0.0, 90.0, 180.0, 270.0)  # a model trained within +-45 degrees of upright covers one of these
PALM_THUMB_SIDE, PALM_FAR_SIDE = 1, 4  # the palm detector's index-finger and little-finger base keypoints
PALM_WRIST, PALM_MIDDLE = 0, 2


def model_orientation(card) -> str:
    """'upright' for models trained on upright crops, else 'any' (the port's models, older cards)."""
    return str((card.provenance or {}).get("orientation") or "any")


def model_chirality(card) -> str:
    """'canonical' for models trained on crops mirrored to one chirality (thumb side left), else 'any'."""
    return str((card.provenance or {}).get("chirality") or "any")


def _confidence(result) -> float:
    conf = np.nan_to_num(np.asarray(result.keypoints[:, 2], np.float64), nan=0.0)
    return float(conf.mean())


def _turned(box, angle: float, mirror: bool = False):
    from cpm_core.preprocess import CropBox

    return CropBox(box.cx, box.cy, box.side, wrap(angle), bool(mirror))


def palm_hint(palm, frame: np.ndarray, box, context: float = 1.25):
    """What the palm detector says about the hand in `box`: (angle, thumb side on the right, the hand's crop
    box in frame pixels as MediaPipe grows it from the palm), or None when it finds no palm there. The
    detector looks at `context` x the box, upright, at 256 pixels."""
    from cpm_core.preprocess import CropBox, CropTransform

    tr = CropTransform(CropBox(box.cx, box.cy, box.side * context), 256)
    found = palm.detect(tr.apply(frame))
    if not found:
        return None
    best = max(found, key=lambda d: d.score)
    kp = tr.to_frame(np.asarray(best.keypoints, np.float64))
    angle = angle_of(kp[PALM_MIDDLE] - kp[PALM_WRIST])  # in frame pixels: the card's PCK was measured so
    c = best.crop
    cx, cy = tr.to_frame(np.array([[c.cx, c.cy]]))[0]
    hand = CropBox(float(cx), float(cy), c.side * tr.box.side / tr.size, angle)
    return angle, thumb_on_right(kp, angle, PALM_THUMB_SIDE, PALM_FAR_SIDE), hand


def search_upright(estimator, frame: np.ndarray, crop=None, refine: bool = True, palm=None):
    """Pose of a subject whose angle (and, for a canonical-chirality model, side) is unknown.

    With a palm detector that finds the hand, its keypoints give angle and side (as in MediaPipe's pipeline),
    and, when no crop is given, its hand box gives the crop. Otherwise the crop (default: the whole frame) is
    tried at four right angles (and both mirrorings for a canonical model) in one batch and the most
    confident answer wins. Either way one more pass at the angle of the pose found gives the result (an
    upright model is most accurate within a few degrees of upright); its crop carries the angle and
    mirroring used, which a follower keeps for the next frame."""
    base = estimator.transform_for(frame, crop).box
    canonical = model_chirality(estimator.card) == "canonical"
    # A given crop is widened a little for the detector (a hand filling it may reach its edges); the whole frame
    # is looked at as it is.
    hint = palm_hint(palm, frame, base, 1.25 if crop is not None else 1.0) if palm is not None else None
    if hint is not None:
        angle, mirror, hand = hint
        if crop is None:
            base = hand
        best = estimator.predict(frame, _turned(base, angle, canonical and mirror))
    else:
        boxes = [_turned(base, base.angle + a, m) for a in SEARCH_ANGLES for m in ((False, True) if canonical
                                                                                    else (False,))]
        results = estimator.predict_batch([frame] * len(boxes), boxes, batch_size=len(boxes))
        best = max(results, key=_confidence)
    result = best
    if refine and best.valid:
        mirror = best.crop.box.mirror
        refined = estimator.predict(frame, _turned(base, pose_angle(best.keypoints, estimator.card.skeleton), mirror))
        if refined.valid and _confidence(refined) >= 0.5 * _confidence(best):
            result = refined
    result.oriented_by = "palm" if hint is not None else "search"
    return result


def pose_box(keypoints: np.ndarray, margin: float, min_confidence: float = 0.1):
    """The square crop around a pose's confident joints, `margin` x their extent (the training crop rule)."""
    from cpm_core.preprocess import CropBox

    kp = np.asarray(keypoints, np.float64)
    ok = np.isfinite(kp).all(axis=1) & (kp[:, 2] >= min_confidence)
    pts = kp[ok if ok.sum() >= 3 else np.isfinite(kp).all(axis=1), :2]
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    return CropBox.around(x0, y0, x1, y1, margin)


def default_palm_detector():
    """The bundled palm detector, or None where it cannot run (then searches do without it)."""
    try:
        from cpm_core.detection.palm import PalmDetector

        return PalmDetector()
    except Exception:  # noqa: BLE001 - a missing or unloadable detector only costs accuracy
        return None


class UprightFollower:
    """Feeds a stream's frames to an estimator the way its model was trained.

    For an upright model it finds the subject's angle (and side, for a canonical-chirality model) on the first
    frame, whenever the pose's mean confidence falls below `min_confidence`, and every `recheck_every` frames
    (a hand can turn from palm to back without losing confidence); in between it turns each crop by the angle
    of the last pose, as MediaPipe's hand tracking does, so a video costs one pass a frame. When the caller
    gives no crop, the crop follows the hand too (the palm detector's box, then the last pose's joints grown
    by the model's training margin). Any other model runs unchanged. `palm`: a palm detector for the
    searches ("auto": the bundled one, for hand models).
    """

    def __init__(self, estimator, min_confidence: float = 0.2, recheck_every: int = 30, palm="auto"):
        self.estimator = estimator
        self.min_confidence = float(min_confidence)
        self.recheck_every = int(recheck_every)
        self.upright = model_orientation(estimator.card) == "upright"
        if palm == "auto":
            palm = default_palm_detector() if self.upright and estimator.card.skeleton.num_joints == 21 else None
        self.palm = palm
        self.angle: float | None = None
        self.mirror = False
        self.box = None  # the followed crop when the caller gives none
        self.margin = float((estimator.card.provenance or {}).get("crop_margin") or 1.6)
        self.searches = 0  # how often angle and side were searched for (a measure of how well it follows)
        self._since_search = 0
        self._by_palm = False  # whether the last search's angle and side came from the palm detector

    def reset(self) -> None:
        self.angle = None
        self.box = None

    def warm_up(self) -> None:
        """Run every path once on a blank frame (the palm detector, the batched search graph, the single
        graph), so a source's first frame does not pay for loading and tracing them (about 0.4 s here), then
        forget the blank frame."""
        s = self.estimator.spec.input_size
        blank = np.full((2 * s, 2 * s, 3), 128, np.uint8)
        if self.upright:
            search_upright(self.estimator, blank, palm=self.palm)
        self.estimator.run_raw(np.full((1, s, s, 3), 128, np.uint8))
        self.reset()

    def predict(self, frame: np.ndarray, crop=None):
        est = self.estimator
        if not self.upright:
            return est.predict(frame, crop)
        follow_box = crop is None
        # A side the model had to guess (no palm found) is checked again soon; one the palm gave, every
        # `recheck_every` frames.
        every = self.recheck_every if self._by_palm or self.palm is None else min(self.recheck_every, 5)
        if self.angle is None or (every and self._since_search >= every):
            result = search_upright(est, frame, crop, palm=self.palm)
            self._by_palm = result.oriented_by == "palm"
            self.searches += 1
            self._since_search = 0
        else:
            box = self.box if follow_box and self.box is not None else est.transform_for(frame, crop).box
            result = est.predict(frame, _turned(box, self.angle, self.mirror))
            result.oriented_by = "followed"
            self._since_search += 1
        if result.valid and _confidence(result) >= self.min_confidence:
            self.angle = pose_angle(result.keypoints, est.card.skeleton)
            self.mirror = result.crop.box.mirror
            self.box = pose_box(result.keypoints, self.margin) if follow_box else None
        else:
            self.angle, self.box = None, None
        return result
