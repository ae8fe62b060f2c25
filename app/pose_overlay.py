"""PoseOverlay: a skeleton drawn with pyqtgraph items on top of a frame's ImageItem.

Limbs keep the skeleton's colours (the same ones `cpm_core.render` uses for saved images); joints are coloured
red (unsure) to green (sure) and grow with confidence, so per-joint confidence reads at a glance. Items are
created once per skeleton and only their data changes per frame.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from cpm_core.skeleton import Skeleton


def jet_lut() -> np.ndarray:
    """(256, 3) uint8 RGB jet lookup table, matching cv2.COLORMAP_JET used by `cpm_core.render.colorize`."""
    import cv2

    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, :]
    return np.ascontiguousarray(bgr[:, ::-1])


class PoseOverlay:
    """Limb curves and a joint scatter, added to a ViewBox."""

    def __init__(self, view: pg.ViewBox, skeleton: Skeleton, width: float = 2.5, alpha: int = 255,
                 style: Qt.PenStyle = Qt.PenStyle.SolidLine, z: float = 10):
        self.view = view
        self.skeleton = skeleton
        self.limbs: list[pg.PlotCurveItem] = []
        for b, g, r in skeleton.colors:
            pen = pg.mkPen((r, g, b, alpha), width=width, style=style)
            item = pg.PlotCurveItem(pen=pen, antialias=True)
            item.setZValue(z)
            view.addItem(item)
            self.limbs.append(item)
        self.joints = pg.ScatterPlotItem(pxMode=True, pen=pg.mkPen((0, 0, 0, alpha), width=1))
        self.joints.setZValue(z + 1)
        view.addItem(self.joints)
        self._alpha = alpha

    def set_visible(self, visible: bool) -> None:
        for item in self.limbs:
            item.setVisible(visible)
        self.joints.setVisible(visible)

    def remove(self) -> None:
        for item in self.limbs + [self.joints]:
            self.view.removeItem(item)

    def update(self, keypoints: np.ndarray, threshold: float) -> None:
        kp = np.asarray(keypoints, dtype=np.float64)
        ok = np.isfinite(kp[:, :2]).all(axis=1) & (kp[:, 2] >= threshold)
        for (a, b), item in zip(self.skeleton.limbs, self.limbs):
            if ok[a] and ok[b]:
                item.setData(kp[[a, b], 0], kp[[a, b], 1])
                item.setVisible(True)
            else:
                item.setVisible(False)
        idx = np.flatnonzero(ok)
        conf = np.clip(kp[idx, 2], 0.0, 1.0)
        brushes = [pg.mkBrush(int(255 * (1 - c)), int(255 * c), 0, self._alpha) for c in conf]
        sizes = 6 + 8 * conf
        self.joints.setData(x=kp[idx, 0], y=kp[idx, 1], brush=brushes, size=sizes,
                            data=[self.skeleton.joints[i] for i in idx])
