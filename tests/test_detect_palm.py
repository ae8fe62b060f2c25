"""Palm detector front end: SSD anchors, box decoding, NMS, and a real hand found off-centre and turned upright."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from cpm_core.detection.anchors import PALM_ANCHORS, POSE_ANCHORS, grid_anchors, ssd_anchors
from cpm_core.detection.nms import iou_matrix, nms, weighted_nms
from cpm_core.detection.palm import hand_crop, upright_angle
from cpm_core.detection.ssd import Letterbox, decode_ssd
from cpm_core.preprocess import CropTransform

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "detect", "hand_off_centre.jpg")


def test_palm_anchor_count_order_and_positions():
    a = ssd_anchors(PALM_ANCHORS)
    assert a.shape == (2016, 2)
    # Layer 0: 24x24 cells of 2 anchors, row-major over y then x; the two anchors of a cell coincide.
    np.testing.assert_allclose(a[0], [0.5 / 24, 0.5 / 24])
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [1.5 / 24, 0.5 / 24])  # next x, same y
    np.testing.assert_allclose(a[48], [0.5 / 24, 1.5 / 24])  # second row
    np.testing.assert_allclose(a[24 * 24 * 2 - 1], [23.5 / 24, 23.5 / 24])
    # Layers 1-3 share the 12x12 grid: 6 anchors per cell.
    first12 = 24 * 24 * 2
    np.testing.assert_allclose(a[first12:first12 + 6], [[0.5 / 12, 0.5 / 12]] * 6)
    np.testing.assert_allclose(a[first12 + 6], [1.5 / 12, 0.5 / 12])
    np.testing.assert_allclose(a[-1], [11.5 / 12, 11.5 / 12])
    assert len(ssd_anchors(POSE_ANCHORS)) == 2254
    assert len(grid_anchors(64, [8, 16], anchors_per_layer=1)) == 8 * 8 + 4 * 4


def test_decode_matches_hand_computed_boxes():
    anchors = ssd_anchors(PALM_ANCHORS)
    raw = np.zeros((2016, 18), np.float32)
    scores = np.full((2016, 1), -200.0, np.float32)  # clipped to -100 -> sigmoid ~ 0
    # Anchor 50: cell (x=1, y=1) of the 24 grid, centre (1.5/24, 1.5/24) = (0.0625, 0.0625).
    raw[50, :4] = [9.6, -19.2, 38.4, 19.2]  # dx = 0.05, dy = -0.1, w = 0.2, h = 0.1 of the input
    raw[50, 4:6] = [0.0, 19.2]  # keypoint 0: dy = +0.1
    raw[50, 16:18] = [-9.6, 0.0]  # keypoint 6: dx = -0.05
    scores[50] = 0.0
    boxes, kps, s = decode_ssd(raw, scores, anchors, 192, 7)
    cx, cy = 0.0625 + 0.05, 0.0625 - 0.1
    np.testing.assert_allclose(boxes[50], [cx - 0.1, cy - 0.05, cx + 0.1, cy + 0.05], atol=1e-6)
    np.testing.assert_allclose(kps[50, 0], [0.0625, 0.1625], atol=1e-6)
    np.testing.assert_allclose(kps[50, 6], [0.0125, 0.0625], atol=1e-6)
    np.testing.assert_allclose(kps[50, 3], anchors[50], atol=1e-6)  # zero offset sits on the anchor
    assert s[50] == pytest.approx(0.5)
    assert s[0] == pytest.approx(1 / (1 + np.exp(100)))


def test_letterbox_maps_input_back_to_frame():
    lb = Letterbox.fit(400, 200, 192)  # scale 0.48, 192 x 96 image padded 48 px top and bottom
    assert (lb.pad_x, lb.pad_y) == (0, 48)
    # The input's centre is the frame's centre; the top of the image content is frame y = -0.5 (pixel edge).
    np.testing.assert_allclose(lb.to_frame([0.5, 0.5]), [199.5, 99.5])
    np.testing.assert_allclose(lb.to_frame([0.0, 48 / 192]), [-0.5, -0.5])
    frame = np.full((200, 400, 3), 255, np.uint8)
    img = lb.apply(frame)
    assert img.shape == (192, 192, 3) and img[:48].max() == 0 and img[48:144].min() == 255


def test_iou_and_nms():
    a = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(iou_matrix(a, a)[0], [1.0, 50 / 150, 0.0])
    assert nms(a, np.array([0.9, 0.8, 0.7]), 0.3) == [0, 2]
    assert nms(a, np.array([0.9, 0.8, 0.7]), 0.4) == [0, 1, 2]


def test_weighted_nms_averages_clusters_by_score():
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60]], float)
    kps = np.array([[1.0, 1.0], [3.0, 1.0], [55.0, 55.0]])
    b, s, k = weighted_nms(boxes, np.array([0.6, 0.9, 0.7]), 0.3, kps)
    assert len(b) == 2
    np.testing.assert_allclose(s, [0.9, 0.7])  # the cluster keeps its best score
    np.testing.assert_allclose(b[0], (0.6 * boxes[0] + 0.9 * boxes[1]) / 1.5)
    np.testing.assert_allclose(k[0], (0.6 * kps[0] + 0.9 * kps[1]) / 1.5)
    np.testing.assert_allclose(b[1], boxes[2])


def test_upright_angle_follows_cropbox_convention():
    assert upright_angle([0, 0], [0, -10]) == pytest.approx(0)  # fingers up
    assert upright_angle([0, 0], [10, 0]) == pytest.approx(90)  # fingers right
    assert abs(upright_angle([0, 0], [0, 10])) == pytest.approx(180)
    assert upright_angle([0, 0], [-10, 0]) == pytest.approx(-90)
    # The crop puts the middle-finger base straight above the wrist, whatever the hand's direction.
    for wrist, mid in [([100, 100], [160, 70]), ([50, 80], [20, 130]), ([0, 0], [-30, 5])]:
        box = np.array([*np.minimum(wrist, mid), *np.maximum(wrist, mid)], float)
        crop = hand_crop(box, np.array([wrist, [0, 0], mid], float))
        w, m = CropTransform(crop, 100).to_input(np.array([wrist, mid], float))
        assert m[0] == pytest.approx(w[0], abs=1e-6) and m[1] < w[1]


def test_hand_crop_size_and_shift():
    box = np.array([100, 100, 140, 120], float)  # 40 x 20
    crop = hand_crop(box, np.array([[120, 120], [0, 0], [120, 100]], float))  # fingers up
    assert (crop.side, crop.angle) == (pytest.approx(2.6 * 40), pytest.approx(0))
    assert (crop.cx, crop.cy) == (pytest.approx(120), pytest.approx(110 - 0.5 * 20))


@pytest.fixture(scope="module")
def palm_detector():
    from cpm_core.detection.palm import PalmDetector

    return PalmDetector()


def test_real_hand_found_off_centre_and_turned_upright(palm_detector):
    frame = cv2.imread(FIXTURE)  # a hand pasted at x 380..620, y 300..460 of a 640 x 480 grey canvas
    dets = palm_detector.detect(frame)
    assert len(dets) == 1
    d = dets[0]
    assert d.score > 0.7
    cx, cy = d.centre
    assert 400 < cx < 600 and 330 < cy < 450
    x, y, w, h = d.box
    assert 30 < w < 100 and 30 < h < 100
    # The fingers point left in this photo: the crop turns about -75 degrees, and the crop holds the hand.
    assert -100 < d.angle < -50
    assert abs(d.crop.cx - 440) < 40 and abs(d.crop.cy - 390) < 40
    wrist, mid = CropTransform(d.crop, 192).to_input(d.keypoints[[0, 2]])
    assert mid[1] < wrist[1] - 20 and abs(mid[0] - wrist[0]) < 5


def test_empty_grey_frame_has_no_hands(palm_detector):
    assert palm_detector.detect(np.full((240, 320, 3), 128, np.uint8)) == []
