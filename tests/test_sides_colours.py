"""Left and right in two colour families (issue #18, item 3): the colour rule, `cpm infer`'s and recordings'
OpenCV drawer, and the app's pyqtgraph overlay, checked on the colours they really produce."""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtGui import QColor

from app.fast_image import FastImageItem
from app.pose_overlay import PoseOverlay, SubjectsOverlay, subject_rgb
from cpm_core.render import draw_pose
from cpm_core.skeleton import (
    BODY_14,
    CENTRE_BGR,
    COCO_17,
    HAND_21,
    LEFT_HUES,
    RIGHT_HUES,
    Skeleton,
    has_sides,
    joint_side,
    limb_colours,
    limb_side,
)

BODY_CARD = Path(__file__).resolve().parents[1] / "resources" / "models" / "body_default" / "card.json"


def _family(bgr) -> str:
    """'warm' (red..yellow), 'cool' (green..blue), 'neutral' (grey) or 'other' for a BGR colour."""
    b, g, r = (float(v) / 255 for v in bgr)
    h, s, _v = colorsys.rgb_to_hsv(r, g, b)
    if s < 0.2:
        return "neutral"
    hue = h * 360
    if hue <= 65:
        return "warm"
    if 90 <= hue <= 250:
        return "cool"
    return "other"


def _limb(skeleton: Skeleton, a: str, b: str) -> int:
    ja, jb = skeleton.joints.index(a), skeleton.joints.index(b)
    return next(i for i, limb in enumerate(skeleton.limbs) if set(limb) == {ja, jb})


@pytest.mark.parametrize("skeleton", [COCO_17, BODY_14], ids=lambda s: s.name)
def test_right_limbs_are_warm_left_limbs_cool_centre_limbs_grey(skeleton):
    colours = limb_colours(skeleton)
    assert len(colours) == len(skeleton.limbs)
    for i, colour in enumerate(colours):
        side = limb_side(skeleton, i)
        assert _family(colour) == {"right": "warm", "left": "cool", None: "neutral"}[side], skeleton.limbs[i]
    knee_r, knee_l = _limb(skeleton, "right_knee", "right_ankle"), _limb(skeleton, "left_knee", "left_ankle")
    assert (limb_side(skeleton, knee_r), limb_side(skeleton, knee_l)) == ("right", "left")
    assert colours[knee_r] != colours[knee_l]
    shoulders = _limb(skeleton, "neck", "right_shoulder") if skeleton is BODY_14 else \
        _limb(skeleton, "left_shoulder", "right_shoulder")
    assert colours[shoulders] == (CENTRE_BGR if skeleton is COCO_17 else colours[shoulders])


def test_mirror_limbs_take_the_same_place_in_their_families():
    """The k-th right limb and the k-th left limb are as far along their hue ranges: the right forearm is as
    'late' a warm colour as the left forearm is a cool one, so the pairs read as pairs."""
    right = [i for i in range(len(COCO_17.limbs)) if limb_side(COCO_17, i) == "right"]
    left = [i for i in range(len(COCO_17.limbs)) if limb_side(COCO_17, i) == "left"]
    assert len(right) == len(left) == 8
    colours = limb_colours(COCO_17)

    def place(i: int, hues: tuple[float, float]) -> float:
        b, g, r = (v / 255 for v in colours[i])
        return (colorsys.rgb_to_hsv(r, g, b)[0] * 360 - hues[0]) / (hues[1] - hues[0])

    for r, lft in zip(right, left):
        names_r = {COCO_17.joints[j].replace("right_", "") for j in COCO_17.limbs[r]}
        names_l = {COCO_17.joints[j].replace("left_", "") for j in COCO_17.limbs[lft]}
        assert names_r == names_l  # the k-th right limb mirrors the k-th left one...
        assert place(r, RIGHT_HUES) == pytest.approx(place(lft, LEFT_HUES), abs=0.03)  # ...and matches its shade
    assert place(right[0], RIGHT_HUES) < place(right[-1], RIGHT_HUES)  # the family's range is used


