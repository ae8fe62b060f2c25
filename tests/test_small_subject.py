"""A person too small for a whole-frame body pose (issue #18, item 4): the rule in `cpm_core.subject_size` on the
default body model's real output, and the app hiding the skeleton and saying so once, in a real window."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QSettings

from cpm_core.estimator import PoseEstimator
from cpm_core.preprocess import CropBox
from cpm_core.skeleton import HAND_21
from cpm_core.subject_size import HINT, MIN_EXTENT, check_subject_size, is_whole_frame, subject_too_small

# A seated person filling most of the frame's height (bodypose3d, MIT licence beside it).
PERSON = Path(__file__).parent / "fixtures" / "body" / "seated_person.jpg"
# MediaPipe's pose test image, downscaled (Apache-2.0, licence beside it).
WOMAN = Path(__file__).parent / "fixtures" / "body" / "sitting_woman.jpg"
WAIT_MS = 60000


def _shrunk(scale: float, size: tuple[int, int] = (288, 384)) -> np.ndarray:
    """The fixture's frame shrunk by `scale` and placed bottom-left of centre on a grey frame of `size` (h, w):
    the same person, now a small part of the frame, as seen from across a room."""
    image = cv2.imread(str(PERSON))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((*size, 3), 128, np.uint8)
    y0, x0 = size[0] - small.shape[0] - 4, int((size[1] - small.shape[1]) * 0.4)
    frame[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    return frame


@pytest.fixture(scope="module")
def body() -> PoseEstimator:
    """The embedded default body model (what the app loads for bodies)."""
    return PoseEstimator.default("body", precision="float32")


def test_a_person_filling_the_frame_is_posed_a_small_one_is_not(body):
    frame = cv2.imread(str(PERSON))
    big = check_subject_size(body.predict(frame), frame.shape, body.card.skeleton)
    assert big.applies and not big.too_small
    assert big.extent >= 2 * MIN_EXTENT and big.confident >= 8

    small_frame = _shrunk(0.3)  # the person is ~0.25 of the frame's longer side
    small = check_subject_size(body.predict(small_frame), small_frame.shape, body.card.skeleton)
    assert small.applies and small.too_small
    assert subject_too_small(body.predict(small_frame), small_frame.shape, body.card.skeleton)


def test_a_person_filling_the_frame_with_only_her_face_peaking_high_is_not_too_small(body):
    """MediaPipe's pose test image: a woman sitting, filling the frame; the default model peaks above 0.3 only on
    her face. An extent rule at that level called her too small; the rule's level is the drawing threshold."""
    frame = cv2.imread(str(WOMAN))
    verdict = check_subject_size(body.predict(frame), frame.shape, body.card.skeleton)
    assert verdict.applies and not verdict.too_small and verdict.extent >= MIN_EXTENT


def test_confident_peaks_piled_on_one_spot_are_too_small_even_when_presence_is_high(body):
    """Rule 2 on its own: the real full-frame heatmaps (presence high) with the joints moved into 5 % of the
    frame: a skeleton collapsed onto one spot."""
    frame = cv2.imread(str(PERSON))
    result = body.predict(frame)
    kp = result.keypoints.copy()
    kp[:, :2] = 100 + (kp[:, :2] - kp[:, :2].min(axis=0)) * 0.05
    piled = dataclasses.replace(result, keypoints=kp)
    verdict = check_subject_size(piled, frame.shape, body.card.skeleton)
    assert verdict.presence >= 0.5 and verdict.extent < MIN_EXTENT and verdict.too_small


def test_the_rule_judges_only_whole_frame_body_poses(body):
    frame = _shrunk(0.3)
    h, w = frame.shape[:2]
    whole = body.predict(frame)
    assert is_whole_frame(whole, frame.shape)
    assert not check_subject_size(whole, frame.shape, HAND_21).applies  # a hand model: no sides, no rule
    cropped = body.predict(frame, CropBox(w * 0.4, h * 0.75, h * 0.5))  # a detector's or tracker's crop
    assert not is_whole_frame(cropped, frame.shape)
    assert not check_subject_size(cropped, frame.shape, body.card.skeleton).too_small


def _video(path: Path, frame: np.ndarray, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (frame.shape[1], frame.shape[0]))
    for _ in range(frames):
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def body_window(qtbot, tmp_path, body):
    from app.main_window import MainWindow

    w = MainWindow(body, settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat),
                   quiet=True)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()
    assert not w.worker.isRunning()


def test_the_app_says_once_per_source_that_the_person_is_too_small_and_draws_no_skeleton(qtbot, tmp_path,
                                                                                         body_window, monkeypatch):
    window = body_window
    shown: list[str] = []
    bar = window.statusBar()
    show = bar.showMessage
    monkeypatch.setattr(bar, "showMessage", lambda text, *a: (shown.append(text), show(text, *a)))
    window.viewer_settings.loop = False
    window.viewer_settings.realtime = False  # every frame reaches the model: six small-person results in a row
    video = _video(tmp_path / "small.mp4", _shrunk(0.3), 6)
    assert window.open_source(video)
    qtbot.waitUntil(lambda: window.source_ended and window.delivered >= 6 and window.worker.idle(), timeout=WAIT_MS)
    view = window.current_view  # the Multi-stage view: frame, pose and stage heatmaps
    qtbot.waitUntil(lambda: view.last is not None, timeout=WAIT_MS)
    hints = [m for m in shown if HINT in m]
    assert len(hints) == 1, shown
    assert HINT in bar.currentMessage()
    pose = view.last
    assert pose.small_subject and not pose.draws_pose
    assert not view.panel.overlay.item.isVisible()

    # The person at full size: a skeleton, no new hint.
    assert window.open_source(PERSON)
    qtbot.waitUntil(lambda: (p := view.last) is not None and p.generation == window.generation,
                    timeout=WAIT_MS)
    pose = view.last
    assert not pose.small_subject and pose.draws_pose
    assert view.panel.overlay.item.isVisible()
    assert len([m for m in shown if HINT in m]) == 1

    # A new source with a small person says it again, once.
    assert window.open_source(_video(tmp_path / "small2.mp4", _shrunk(0.25), 4))
    qtbot.waitUntil(lambda: window.source_ended and window.delivered >= 4 and window.worker.idle(), timeout=WAIT_MS)
    assert len([m for m in shown if HINT in m]) == 2
