"""Upright crops: the angle convention, labelled and predicted angles, the 4-way search and the follower."""

import math
import os

import numpy as np
import pytest

from cpm_core.estimator import PoseResult
from cpm_core.model_card import ModelCard
from cpm_core.orientation import label_angle, model_orientation, pose_angle, wrap
from cpm_core.preprocess import CropBox, CropTransform
from cpm_core.skeleton import COCO_17, HAND_21
from cpm_core.spec import get_preset
from cpm_core.upright import SEARCH_ANGLES, UprightFollower, search_upright

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def upright_hand(cx: float = 100.0, cy: float = 100.0, size: float = 40.0) -> np.ndarray:
    """A schematic upright hand (J, 2): wrist at the bottom, five fingers fanning upwards."""
    kp = np.zeros((21, 2))
    kp[0] = (0.0, size)
    for f in range(5):
        x = (f - 2) * size * 0.25
        for k in range(4):
            kp[1 + 4 * f + k] = (x * (1 + 0.2 * k), size * (0.3 - 0.35 * k))
    return kp + (cx, cy)


def rotate(points: np.ndarray, degrees: float, centre=(100.0, 100.0)) -> np.ndarray:
    """Rotate image points clockwise (y down) by `degrees` about `centre`."""
    a = math.radians(degrees)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (points - centre) @ r.T + centre


@pytest.mark.parametrize("turn", [0.0, 35.0, 90.0, 180.0, -120.0])
def test_label_and_pose_angles_measure_the_turn(turn):
    kp = rotate(upright_hand(), turn)
    labelled = np.ones(21, bool)
    assert abs(wrap(label_angle(kp, labelled, HAND_21) - turn)) < 1e-6
    pose = np.concatenate([kp, np.full((21, 1), 0.9)], axis=1)
    assert abs(wrap(pose_angle(pose, HAND_21) - turn)) < 1e-6


def test_a_crop_at_the_label_angle_shows_the_hand_upright():
    kp = rotate(upright_hand(), 140.0)
    angle = label_angle(kp, np.ones(21, bool), HAND_21)
    tr = CropTransform(CropBox(100.0, 100.0, 120.0, angle), 128)
    wrist, middle = tr.to_input(kp[[0, 9]])
    assert abs(wrist[0] - middle[0]) < 1e-6 and wrist[1] > middle[1]  # wrist straight below the middle finger


def test_missing_axis_joints_and_unknown_skeletons():
    kp = upright_hand()
    labelled = np.ones(21, bool)
    labelled[9] = False
    assert label_angle(kp, labelled, HAND_21) is None
    with pytest.raises(ValueError, match="coco17"):
        label_angle(np.zeros((17, 2)), np.ones(17, bool), COCO_17)
    assert wrap(190.0) == pytest.approx(-170.0) and wrap(-180.0) == pytest.approx(180.0)


class AngleSensitiveEstimator:
    """A stand-in for an upright model: it sees the true hand, and is confident only when the crop's angle is
    within 45 degrees of the hand's, as a model trained on upright crops with that much jitter is."""

    def __init__(self, true_angle: float, orientation: str = "upright"):
        self.true_angle = true_angle
        self.card = ModelCard.for_spec(get_preset("hand-rt-128x3"), provenance={"orientation": orientation})
        self.spec = self.card.spec
        self.calls: list[float] = []
        self.boxes: list[CropBox] = []
        self.keypoints = rotate(upright_hand(), true_angle)

    def transform_for(self, frame, crop):
        h, w = frame.shape[:2]
        return CropTransform(crop or CropBox.letterbox(w, h), self.spec.input_size)

    def predict(self, frame, crop=None):
        tr = self.transform_for(frame, crop)
        self.calls.append(tr.box.angle)
        self.boxes.append(tr.box)
        off = abs(wrap(tr.box.angle - self.true_angle))
        conf = max(0.05, 0.9 - off / 100.0)
        kp = self.keypoints if off <= 45 else rotate(self.keypoints, 180.0)  # lost: a wrong, upside-down guess
        pose = np.concatenate([kp, np.full((21, 1), conf)], axis=1).astype(np.float32)
        return PoseResult(pose, np.zeros((1, 4, 4, 22), np.float32), tr)

    def predict_batch(self, frames, crops, batch_size=8):
        return [self.predict(f, c) for f, c in zip(frames, crops)]