def test_a_cards_stored_rainbow_does_not_override_the_convention():
    """The default body model's card was saved with a rainbow palette; its skeleton is drawn by side anyway."""
    stored = json.loads(BODY_CARD.read_text())["skeleton"]
    skeleton = Skeleton.from_dict(stored)
    assert [tuple(c) for c in stored["colors"]] == list(skeleton.colors)  # what the card says is kept...
    assert limb_colours(skeleton) == limb_colours(COCO_17)  # ...but not what is drawn
    assert _family(limb_colours(skeleton)[_limb(skeleton, "right_knee", "right_ankle")]) == "warm"
    assert _family(limb_colours(skeleton)[_limb(skeleton, "left_knee", "left_ankle")]) == "cool"


def test_joint_sides_come_from_whole_words():
    assert joint_side("right_knee") == "right" and joint_side("leftWrist") == "left"
    assert joint_side("knee.left") == "left"
    assert joint_side("neck") is None and joint_side("brightness") is None and joint_side("l_knee") is None


def test_a_lone_hand_keeps_its_finger_colours_a_hand_of_known_side_takes_its_family():
    assert not has_sides(HAND_21) and has_sides(COCO_17)
    assert limb_colours(HAND_21) == [tuple(c) for c in HAND_21.colors]
    with pytest.raises(ValueError):
        limb_colours(HAND_21, "middle")
    for side, family in (("right", "warm"), ("left", "cool")):
        colours = limb_colours(HAND_21, side)
        assert {_family(c) for c in colours} == {family}
        fingers = [colours[4 * f:4 * f + 4] for f in range(5)]
        assert len({f[0] for f in fingers}) == 5  # one hue per finger
        for bones in fingers:  # darker towards the tip
            assert sum(bones[0]) > sum(bones[-1])
    assert limb_colours(COCO_17, "left") == limb_colours(COCO_17)  # a body's sides come from its joints


def _facing_body() -> np.ndarray:
    """A COCO-17 person facing the camera in a 200x200 frame: their right side on the image's left (x 60),
    their left side on the image's right (x 140)."""
    pts = {"nose": (100, 30), "left_eye": (108, 25), "right_eye": (92, 25), "left_ear": (116, 30),
           "right_ear": (84, 30), "left_shoulder": (140, 60), "right_shoulder": (60, 60), "left_elbow": (150, 90),
           "right_elbow": (50, 90), "left_wrist": (155, 120), "right_wrist": (45, 120), "left_hip": (130, 110),
           "right_hip": (70, 110), "left_knee": (140, 150), "right_knee": (60, 150), "left_ankle": (140, 190),
           "right_ankle": (60, 190)}
    return np.array([[*pts[name], 1.0] for name in COCO_17.joints], np.float64)


def test_cpm_infer_and_recordings_draw_the_right_shin_warm_and_the_left_shin_cool():
    """`cpm_core.render.draw_pose` (what `cpm infer` and the app's recordings write): the pixels half-way down
    each shin, away from the joint dots."""
    out = draw_pose(np.zeros((200, 200, 3), np.uint8), _facing_body(), COCO_17, thickness=3)
    assert _family(out[170, 60]) == "warm"
    assert _family(out[170, 140]) == "cool"
    assert _family(out[60, 100]) == "neutral" and out[60, 100].max() > 150  # the shoulder line
    hand = draw_pose(np.zeros((200, 200, 3), np.uint8), _facing_body(), COCO_17, thickness=3, side="left")
    np.testing.assert_array_equal(hand, out)  # a body ignores a hand's chirality


def _overlay_pixels(qtbot, make) -> tuple[pg.GraphicsLayoutWidget, pg.ViewBox]:
    widget = pg.GraphicsLayoutWidget()
    qtbot.addWidget(widget)
    widget.resize(400, 400)
    view = widget.addViewBox()
    view.setAspectLocked(True)
    view.invertY(True)
    image = FastImageItem()
    image.set_bgra(np.zeros((200, 200, 4), np.uint8) + np.array([0, 0, 0, 255], np.uint8))
    view.addItem(image)
    make(view)
    view.setRange(xRange=(0, 200), yRange=(0, 200), padding=0)
    widget.show()
    qtbot.waitExposed(widget)
    return widget, view


