"""Running an upright model: the 4-way angle search, the palm detector's hint and the `UprightFollower`.

Models trained on upright crops (card `provenance.orientation = "upright"`, e.g. the default hand model) must
see each subject turned the way they were trained; this module finds that angle (and, for a model trained on
one chirality, the side) and follows it from frame to frame. `cpm infer`, `cpm eval`, the app's live pipeline
and assisted labelling all go through it. The angle and chirality rules themselves are the leaf module
`cpm_core.orientation`; this one sits above it and above the palm detector (`cpm_core.detection.palm`), which
it imports directly, so neither imports the other back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cpm_core.detection.base import Detection
from cpm_core.detection.palm import PALM_FAR_SIDE, PALM_MIDDLE, PALM_THUMB_SIDE, PALM_WRIST, PalmDetector
from cpm_core.orientation import angle_of, model_chirality, model_orientation, pose_angle, thumb_on_right, wrap
from cpm_core.preprocess import CropBox, CropTransform
from cpm_core.presence import THRESHOLD as PRESENCE_THRESHOLD

if TYPE_CHECKING:  # annotations only: the follower also drives duck-typed estimators (bench/pipeline.py's teacher)
    from cpm_core.estimator import PoseEstimator, PoseResult

SEARCH_ANGLES = (0.0, 90.0, 180.0, 270.0)  # a model trained within +-45 degrees of upright covers one of these


def _confidence(result) -> float:
    conf = np.nan_to_num(np.asarray(result.keypoints[:, 2], np.float64), nan=0.0)
    return float(conf.mean())


def _turned(box: CropBox, angle: float, mirror: bool = False) -> CropBox:
    return CropBox(box.cx, box.cy, box.side, wrap(angle), bool(mirror))


def palm_hint(palm: PalmDetector, frame: np.ndarray, box: CropBox,
              context: float = 1.25) -> tuple[float, bool, CropBox] | None:
    """What the palm detector says about the hand in `box`: (angle, thumb side on the right, the hand's crop
    box in frame pixels as MediaPipe grows it from the palm), or None when it finds no palm there. The
    detector looks at `context` x the box, upright, at 256 pixels."""
    found = best_palm(palm, frame, box, context)
    if found is None:
        return None
    best, kp, tr = found
    angle = angle_of(kp[PALM_MIDDLE] - kp[PALM_WRIST])  # in frame pixels: the card's PCK was measured so
    c = best.crop
    cx, cy = tr.to_frame(np.array([[c.cx, c.cy]]))[0]
    hand = CropBox(float(cx), float(cy), c.side * tr.box.side / tr.size, angle)
    return angle, thumb_on_right(kp, angle, PALM_THUMB_SIDE, PALM_FAR_SIDE), hand


def best_palm(palm: PalmDetector, frame: np.ndarray, box: CropBox,
              context: float = 1.25) -> tuple[Detection, np.ndarray, CropTransform] | None:
    """The best-scoring palm the detector finds in `context` x `box` (looked at upright, at 256 pixels): the
    detection in that view, its 7 keypoints in frame pixels, and the view's transform; None when there is none.
    What `palm_hint` reads its angle and side from (bench/palm_side.py looks at the keypoints themselves)."""
    tr = CropTransform(CropBox(box.cx, box.cy, box.side * context), 256)
    found = palm.detect(tr.apply(frame))
    if not found:
        return None
    best = max(found, key=lambda d: d.score)
    return best, tr.to_frame(np.asarray(best.keypoints, np.float64)), tr


def search_upright(estimator: PoseEstimator, frame: np.ndarray, crop: CropBox | None = None, refine: bool = True,
                   palm: PalmDetector | None = None, blind: bool = True) -> PoseResult:
    """Pose of a subject whose angle (and, for a canonical-chirality model, side) is unknown.

    With a palm detector that finds the hand, its keypoints give angle and side (as in MediaPipe's pipeline),
    and, when no crop is given, its hand box gives the crop. Otherwise the crop (default: the whole frame) is
    tried at four right angles (and both mirrorings for a canonical model) in one batch and the most
    confident answer wins. Either way one more pass at the angle of the pose found gives the result (an
    upright model is most accurate within a few degrees of upright); its crop carries the angle and
    mirroring used, which a follower keeps for the next frame. `blind=False`: where the palm detector finds
    nothing, one crop at the given angle instead of the eight-crop search (what a follower does on most frames
    while nothing is in view)."""
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
    elif not blind:  # one look at the crop as it is: no angle was searched, so none to refine
        best = estimator.predict(frame, base)
    else:
        boxes = [_turned(base, base.angle + a, m) for a in SEARCH_ANGLES for m in ((False, True) if canonical
                                                                                    else (False,))]
        results = estimator.predict_batch([frame] * len(boxes), boxes, batch_size=len(boxes))
        best = max(results, key=_confidence)
    result = best
    if refine and best.valid and (hint is not None or blind):  # an angle was found: look again along it
        mirror = best.crop.box.mirror
        refined = estimator.predict(frame, _turned(base, pose_angle(best.keypoints, estimator.card.skeleton), mirror))
        if refined.valid and _confidence(refined) >= 0.5 * _confidence(best):
            result = refined
    result.oriented_by = "palm" if hint is not None else "search"
    return result


def pose_box(keypoints: np.ndarray, margin: float, min_confidence: float = 0.1) -> CropBox:
    """The square crop around a pose's confident joints, `margin` x their extent (the training crop rule)."""
    kp = np.asarray(keypoints, np.float64)
    ok = np.isfinite(kp).all(axis=1) & (kp[:, 2] >= min_confidence)
    pts = kp[ok if ok.sum() >= 3 else np.isfinite(kp).all(axis=1), :2]
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    return CropBox.around(x0, y0, x1, y1, margin)


def default_palm_detector() -> PalmDetector | None:
    """The bundled palm detector, or None where it cannot run (then searches do without it)."""
    try:
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

    def __init__(self, estimator: PoseEstimator, min_confidence: float = 0.2, recheck_every: int = 30,
                 palm: PalmDetector | str | None = "auto"):
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
        # While nothing is in view (`reset(absent=True)`), the palm detector still looks at every frame, but the
        # eight-crop search without it (~5x a frame's model time) runs only every `blind_every` frames: an empty
        # scene cost the live pipeline a third of its frame rate, and a hand the palm detector misses is still
        # found within this many frames.
        self.blind_every = 5
        self._absent_frames = -1  # frames since the last full search while nothing is in view; -1: not absent
        self._by_palm = False  # whether the last search's angle and side came from the palm detector

    def reset(self, absent: bool = False) -> None:
        """Forget the subject's angle and crop. `absent`: because nothing is in view (the next searches run the
        palm detector but the blind search only every `blind_every` frames); else a new stream or a seek."""
        self.angle = None
        self.box = None
        self._absent_frames = max(self._absent_frames, 0) if absent else -1

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

    def predict(self, frame: np.ndarray, crop: CropBox | None = None) -> PoseResult:
        est = self.estimator
        if not self.upright:
            return est.predict(frame, crop)
        follow_box = crop is None
        # A side the model had to guess (no palm found) is checked again soon; one the palm gave, every
        # `recheck_every` frames.
        every = self.recheck_every if self._by_palm or self.palm is None else min(self.recheck_every, 5)
        if self.angle is None or (every and self._since_search >= every):
            blind = self._absent_frames < 0 or self._absent_frames % max(1, self.blind_every) == 0
            result = search_upright(est, frame, crop, palm=self.palm, blind=blind)
            if self._absent_frames >= 0:
                self._absent_frames += 1
            self._by_palm = result.oriented_by == "palm"
            self.searches += 1
            self._since_search = 0
        else:
            box = self.box if follow_box and self.box is not None else est.transform_for(frame, crop).box
            result = est.predict(frame, _turned(box, self.angle, self.mirror))
            result.oriented_by = "followed"
            self._since_search += 1
        if self._absent_frames >= 0 and result.presence >= PRESENCE_THRESHOLD:
            self._absent_frames = -1  # in view again: searches are whole again when next needed
        if result.valid and _confidence(result) >= self.min_confidence:
            self.angle = pose_angle(result.keypoints, est.card.skeleton)
            self.mirror = result.crop.box.mirror
            self.box = pose_box(result.keypoints, self.margin) if follow_box else None
        else:
            self.angle, self.box = None, None
        return result
