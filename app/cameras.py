"""Listing cameras by name for the source picker.

PySide6-Essentials ships without QtMultimedia, so names come from QMediaDevices when it is importable and
otherwise from a quick probe of OpenCV indices 0..3 (named 'Camera N'). The probe runs only when the menu opens,
never at start-up, because opening a device can take a moment.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import cv2

PROBE_INDICES = range(4)


@dataclass(frozen=True)
class CameraInfo:
    index: int
    name: str

    @property
    def spec(self) -> str:
        return f"camera:{self.index}"


def _qt_cameras() -> list[CameraInfo] | None:
    try:
        from PySide6.QtMultimedia import QMediaDevices  # type: ignore[import-not-found]
    except ImportError:
        return None
    # Qt's order matches the OS device order that OpenCV's indices follow on the common backends.
    return [CameraInfo(i, dev.description()) for i, dev in enumerate(QMediaDevices.videoInputs())]


def _probe_opencv() -> list[CameraInfo]:
    found = []
    for i in PROBE_INDICES:
        if sys.platform.startswith("linux") and not os.path.exists(f"/dev/video{i}"):
            continue  # Linux: no device node, nothing to open (and no multi-second backend timeouts)
        cap = cv2.VideoCapture(i)
        try:
            if cap.isOpened():
                found.append(CameraInfo(i, f"Camera {i}"))
        finally:
            cap.release()
    return found


def list_cameras() -> list[CameraInfo]:
    cams = _qt_cameras()
    return cams if cams is not None else _probe_opencv()