@pytest.mark.parametrize("true_angle", [0.0, 60.0, 170.0, -100.0])
def test_search_finds_the_angle_and_refines_to_it(true_angle):
    est = AngleSensitiveEstimator(true_angle)
    frame = np.zeros((200, 200, 3), np.uint8)
    result = search_upright(est, frame, CropBox(100.0, 100.0, 120.0))
    assert len(est.calls) == len(SEARCH_ANGLES) + 1  # one batch of rotations, one refining pass
    assert abs(wrap(result.crop.box.angle - true_angle)) < 1.0
    np.testing.assert_allclose(result.keypoints[:, :2], est.keypoints, atol=1e-4)


def test_follower_searches_once_then_turns_with_the_subject():
    est = AngleSensitiveEstimator(30.0)
    follower = UprightFollower(est)
    frame = np.zeros((200, 200, 3), np.uint8)
    for angle in (30.0, 45.0, 60.0, 75.0, 90.0):  # the hand turns 15 degrees a frame
        est.true_angle, est.keypoints = angle, rotate(upright_hand(), angle)
        result = follower.predict(frame, CropBox(100.0, 100.0, 120.0))
        assert abs(wrap(result.crop.box.angle - angle)) < 15.01
    assert follower.searches == 1
    est.true_angle, est.keypoints = -150.0, rotate(upright_hand(), -150.0)  # a sudden flip loses it ...
    follower.predict(frame, CropBox(100.0, 100.0, 120.0))
    follower.predict(frame, CropBox(100.0, 100.0, 120.0))  # ... and the next frame searches again
    assert follower.searches == 2 and abs(wrap(follower.angle + 150.0)) < 1.0


def test_with_nothing_in_view_the_blind_search_runs_only_every_few_frames():
    """After `reset(absent=True)` (the live pipeline saw no subject) a frame without a palm costs one crop, and the
    eight-way search runs every `blind_every` frames; a new stream, or a subject in view again, searches whole."""
    est = AngleSensitiveEstimator(30.0)
    follower = UprightFollower(est, palm=None)
    frame = np.zeros((200, 200, 3), np.uint8)
    crop = CropBox(100.0, 100.0, 120.0)
    full = len(SEARCH_ANGLES) + 1  # the rotations and the refining pass
    per_frame = []
    for _ in range(10):
        follower.reset(absent=True)
        before = len(est.calls)
        follower.predict(frame, crop)
        per_frame.append(len(est.calls) - before)
    assert per_frame == [full, 1, 1, 1, 1, full, 1, 1, 1, 1]
    follower.reset()  # a new stream: whole search at once
    before = len(est.calls)
    follower.predict(frame, crop)
    assert len(est.calls) - before == full
    follower.reset(absent=True)
    follower.predict(frame, crop)  # the stand-in's results have no heatmaps: presence 0, still absent
    follower.reset(absent=True)
    before = len(est.calls)
    follower.predict(frame, crop)
    assert len(est.calls) - before == 1


def test_without_a_crop_the_follower_follows_the_hand_with_the_training_margin():
    from cpm_core.upright import pose_box

    est = AngleSensitiveEstimator(0.0)
    follower = UprightFollower(est, palm=None)
    frame = np.zeros((200, 200, 3), np.uint8)
    follower.predict(frame)  # searched on the whole frame
    box = pose_box(np.concatenate([est.keypoints, np.full((21, 1), 0.9)], 1), 1.6)
    assert follower.box == box
    x0, y0 = est.keypoints.min(axis=0)
    x1, y1 = est.keypoints.max(axis=0)
    assert box.side == pytest.approx(1.6 * max(x1 - x0, y1 - y0))
    follower.predict(frame)  # the next frame: one pass on the followed box, turned by the last pose's angle
    used = est.boxes[-1]
    assert (used.cx, used.cy, used.side) == pytest.approx((box.cx, box.cy, box.side))
    assert follower.searches == 1 and len(est.calls) == len(SEARCH_ANGLES) + 2


