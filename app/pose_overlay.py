"""PoseOverlay: a skeleton drawn with pyqtgraph items on top of a frame's ImageItem.

Limbs keep the skeleton's colours (the same ones `cpm_core.render` uses for saved images); joints are coloured
red (unsure) to green (sure) and grow with confidence, so per-joint confidence reads at a glance. The item is
created once per skeleton and only its data changes per frame.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPen

from cpm_core.skeleton import Skeleton


def jet_lut() -> np.ndarray:
    """(256, 3) uint8 RGB jet lookup table, matching cv2.COLORMAP_JET used by `cpm_core.render.colorize`."""
    import cv2

    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, :]
    return np.ascontiguousarray(bgr[:, ::-1])


class PoseItem(pg.GraphicsObject):
    """The whole skeleton as one graphics item painted in device pixels: one paint call per frame instead of
    a curve item per limb (each with its own bounding-rect bookkeeping), which kept the GUI thread busy."""

    def __init__(self, skeleton: Skeleton, width: float, alpha: int, style: Qt.PenStyle):
        super().__init__()
        self.skeleton = skeleton
        self._pens = [QPen(QColor(r, g, b, alpha), width, style) for b, g, r in skeleton.colors]
        for pen in self._pens:
            pen.setCosmetic(True)
        self._outline = QPen(QColor(0, 0, 0, alpha), 1)
        self._outline.setCosmetic(True)
        self._brushes = [QBrush(QColor(int(255 * (1 - c)), int(255 * c), 0, alpha)) for c in np.linspace(0, 1, 11)]
        self._kp = np.zeros((0, 3))
        self._ok = np.zeros(0, bool)
        self._rect = QRectF()

    def set_pose(self, keypoints: np.ndarray, threshold: float) -> None:
        kp = np.asarray(keypoints, dtype=np.float64)
        ok = np.isfinite(kp[:, :2]).all(axis=1) & (kp[:, 2] >= threshold)
        self.prepareGeometryChange()
        self._kp, self._ok = kp, ok
        if ok.any():
            x0, y0 = kp[ok, :2].min(axis=0)
            x1, y1 = kp[ok, :2].max(axis=0)
            pad = 0.05 * max(x1 - x0, y1 - y0, 1.0) + 20.0
            self._rect = QRectF(x0 - pad, y0 - pad, x1 - x0 + 2 * pad, y1 - y0 + 2 * pad)
        else:
            self._rect = QRectF()
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return self._rect

    def paint(self, painter: QPainter, *args) -> None:
        if not self._ok.any():
            return
        tr = painter.transform()
        pts = [tr.map(QPointF(x, y)) for x, y in self._kp[:, :2]] if len(self._kp) else []
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        ok = self._ok
        for (a, b), pen in zip(self.skeleton.limbs, self._pens):
            if ok[a] and ok[b]:
                painter.setPen(pen)
                painter.drawLine(pts[a], pts[b])
        painter.setPen(self._outline)
        for j in np.flatnonzero(ok):
            c = float(np.clip(self._kp[j, 2], 0.0, 1.0))
            painter.setBrush(self._brushes[round(c * 10)])
            r = 3.0 + 4.0 * c
            painter.drawEllipse(pts[j], r, r)
        painter.restore()


class PoseOverlay:
    """A skeleton on a ViewBox: limbs in the skeleton's colours, joints red (unsure) to green (sure)."""

    def __init__(self, view: pg.ViewBox, skeleton: Skeleton, width: float = 2.5, alpha: int = 255,
                 style: Qt.PenStyle = Qt.PenStyle.SolidLine, z: float = 10):
        self.view = view
        self.skeleton = skeleton
        self.item = PoseItem(skeleton, width, alpha, style)
        self.item.setZValue(z)
        view.addItem(self.item)

    def set_visible(self, visible: bool) -> None:
        self.item.setVisible(visible)

    def remove(self) -> None:
        self.view.removeItem(self.item)

    def update(self, keypoints: np.ndarray, threshold: float) -> None:
        self.item.set_pose(keypoints, threshold)
