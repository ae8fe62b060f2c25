"""Identities over time and top-down multi-subject inference: association, track survival, batched CPM, and
`cpm infer --detect` on a real hand image."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from cpm_core.detection import DetectorUnavailable, MultiPoseEstimator, MultiSubjectTracker, make_detector
from cpm_core.detection.association import assign, association_cost
from cpm_core.detection.base import Detection, square_crop

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "detect", "hand_off_centre.jpg")


def det(x: float, y: float, w: float = 40, h: float = 40, score: float = 0.9) -> Detection:
    box = (float(x), float(y), float(w), float(h))
    return Detection(box, score, square_crop(box, 1.5))


def test_association_cost_prefers_near_boxes_and_gates_far_ones():
    tracks = np.array([[0, 0, 40, 40], [200, 0, 240, 40]], float)
    dets = np.array([[205, 5, 245, 45], [3, 2, 43, 42], [600, 600, 640, 640]], float)
    cost = association_cost(tracks, dets)
    matches, lost, born = assign(cost, max_cost=2.0)
    assert sorted(matches) == [(0, 1), (1, 0)] and lost == [] and born == [2]
    assert assign(np.zeros((0, 3)), 1.0) == ([], [], [0, 1, 2])


def test_keypoints_separate_overlapping_boxes():
    # Two subjects with the same box: only their joints tell them apart.
    box = np.array([[0, 0, 100, 100]], float)
    kp_a = np.array([[[10, 10, 1], [20, 20, 1]]], float)
    kp_b = np.array([[[80, 80, 1], [90, 90, 1]]], float)
    cost = association_cost(np.vstack([box, box]), np.vstack([box, box]), np.vstack([kp_a, kp_b]),
                            np.vstack([kp_b, kp_a]))
    matches, _, _ = assign(cost, 5.0)
    assert sorted(matches) == [(0, 1), (1, 0)]


def test_ids_kept_across_frames_even_when_detection_order_swaps():
    tr = MultiSubjectTracker(smooth=False)
    first = tr.update([det(0, 0), det(300, 0)])
    assert [t.id for t in first] == [1, 2]
    for step in range(1, 6):  # both move right 8 px a frame; the detector lists them in the other order
        tracks = tr.update([det(300 + 8 * step, 0), det(8 * step, 0)])
        by_id = {t.id: t.box[0] for t in tracks}
        assert by_id == {1: 8 * step, 2: 300 + 8 * step}


def test_track_survives_missed_frames_then_expires():
    tr = MultiSubjectTracker(max_missed=5, smooth=False)
    tr.update([det(0, 0), det(300, 0)])
    tracks = tr.update([det(300, 0)])  # subject 1 missed once
    assert [t.id for t in tracks] == [2]
    assert [t.id for t in tr.update([det(2, 0), det(300, 0)])] == [1, 2]  # back, same id
    for _ in range(6):
        tr.update([det(300, 0)])
    assert [t.id for t in tr.update([det(2, 0), det(300, 0)])] == [2, 3]  # gone too long: a new id


def test_velocity_bridges_a_gap_for_a_fast_subject():
    tr = MultiSubjectTracker(smooth=False)
    for i in range(4):
        tr.update([det(30 * i, 0)])  # 30 px a frame, almost its own width
    tr.update([])
    tr.update([])
    assert [t.id for t in tr.update([det(30 * 6, 0)])] == [1]  # 90 px from its last box, where predicted


def test_keypoints_smoothed_per_track():
    tr = MultiSubjectTracker(smooth=True)
    kp = np.array([[10, 10, 1], [20, 20, 1]], np.float32)
    tr.update([det(0, 0), det(300, 0)], [kp, kp + 300])
    tracks = tr.update([det(1, 0), det(301, 0)], [kp + [6, 0, 0], kp + [300, 300, 0]])
    a, b = tracks
    assert 10 < a.keypoints[0, 0] < 16  # pulled towards the jump, not all the way
    np.testing.assert_allclose(a.raw_keypoints[0, :2], [16, 10])
    np.testing.assert_allclose(b.keypoints[:, :2], kp[:, :2] + 300, atol=1e-4)  # its own filter: unmoved


class ListDetector:
    """A detector replaying given detections, to test the pipeline without a model file."""

    name = "list"

    def __init__(self, frames: list[list[Detection]]):
        self.frames = list(frames)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return self.frames.pop(0)


@pytest.fixture(scope="module")
def tiny_estimator():
    from cpm_core.estimator import PoseEstimator
    from cpm_core.model_card import ModelCard
    from cpm_core.network import build_cpm
    from cpm_core.spec import ModelSpec

    spec = ModelSpec(name="tiny", input_size=64, stages=2, num_joints=21, stride=8, trunk="hand", width=0.125)
    return PoseEstimator(build_cpm(spec), ModelCard.for_spec(spec, name="tiny-test"), precision="float32")


def test_top_down_runs_one_batch_and_maps_joints_into_each_crop(tiny_estimator, monkeypatch):
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    frames = [[det(10, 10, score=0.6), det(200, 150, score=0.9), det(100, 100, score=0.5)]] * 2
    multi = MultiPoseEstimator(tiny_estimator, ListDetector(frames), max_subjects=2)
    calls = []
    real = tiny_estimator.predict_batch
    monkeypatch.setattr(tiny_estimator, "predict_batch",
                        lambda f, c, batch_size=8: calls.append(len(f)) or real(f, c, batch_size=batch_size))
    out = multi.process(frame)
    assert calls == [2] and len(out.subjects) == 2  # the two best of three, one batched call
    assert [s.score for s in out.subjects] == [0.9, 0.6]  # the best two, best first
    for s in out.subjects:
        corners = s.crop.corners()
        kp = s.result.keypoints
        assert (kp[:, 0] >= corners[:, 0].min() - 1).all() and (kp[:, 0] <= corners[:, 0].max() + 1).all()
        assert (kp[:, 1] >= corners[:, 1].min() - 1).all() and (kp[:, 1] <= corners[:, 1].max() + 1).all()
    again = multi.process(frame)
    assert {s.id for s in again.subjects} == {s.id for s in out.subjects}
    d = again.subjects[0].to_dict()
    assert set(d) == {"id", "box", "score", "crop", "keypoints"} and len(d["keypoints"]) == 21


def test_hog_detector_runs_or_says_why():
    try:
        hog = make_detector("hog")
    except DetectorUnavailable as exc:
        assert "HOGDescriptor" in str(exc)
        return
    assert hog.detect(np.full((240, 320, 3), 128, np.uint8)) == []


def test_pose_detector_finds_no_one_in_grey():
    assert make_detector("pose").detect(np.full((240, 320, 3), 128, np.uint8)) == []


def test_cpm_infer_detect_writes_subjects(tmp_path):
    from cpm_core.model_card import ModelCard
    from cpm_core.network import build_cpm
    from cpm_core.spec import ModelSpec
    from cpm_core.weights import save_model
    from training.cli import main

    spec = ModelSpec(name="tiny", input_size=64, stages=2, num_joints=21, stride=8, trunk="hand", width=0.125)
    model = save_model(build_cpm(spec), ModelCard.for_spec(spec, name="tiny-test"), tmp_path / "tiny")
    out = tmp_path / "r.json"
    rc = main(["infer", FIXTURE, "--model", str(model), "--detect", "--max-subjects", "3", "--json", str(out),
               "--out-dir", str(tmp_path / "media")])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["detector"] == "palm"
    (res,) = doc["results"]
    (subject,) = res["subjects"]
    assert subject["id"] == 1 and subject["score"] > 0.7
    x, y, w, h = subject["box"]
    assert 400 < x + w / 2 < 600 and 330 < y + h / 2 < 450
    assert res["keypoints"] == subject["keypoints"] and len(subject["keypoints"]) == 21
    img = cv2.imread(str(tmp_path / "media" / "hand_off_centre_pose.png"))
    grey = cv2.imread(FIXTURE)
    assert img.shape == grey.shape and np.abs(img.astype(int) - grey).max() > 100  # the subject was drawn


def test_canonical_hand_models_get_palm_crops_mirrored_by_the_thumb_side():
    from types import SimpleNamespace

    from cpm_core.detection.base import Detection
    from cpm_core.model_card import ModelCard
    from cpm_core.preprocess import CropBox
    from cpm_core.spec import get_preset

    # Palm keypoints of an upright hand: wrist, index base, middle base, ring base, little base, thumb x2.
    palm = np.array([[50, 90], [35, 60], [50, 58], [62, 60], [72, 64], [30, 80], [25, 72]], np.float64)
    det = Detection((30, 55, 45, 40), 0.9, CropBox(50, 60, 100, 0.0), palm, "hand")
    mirrored = Detection(det.box, 0.9, det.crop, palm * [-1, 1] + [100, 0], "hand")
    for chirality, expect in (("canonical", (False, True)), ("any", (False, False))):
        card = ModelCard.for_spec(get_preset("hand-rt-128x3"),
                                  provenance={"orientation": "upright", "chirality": chirality})
        multi = MultiPoseEstimator(SimpleNamespace(card=card), ListDetector([]))
        assert (multi.model_crop(det).mirror, multi.model_crop(mirrored).mirror) == expect
        assert multi.model_crop(det).angle == det.crop.angle
