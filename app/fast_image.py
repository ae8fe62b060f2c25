"""An image item that paints OpenCV's BGRA frames as a plain blit.

pyqtgraph's ImageItem turns every new array into a QImage itself: an RGB frame becomes Format_RGB888, which Qt
converts pixel by pixel on every paint, and a float heatmap is rescaled and looked up in Python before that.
At video rate those passes took most of the GUI thread (bench/pipeline.py). BGRA uint8 in memory is exactly
Qt's Format_RGB32 on little-endian machines, the backing store's own layout, so wrapping the array without a
copy and painting it costs a fraction of a millisecond; colour maps are applied to the small heatmaps with a
single table lookup.
"""

from __future__ import annotations

import sys

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QImage

# Byte order B, G, R, A is Format_RGB32 (0xAARRGGBB words) only on little-endian machines; elsewhere take the
# format whose byte order is explicit.
_FORMAT = QImage.Format.Format_RGB32 if sys.byteorder == "little" else QImage.Format.Format_RGBX8888


def bgra_lut(rgb_lut: np.ndarray) -> np.ndarray:
    """(256, 3) RGB lookup table -> (256, 4) BGRA, opaque."""
    lut = np.asarray(rgb_lut, np.uint8)
    return np.ascontiguousarray(np.concatenate([lut[:, ::-1], np.full((len(lut), 1), 255, np.uint8)], axis=1))


def colour_map(values: np.ndarray, levels: tuple[float, float], lut_bgra: np.ndarray) -> np.ndarray:
    """Float map -> (H, W, 4) BGRA through a colour table: `levels` (lo, hi) span the table; NaN shows as lo."""
    lo, hi = levels
    scale = (len(lut_bgra) - 1) / (hi - lo) if hi > lo else 0.0
    # fmax/fmin drop NaN in favour of the other operand, so NaN lands on lo without nan_to_num's extra passes.
    v = np.fmin(np.fmax(np.asarray(values, np.float32), lo), hi if hi > lo else lo)
    idx = ((v - lo) * scale).astype(np.intp)
    return lut_bgra[idx]


class FastImageItem(pg.ImageItem):
    """ImageItem fed with uint8 BGRA arrays (row-major) through `set_bgra`; everything else (bounds, view
    ranges, mouse mapping) is pyqtgraph's."""

    def __init__(self):
        super().__init__(axisOrder="row-major")

    def set_bgra(self, bgra: np.ndarray) -> None:
        if bgra.dtype != np.uint8 or bgra.ndim != 3 or bgra.shape[2] != 4:
            raise ValueError(f"expected (H, W, 4) uint8 BGRA, got {bgra.dtype} {bgra.shape}")
        bgra = np.ascontiguousarray(bgra)
        h, w = bgra.shape[:2]
        resized = self.image is None or self.image.shape[:2] != (h, w)
        self.image = bgra  # keeps the buffer alive: the QImage below wraps it without copying
        self.qimage = QImage(bgra.data, w, h, bgra.strides[0], _FORMAT)
        self._renderRequired = False
        self._unrenderable = False
        if resized:
            self.prepareGeometryChange()
            self.informViewBoundsChanged()
        self.update()
