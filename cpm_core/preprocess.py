"""Square crops of a frame for the network, with the exact transform that maps joints back to the frame.

Every crop is an affine map frame -> input (pixel centres at integers). Keeping the map explicit, rather
than remembering a scale and an offset in several places, is what lets the tracker, the detector's rotated
crops and the letterbox share one code path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 128  # the port pads with mid-grey


@dataclass(frozen=True)
class CropBox:
    """A square region of a frame: centre and side in frame pixels, optional rotation (degrees, clockwise
    in image coordinates, i.e. the crop's 'up' is rotated by this angle) and mirroring (the crop shown
    left-right reversed, after the rotation: how a model trained on one chirality of hand sees the other)."""

    cx: float
    cy: float
    side: float
    angle: float = 0.0
    mirror: bool = False

    @classmethod
    def letterbox(cls, width: int, height: int) -> CropBox:
        """The whole frame, padded to a square."""
        return cls(width / 2.0 - 0.5, height / 2.0 - 0.5, float(max(width, height)))

    @classmethod
    def centre_square(cls, width: int, height: int) -> CropBox:
        """The largest centred square, as the port's demos crop (the subject is assumed in the middle)."""
        return cls(width / 2.0 - 0.5, height / 2.0 - 0.5, float(min(width, height)))

    @classmethod
    def around(cls, x0: float, y0: float, x1: float, y1: float, margin: float = 1.2) -> CropBox:
        """A square around a box (x0, y0)-(x1, y1), its longer side grown by `margin`."""
        side = max(x1 - x0, y1 - y0, 1.0) * margin
        return cls((x0 + x1) / 2.0, (y0 + y1) / 2.0, side)

    def corners(self) -> np.ndarray:
        """The crop's four corners in frame pixels (top-left, top-right, bottom-right, bottom-left)."""
        h = self.side / 2.0
        pts = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
        a = math.radians(self.angle)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        return pts @ rot.T + [self.cx, self.cy]


@dataclass(frozen=True)
class CropTransform:
    """Affine map between frame pixels and the network input of `size` pixels."""

    box: CropBox
    size: int

    @property
    def matrix(self) -> np.ndarray:
        """2x3 frame -> input matrix. Frame point (cx, cy) lands on the input centre ((size-1)/2)."""
        s = self.size / self.box.side
        a = math.radians(self.box.angle)
        c, sn = math.cos(a), math.sin(a)
        # Rotate by -angle around the box centre, scale, then move the centre to the input centre.
        r = np.array([[c, sn], [-sn, c]]) * s
        centre_in = (self.size - 1) / 2.0
        t = np.array([centre_in, centre_in]) - r @ np.array([self.box.cx, self.box.cy])
        if self.box.mirror:  # x -> (size - 1) - x about the input's centre
            r[0] = -r[0]
            t[0] = (self.size - 1) - t[0]
        return np.hstack([r, t[:, None]])

    def to_input(self, xy: np.ndarray) -> np.ndarray:
        m = self.matrix
        xy = np.asarray(xy, dtype=np.float64)
        return xy @ m[:, :2].T + m[:, 2]

    def to_frame(self, xy: np.ndarray) -> np.ndarray:
        m = self.matrix
        inv = np.linalg.inv(m[:, :2])
        xy = np.asarray(xy, dtype=np.float64)
        return (xy - m[:, 2]) @ inv.T

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Cut the crop out of `frame` (H, W, 3 uint8), padding outside the frame with grey.

        Large reductions go through an area resize first, because sampling a 1280-pixel frame straight down
        to 128 pixels aliases fine detail such as fingers.
        """
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) colour frame, got shape {frame.shape}")
        scale = self.size / self.box.side
        m = self.matrix
        if scale < 0.5:
            # Only the part of the frame under the (rotated) box is reduced, by a whole factor k (OpenCV's area
            # filter has a fast path for those: 0.1 ms against 1.6 ms for a fractional factor on a 600-pixel
            # region), chosen so the warp that follows shrinks at most 2x more: no aliasing of fine detail.
            h, w = frame.shape[:2]
            k = max(2, math.ceil(0.5 / scale))
            pad = 2 * k + 1  # two reduced pixels: bilinear sampling never meets the region's edge
            (x0, y0), (x1, y1) = self.box.corners().min(axis=0), self.box.corners().max(axis=0)
            x0, y0 = max(0, int(math.floor(x0)) - pad), max(0, int(math.floor(y0)) - pad)
            x1, y1 = min(w, int(math.ceil(x1)) + pad + 1), min(h, int(math.ceil(y1)) + pad + 1)
            x1, y1 = x0 + (x1 - x0) // k * k, y0 + (y1 - y0) // k * k  # whole blocks of k x k pixels
            if x1 <= x0 or y1 <= y0:  # the box lies wholly outside the frame: all padding
                return np.full((self.size, self.size, 3), PAD_VALUE, np.uint8)
            roi = frame[y0:y1, x0:x1]
            src = cv2.resize(roi, ((x1 - x0) // k, (y1 - y0) // k), interpolation=cv2.INTER_AREA)
            f = 1.0 / k
            # Frame pixel x -> ROI x - x0 -> reduced (x - x0 + 0.5) / k - 0.5; compose with the crop's map.
            pre_m = np.array([[f, 0, (0.5 - x0) * f - 0.5], [0, f, (0.5 - y0) * f - 0.5], [0, 0, 1]])
            m = (np.vstack([m, [0, 0, 1]]) @ np.linalg.inv(pre_m))[:2]
        else:
            src = frame
        return cv2.warpAffine(src, m, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(PAD_VALUE,) * 3)


@dataclass(frozen=True)
class Normalisation:
    """How pixel values become network inputs: x * scale + offset, in the channel order the model was
    trained on. The port's demos fed OpenCV BGR frames as x / 256 - 0.5."""

    scale: float = 1.0 / 256.0
    offset: float = -0.5
    channels: str = "BGR"

    def __post_init__(self) -> None:
        if self.channels not in ("BGR", "RGB"):
            raise ValueError(f"channels must be 'BGR' or 'RGB', got {self.channels!r}")

    def to_dict(self) -> dict:
        return {"scale": self.scale, "offset": self.offset, "channels": self.channels}

    @classmethod
    def from_dict(cls, d: dict) -> Normalisation:
        return cls(float(d.get("scale", 1 / 256)), float(d.get("offset", -0.5)), str(d.get("channels", "BGR")))

    def apply(self, bgr: np.ndarray) -> np.ndarray:
        x = np.asarray(bgr, dtype=np.float32)
        if self.channels == "RGB":
            x = x[..., ::-1]
        return x * np.float32(self.scale) + np.float32(self.offset)