def _pixel(widget: pg.GraphicsLayoutWidget, view: pg.ViewBox, x: float, y: float) -> tuple[int, int, int]:
    image = widget.grab().toImage()
    scene = view.mapViewToScene(pg.Point(x, y))
    p = widget.mapFromScene(scene)
    c = QColor(image.pixel(p.x(), p.y()))
    return c.blue(), c.green(), c.red()


def test_app_overlay_draws_the_right_shin_warm_and_the_left_shin_cool(qtbot):
    widget, view = _overlay_pixels(qtbot, lambda v: PoseOverlay(v, COCO_17, width=5).update(_facing_body(), 0.1))
    assert _family(_pixel(widget, view, 60, 170)) == "warm"
    assert _family(_pixel(widget, view, 140, 170)) == "cool"


class _Crop:
    def corners(self) -> np.ndarray:
        return np.array([[0, 0], [199, 0], [199, 199], [0, 199]], np.float64)


class _Subject:
    def __init__(self, sid: int, keypoints: np.ndarray, label: str):
        self.id, self.score, self.crop, self.label = sid, 0.9, _Crop(), label
        self.raw = self.smoothed = keypoints


def test_detected_bodies_keep_their_sides_and_hands_of_unknown_side_keep_their_id_colour(qtbot):
    """With Detect subjects on, a body's limbs stay in the side families (its outline and label carry its id's
    colour); a hand of unknown chirality is drawn in its id's colour; a hand labelled 'left hand' in the cool
    family."""
    widget, view = _overlay_pixels(qtbot, lambda v: None)
    overlay = SubjectsOverlay(view)
    overlay.update([_Subject(1, _facing_body(), "person")], COCO_17, 0.1, selected=1)
    assert _family(_pixel(widget, view, 60, 170)) == "warm"
    assert _family(_pixel(widget, view, 140, 170)) == "cool"
    assert overlay.items[1].box.opts["pen"].color().getRgb()[:3] == subject_rgb(1)

    hand = np.column_stack([np.linspace(20, 180, 21), np.linspace(20, 180, 21), np.ones(21)])
    overlay.update([_Subject(1, hand, "hand"), _Subject(2, hand, "left hand")], HAND_21, 0.1, selected=1)
    pens = {sid: [pen.color().getRgb()[:3] for pen in g.pose.item._pens] for sid, g in overlay.items.items()}
    assert set(pens[1]) == {subject_rgb(1)}
    assert {_family((b, g, r)) for r, g, b in pens[2]} == {"cool"}


def test_cpm_infer_detect_draws_a_detected_bodys_sides_and_a_hands_id_colour():
    """`cpm_core.detection.draw.draw_subjects` (what `cpm infer --detect` writes): a body keeps its side colours
    and shows its id only by outline and label; a hand (no sides) is drawn in its id's colour."""
    from types import SimpleNamespace

    from cpm_core.detection.draw import draw_subjects, subject_colour
    from cpm_core.preprocess import CropBox

    crop = CropBox.around(20, 10, 180, 195, margin=1.0)
    body = SimpleNamespace(id=3, crop=crop, score=0.9, keypoints=_facing_body())
    out = draw_subjects(np.zeros((200, 200, 3), np.uint8), [body], COCO_17)
    assert _family(out[170, 60]) == "warm"
    assert _family(out[170, 140]) == "cool"
    hand_kp = np.zeros((21, 3))
    hand_kp[:, 0] = np.linspace(40, 160, 21)
    hand_kp[:, 1] = 100
    hand_kp[:, 2] = 1.0
    hand = SimpleNamespace(id=3, crop=crop, score=0.9, keypoints=hand_kp)
    out = draw_subjects(np.zeros((200, 200, 3), np.uint8), [hand], HAND_21)
    np.testing.assert_array_equal(out[100, 100], np.array(subject_colour(3), np.uint8))