def test_models_without_the_upright_mark_run_unchanged():
    est = AngleSensitiveEstimator(90.0, orientation="any")
    assert model_orientation(est.card) == "any"
    follower = UprightFollower(est)
    follower.predict(np.zeros((50, 50, 3), np.uint8))
    assert est.calls == [0.0] and follower.searches == 0


def test_upright_cache_turns_every_labelled_hand_upright():
    from training.data import build_cache, load_datasets

    ds = load_datasets([os.path.join(FIXTURES, "dataset", "tiny_coco", "tiny.json")])
    cache = build_cache(ds, 64, 1.5, 1.6, orientation="upright")
    checked = 0
    for kp, vis in zip(cache.keypoints, cache.visibility):
        if vis[0] > 0 and vis[9] > 0:
            assert abs(kp[0, 0] - kp[9, 0]) < 1e-3 and kp[0, 1] > kp[9, 1]
            checked += 1
    assert checked >= 1
    with pytest.raises(ValueError, match="orientation"):
        build_cache(ds, 64, 1.5, 1.6, orientation="sideways")


def test_a_mirrored_crop_maps_points_both_ways_and_shows_the_mirror_image():
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[40:50, 20:30] = 255
    plain, mirrored = (CropTransform(CropBox(50.0, 50.0, 100.0, 30.0, m), 64) for m in (False, True))
    a, b = plain.apply(frame), mirrored.apply(frame)
    diff = np.abs(a[:, ::-1].astype(int) - b.astype(int))  # OpenCV samples at 1/32-pixel precision
    assert diff.max() <= 8 and diff.mean() < 0.5 and (b > 128).any()
    p = np.array([[24.5, 44.5], [70.0, 10.0]])
    np.testing.assert_allclose(mirrored.to_input(p)[:, 0], 63 - plain.to_input(p)[:, 0])
    np.testing.assert_allclose(mirrored.to_frame(mirrored.to_input(p)), p)


@pytest.mark.parametrize("turn", [0.0, 70.0, 180.0, -135.0])
def test_label_mirror_tells_the_two_chiralities_apart_at_any_angle(turn):
    from cpm_core.orientation import label_mirror

    left = upright_hand()  # thumb (joints 1-4) and index base (5) on the left of the little-finger base (17)
    right = left.copy()
    right[:, 0] = 200.0 - right[:, 0]  # the mirror image: thumb side on the right
    labelled = np.ones(21, bool)
    for kp, expected in ((left, False), (right, True)):
        kp = rotate(kp, turn)
        angle = label_angle(kp, labelled, HAND_21)
        assert label_mirror(kp, labelled, HAND_21, angle) is expected
        tr = CropTransform(CropBox(100.0, 100.0, 120.0, angle, expected), 128)
        shown = tr.to_input(kp)
        assert shown[5, 0] < shown[17, 0]  # canonical: thumb side on the left, whatever the input
    labelled[17] = False
    assert label_mirror(left, labelled, HAND_21, 0.0) is None


def test_canonical_cache_shows_every_hand_upright_with_the_thumb_side_left():
    from training.data import build_cache, load_datasets

    ds = load_datasets([os.path.join(FIXTURES, "dataset", "tiny_coco", "tiny.json")])
    cache = build_cache(ds, 64, 1.5, 1.6, orientation="upright", chirality="canonical")
    for kp, vis in zip(cache.keypoints, cache.visibility):
        if vis[0] and vis[9] and vis[5] and vis[17]:
            assert kp[0, 1] > kp[9, 1] and kp[5, 0] < kp[17, 0]
    with pytest.raises(ValueError, match="upright"):
        build_cache(ds, 64, 1.5, 1.6, orientation="any", chirality="canonical")


