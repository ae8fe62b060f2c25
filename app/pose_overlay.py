"""PoseOverlay: a skeleton drawn with pyqtgraph items on top of a frame's ImageItem.

Limbs take `cpm_core.skeleton.limb_colours` (the same ones `cpm_core.render` uses for saved images): a body's
right limbs warm, left limbs cool, centre grey, so left and right are told apart on screen as in saved media.
Joints take their finger's colour (a body's: their side's; `cpm_core.render.joint_colours`), and are sized in
proportion to the frame on screen, smaller and fainter when unsure: large green dots hid a hand's fingers in a
small window. The item is created once per skeleton and only its data changes per frame.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPen

from cpm_core.presence import THRESHOLD as PRESENCE_THRESHOLD
from cpm_core.render import joint_colours
from cpm_core.skeleton import Side, Skeleton, has_sides, joint_side, limb_colours


def jet_lut() -> np.ndarray:
    """(256, 3) uint8 RGB jet lookup table, matching cv2.COLORMAP_JET used by `cpm_core.render.colorize`."""
    import cv2

    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, :]
    return np.ascontiguousarray(bgr[:, ::-1])


DOT_LEVELS = 10  # joint confidence is shown in this many steps of size and opacity
DOTS_PER_FRAME = 110.0  # a sure joint's dot radius is the frame's on-screen size over this ...
DOT_RADIUS = (1.5, 6.0)  # ... within these device pixels
LIMBS_PER_FRAME = 260.0  # a limb's width is the frame's on-screen size over this, at least 1 px, at most its pen's


def dot_radius(frame_on_screen: float, confidence: float) -> float:
    """A joint dot's radius in device pixels for a frame `frame_on_screen` device pixels across: in proportion to
    the frame (a hand's fingers, a few pixels apart in a small window, stay visible between the dots; a large
    window gets dots that can be seen), 65 % of it for an unsure joint."""
    sure = float(np.clip(frame_on_screen / DOTS_PER_FRAME, *DOT_RADIUS))
    return sure * (0.65 + 0.35 * float(np.clip(confidence, 0.0, 1.0)))


def joint_dot(colour: tuple[int, int, int], radius: float, alpha: int = 255, ratio: float = 1.0
              ) -> tuple[QImage, float]:
    """A joint's dot in `colour` (RGB; its finger's, `cpm_core.render.joint_colours`) of `radius` logical pixels
    with a thin dark outline, as an image for `ratio` device pixels per logical pixel; and the offset (logical
    pixels) from its top-left corner to its centre."""
    side = int(np.ceil(2 * radius + 2))
    image = QImage(int(np.ceil(side * ratio)), int(np.ceil(side * ratio)), QImage.Format.Format_ARGB32_Premultiplied)
    image.setDevicePixelRatio(ratio)
    image.fill(0)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    outline = QPen(QColor(0, 0, 0, alpha), 1)
    outline.setCosmetic(True)
    p.setPen(outline)
    p.setBrush(QBrush(QColor(*colour, alpha)))
    p.drawEllipse(QPointF(side / 2, side / 2), radius, radius)
    p.end()
    return image, side / 2


class PoseItem(pg.GraphicsObject):
    """The whole skeleton as one graphics item painted in device pixels: one paint call per frame instead of
    a curve item per limb (each with its own bounding-rect bookkeeping), which kept the GUI thread busy.
    Joints and limbs are sized in proportion to the frame on screen (`set_frame_size`, `dot_radius`)."""

    def __init__(self, skeleton: Skeleton, width: float, alpha: int, style: Qt.PenStyle,
                 colour: tuple[int, int, int] | None = None, side: Side | None = None):
        """`colour` (RGB): every limb in one colour (a detected hand of unknown chirality, told apart from the
        others by its id's colour); default: `limb_colours(skeleton, side)`, `side` being a hand's chirality when
        known. Joints always take `joint_colours(skeleton, side)`."""
        super().__init__()
        self.skeleton = skeleton
        colours = ([colour] * len(skeleton.limbs) if colour is not None
                   else [(r, g, b) for b, g, r in limb_colours(skeleton, side)])
        self._pens = [QPen(QColor(r, g, b, alpha), width, style) for r, g, b in colours]
        for pen in self._pens:
            pen.setCosmetic(True)
        self._width = width
        # Joints keep their finger's colour even when the limbs take a subject's id colour: the outline and label
        # tell subjects apart, the dots which finger is which.
        self.joint_rgb = [(r, g, b) for b, g, r in joint_colours(skeleton, side)]
        self._alpha = alpha
        self._dots: dict[tuple[float, float, int, int], tuple[QImage, float]] = {}
        self._kp = np.zeros((0, 3))
        self._ok = np.zeros(0, bool)
        self._rect = QRectF()
        self.frame_extent: float | None = None  # the frame's larger side in its pixels (None: not known yet)

    def set_frame_size(self, width: int, height: int) -> None:
        """The frame the pose is drawn on: dots and limbs are sized in proportion to it on screen."""
        self.frame_extent = float(max(width, height))

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
        # Joints to device pixels with one matrix product rather than a QTransform.map call each: this paint runs
        # at the screen's rate and every Python-to-Qt call holds the interpreter the model thread needs.
        t = painter.transform()
        dev = (self._kp[:, :2] @ np.array([[t.m11(), t.m12()], [t.m21(), t.m22()]]) + [t.dx(), t.dy()]).tolist()
        ok = self._ok.tolist()
        conf = np.clip(np.nan_to_num(self._kp[:, 2]), 0.0, 1.0)
        levels = np.rint(conf * DOT_LEVELS).astype(int).tolist()
        scale = abs(t.m11() * t.m22() - t.m12() * t.m21()) ** 0.5  # device pixels per frame pixel
        on_screen = scale * self.frame_extent if self.frame_extent else 440.0
        device = painter.device()
        ratio = device.devicePixelRatioF() if device is not None else 1.0
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        width = min(self._width, max(1.0, on_screen / LIMBS_PER_FRAME))
        for (a, b), pen in zip(self.skeleton.limbs, self._pens):
            if ok[a] and ok[b]:
                if pen.widthF() != width:
                    pen.setWidthF(width)
                painter.setPen(pen)
                painter.drawLine(QLineF(dev[a][0], dev[a][1], dev[b][0], dev[b][1]))
        size = round(dot_radius(on_screen, 1.0) * 2) / 2  # half-pixel steps: a handful of cached dot sizes
        for j, seen in enumerate(ok):
            if seen:
                image, half = self._dot(ratio, size, j, levels[j])
                painter.drawImage(QPointF(dev[j][0] - half, dev[j][1] - half), image)
        painter.restore()

    def _dot(self, ratio: float, size: float, joint: int, level: int) -> tuple[QImage, float]:
        """A joint's dot, rendered once per device-pixel ratio, size, joint and confidence level: blitting took a
        third of the time of rasterising 21 outlined, antialiased ellipses on every paint (the largest single
        part of the multi view's paint)."""
        key = (ratio, size, joint, level)
        dot = self._dots.get(key)
        if dot is None:
            if len(self._dots) > 4096:  # sizes change with the window: keep the cache bounded
                self._dots.clear()
            conf = level / DOT_LEVELS
            radius = size * (0.65 + 0.35 * conf)
            dot = self._dots[key] = joint_dot(self.joint_rgb[joint], radius, int(self._alpha * (0.55 + 0.45 * conf)),
                                              ratio)
        return dot


class PoseOverlay:
    """A skeleton on a ViewBox: limbs in `limb_colours` (or one `colour`), joints in `joint_colours`."""

    def __init__(self, view: pg.ViewBox, skeleton: Skeleton, width: float = 2.5, alpha: int = 255,
                 style: Qt.PenStyle = Qt.PenStyle.SolidLine, z: float = 10, colour: tuple[int, int, int] | None = None,
                 side: Side | None = None):
        self.view = view
        self.skeleton = skeleton
        self.side = side
        self.item = PoseItem(skeleton, width, alpha, style, colour, side)
        self.item.setZValue(z)
        view.addItem(self.item)

    def set_visible(self, visible: bool) -> None:
        self.item.setVisible(visible)

    def remove(self) -> None:
        self.view.removeItem(self.item)

    def update(self, keypoints: np.ndarray, threshold: float) -> None:
        self.item.set_pose(keypoints, threshold)

    def set_frame_size(self, width: int, height: int) -> None:
        self.item.set_frame_size(width, height)


def subject_rgb(subject_id: int) -> tuple[int, int, int]:
    """The subject's colour as RGB: the same hue `cpm_core.detection.draw` uses in saved media (BGR there)."""
    from cpm_core.detection.draw import subject_colour

    b, g, r = subject_colour(subject_id)
    return r, g, b


def subject_side(label: str) -> Side | None:
    """A subject's chirality from its detector label ('left hand', 'Right'), None when the label has no side:
    the palm and person detectors here label only 'hand' / 'person'."""
    return joint_side(label) if label else None


class SubjectGraphics:
    """One detected subject on a ViewBox: skeleton, crop outline (rotated for hands) and '#id' label. Outline and
    label are in the subject's colour; the selected subject's outline is solid and thicker, the others dashed.
    A body's limbs keep the left/right colour families (the id colour would hide which side is which; the
    outline and label tell subjects apart); a hand of known chirality (`side`) takes its side's family; a hand
    of unknown chirality is drawn whole in the id's colour, which is what tells two such hands apart."""

    def __init__(self, view: pg.ViewBox, skeleton: Skeleton, subject_id: int, side: Side | None = None):
        self.view = view
        self.skeleton = skeleton
        self.subject_id = subject_id
        self.side = side
        colour = subject_rgb(subject_id)
        own = has_sides(skeleton) or side is not None
        self.pose = PoseOverlay(view, skeleton, colour=None if own else colour, side=side, z=11)
        self._pens = {sel: pg.mkPen(colour, width=3 if sel else 1.5,
                                    style=Qt.PenStyle.SolidLine if sel else Qt.PenStyle.DashLine)
                      for sel in (False, True)}
        self.box = pg.PlotCurveItem(pen=self._pens[False])
        self.box.setZValue(9)
        view.addItem(self.box)
        self.label = pg.TextItem(anchor=(0, 1), color=(0, 0, 0), fill=pg.mkBrush(*colour, 220))
        self.label.setZValue(21)
        view.addItem(self.label)

    def update(self, subject, keypoints: np.ndarray, threshold: float, selected: bool,
               frame_size: tuple[int, int] | None = None) -> None:
        """`frame_size` (w, h) keeps the label on the frame when a crop reaches past its edges and sizes the
        pose's dots in proportion to the frame."""
        if frame_size is not None:
            self.pose.set_frame_size(*frame_size)
        self.pose.update(keypoints, threshold)
        corners = subject.crop.corners()
        closed = np.vstack([corners, corners[:1]])
        self.box.setData(closed[:, 0], closed[:, 1])
        self.box.setPen(self._pens[selected])
        top = corners[np.argmin(corners[:, 1])]  # the topmost corner, wherever the rotation put it
        self.label.setText(f"#{subject.id} {subject.score:.2f}" + (" \u25c0" if selected else ""))
        x, y = float(top[0]), float(top[1])
        anchor = [0.0, 1.0]  # the label's bottom-left on the crop's top corner
        if frame_size is not None:
            w, h = frame_size
            if x > 0.8 * w:
                anchor[0] = 1.0
            if y < 0:
                anchor[1] = 0.0  # hang it from the frame's top edge instead of above it
            x, y = min(max(x, 0.0), float(w)), min(max(y, 0.0), float(h))
        self.label.setAnchor(tuple(anchor))
        self.label.setPos(x, y)

    def set_visible(self, visible: bool) -> None:
        for item in (self.pose.item, self.box, self.label):
            item.setVisible(visible)

    def remove(self) -> None:
        self.pose.remove()
        self.view.removeItem(self.box)
        self.view.removeItem(self.label)


class SubjectsOverlay:
    """Every detected subject of a frame on one ViewBox, graphics kept per id (an id keeps its colour and
    items while it lives; items of ids gone are removed)."""

    def __init__(self, view: pg.ViewBox):
        self.view = view
        self.items: dict[int, SubjectGraphics] = {}

    def clear(self) -> None:
        for g in self.items.values():
            g.remove()
        self.items = {}

    def update(self, subjects: list, skeleton: Skeleton, threshold: float, selected: int | None,
               kalman: bool = True, frame_size: tuple[int, int] | None = None) -> None:
        """`subjects` are `cpm_core.pose_frame.SubjectPose`s; `selected` is the id drawn as selected."""
        for sid in [sid for sid, g in self.items.items() if g.skeleton != skeleton]:
            self.items.pop(sid).remove()
        sides = {s.id: subject_side(getattr(s, "label", "")) for s in subjects}
        for sid in [sid for sid, g in self.items.items() if sid not in sides or g.side != sides[sid]]:
            self.items.pop(sid).remove()
        for s in subjects:
            g = self.items.get(s.id)
            if g is None:
                g = self.items[s.id] = SubjectGraphics(self.view, skeleton, s.id, sides[s.id])
            keypoints = s.smoothed if kalman else s.raw
            if getattr(s, "presence", 1.0) < PRESENCE_THRESHOLD:  # the detector's box, but no hand seen in it
                keypoints = np.full_like(keypoints, np.nan)
            g.update(s, keypoints, threshold, s.id == selected, frame_size)
