"""What every detector returns, so the top-down pipeline, the tracker and the drawing need not know which
detector found a subject."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from cpm_core.preprocess import CropBox


class DetectorUnavailable(RuntimeError):
    """A detector cannot run here (its model file or library support is missing)."""


@dataclass(frozen=True)
class Detection:
    """One subject found in a frame, in frame pixels.

    `box` is what the detector saw (x, y, w, h; for the palm detector the palm, not the whole hand); `crop` is
    the square, possibly rotated region the pose model should look at, which a detector can grow and turn
    (the palm detector turns hands upright); `keypoints` (K, 2) are the detector's own landmarks, if any.
    """

    box: tuple[float, float, float, float]
    score: float
    crop: CropBox
    keypoints: np.ndarray | None = None
    label: str = ""

    @property
    def angle(self) -> float:
        return self.crop.angle

    @property
    def xyxy(self) -> np.ndarray:
        x, y, w, h = self.box
        return np.array([x, y, x + w, y + h], dtype=np.float64)

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2.0, y + h / 2.0


@runtime_checkable
class Detector(Protocol):
    """frame (H, W, 3) BGR uint8 -> detections, best first."""

    name: str

    def detect(self, frame: np.ndarray) -> list[Detection]: ...


def square_crop(box: tuple[float, float, float, float], margin: float) -> CropBox:
    """An upright square around an (x, y, w, h) box, its longer side grown by `margin`."""
    x, y, w, h = box
    return CropBox.around(x, y, x + w, y + h, margin=margin)