def test_search_over_sides_finds_the_mirror_a_canonical_model_needs():
    class SideSensitive(AngleSensitiveEstimator):
        """Confident only on an upright crop that shows the thumb side on the left (this hand needs mirroring)."""

        def predict(self, frame, crop=None):
            result = super().predict(frame, crop)
            if not result.crop.box.mirror:
                result.keypoints[:, 2] *= 0.3
            return result

    est = SideSensitive(120.0)
    est.card.provenance["chirality"] = "canonical"
    result = search_upright(est, np.zeros((200, 200, 3), np.uint8), CropBox(100.0, 100.0, 120.0))
    assert len(est.calls) == 2 * len(SEARCH_ANGLES) + 1
    assert result.crop.box.mirror and abs(wrap(result.crop.box.angle - 120.0)) < 1.0


def test_palm_hint_gives_angle_and_side_of_a_real_hand():
    """The bundled palm detector on a real upright hand photo, turned by 90 degrees and mirrored."""
    import cv2

    from cpm_core.upright import default_palm_detector, palm_hint

    palm = default_palm_detector()
    assert palm is not None
    frame = cv2.imread(os.path.join(FIXTURES, "media", "hand.jpg"))
    h, w = frame.shape[:2]
    box = CropBox(w / 2, h / 2, float(max(w, h)))
    angle0, right0, hand0 = palm_hint(palm, frame, box)
    assert 0 < hand0.cx < w and 0 < hand0.cy < h and 0.1 * max(w, h) < hand0.side < max(w, h)
    turned = cv2.rotate(frame, cv2.ROTATE_90_CLOCKWISE)
    angle1, right1, hand1 = palm_hint(palm, turned, CropBox(h / 2, w / 2, float(max(w, h))))
    assert abs(wrap(angle1 - angle0 - 90.0)) < 20.0 and right1 == right0
    assert abs(hand1.cx - (h - 1 - hand0.cy)) < 0.1 * hand0.side and abs(hand1.cy - hand0.cx) < 0.1 * hand0.side
    angle2, right2, _ = palm_hint(palm, frame[:, ::-1].copy(), box)
    assert right2 != right0 and abs(wrap(angle2 + angle0)) < 20.0



@pytest.mark.parametrize("palm_finds", [True, False])
def test_a_guessed_side_is_checked_again_sooner_than_one_the_palm_gave(monkeypatch, palm_finds):
    import cpm_core.upright as upright

    est = AngleSensitiveEstimator(20.0)
    hint = (20.0, False, CropBox(100.0, 100.0, 120.0, 20.0)) if palm_finds else None
    monkeypatch.setattr(upright, "palm_hint", lambda palm, frame, box, context=1.25: hint)
    follower = UprightFollower(est, palm=object(), recheck_every=30)
    kinds = [follower.predict(np.zeros((200, 200, 3), np.uint8), CropBox(100.0, 100.0, 120.0)).oriented_by
             for _ in range(12)]
    if palm_finds:
        assert kinds == ["palm"] + ["followed"] * 11 and follower.searches == 1
    else:
        assert kinds == (["search"] + ["followed"] * 5) * 2 and follower.searches == 2


def test_warm_up_runs_every_path_once_and_forgets_it():
    """The app's worker warms its follower before a source's first frame: the palm detector and both of the
    estimator's graphs run once, and the follower starts the stream with a fresh search as if never used."""
    from cpm_core.estimator import PoseEstimator

    # TensorFlow's runtime, whose traced graphs show what ran (other runtimes have no per-shape graphs)
    est = PoseEstimator.default(warm_up=False, runtime="tensorflow")
    follower = UprightFollower(est)
    follower.warm_up()
    assert set(est.runtime._graphs) == {True, False}  # single and batched graphs traced
    assert follower.angle is None and follower.box is None
    import cv2

    follower.predict(cv2.imread(os.path.join(FIXTURES, "media", "hand.jpg")))
    assert follower.searches == 1  # the first real frame is searched, not followed from the blank one
