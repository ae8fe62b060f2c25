"""The labelling canvas: one frame, its joints and box, edited with the mouse; wheel zooms, dragging the image pans.

The canvas only reports what the mouse did (a click at an image position, a joint or box corner dragged);
which joint a click places and how an edit becomes an undo command is the workspace's business. Joints and
the box are painted in device pixels, so handles stay the same size at any zoom, and hit-testing uses the
same screen radius.

A predicted joint shows how sure the model was: the less confident, the smaller and fainter its dot (so the
joints to check first stand out), and hovering it shows the number.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QToolTip

from cpm_core.dataset.project import FrameState
from cpm_core.skeleton import Skeleton, limb_colours

HIT_RADIUS_PX = 9.0
JOINT_RADIUS_PX = 5.0
BOX_COLOR = QColor(255, 215, 0)
PREDICTED_COLOR = QColor(255, 0, 255)
MIN_ALPHA = 70  # a predicted joint at confidence 0 is this opaque (of 255); at 1, fully


def predicted_style(confidence: float | None) -> tuple[float, int]:
    """(radius in screen pixels, alpha) of a predicted joint's dot: size and opacity grow with the model's
    confidence, so a glance finds the joints to check; unknown confidence (a prediction from an earlier session)
    draws as an ordinary joint."""
    if confidence is None or not np.isfinite(confidence):
        return JOINT_RADIUS_PX, 255
    c = float(np.clip(confidence, 0.0, 1.0))
    return JOINT_RADIUS_PX * (0.6 + 0.6 * c), int(round(MIN_ALPHA + (255 - MIN_ALPHA) * c))


def joint_colors(skeleton: Skeleton) -> list[QColor]:
    """One colour per joint: the colour of the limb that ends at it (the root takes the first limb's). Limb colours
    are `limb_colours`' (a body's left and right in two families, as every other drawer draws them)."""
    colours = limb_colours(skeleton)
    out = [QColor(*reversed(colours[0])) if colours else QColor(0, 200, 255)] * skeleton.num_joints
    for (_, b), bgr in zip(skeleton.limbs, colours):
        out[b] = QColor(bgr[2], bgr[1], bgr[0])
    return list(out)


def box_corners(bbox: tuple[float, float, float, float]) -> np.ndarray:
    """(4, 2) corners of an (x, y, w, h) box: top-left, top-right, bottom-right, bottom-left."""
    x, y, w, h = bbox
    return np.array([(x, y), (x + w, y), (x + w, y + h), (x, y + h)], dtype=np.float64)


class AnnotationItem(pg.GraphicsObject):
    """Limbs, joints (filled: visible, hollow: occluded, magenta dashed ring: predicted), the box and its corners."""

    def __init__(self) -> None:
        super().__init__()
        self.skeleton: Skeleton | None = None
        self.state: FrameState | None = None
        self.selected = -1
        self.confidence: np.ndarray | None = None  # (J,) the model's confidence of each predicted joint
        self._colors: list[QColor] = []
        self._rect = QRectF()

    def set_content(self, skeleton: Skeleton, state: FrameState, selected: int, image_rect: QRectF,
                    confidence: np.ndarray | None = None) -> None:
        if skeleton is not self.skeleton:
            self._colors = joint_colors(skeleton)
        self.prepareGeometryChange()
        self.skeleton, self.state, self.selected = skeleton, state, selected
        self.confidence = confidence
        rect = QRectF(image_rect)
        pts = state.keypoints[state.placed] if state.placed.any() else np.zeros((0, 2))
        if len(pts):
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            rect = rect.united(QRectF(x0, y0, x1 - x0, y1 - y0))
        x, y, w, h = state.bbox
        if w > 0 and h > 0:
            rect = rect.united(QRectF(x, y, w, h))
        pad = 0.05 * max(rect.width(), rect.height(), 1.0)
        self._rect = rect.adjusted(-pad, -pad, pad, pad)
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return self._rect

    def joint_confidence(self, j: int) -> float | None:
        """The model's confidence of joint `j` if it is still a prediction (None once a person placed it)."""
        st, conf = self.state, self.confidence
        if st is None or conf is None or not st.predicted[j] or j >= len(conf):
            return None
        return float(conf[j])

    def joint_style(self, j: int) -> tuple[float, int]:
        """(radius, alpha) joint `j` is drawn with."""
        return predicted_style(self.joint_confidence(j))

    def paint(self, painter: QPainter, *args) -> None:
        st, sk = self.state, self.skeleton
        if st is None or sk is None:
            return
        tr = painter.transform()
        pts = [tr.map(QPointF(float(x), float(y))) for x, y in st.keypoints]
        placed = st.placed
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        x, y, w, h = st.bbox
        if w > 0 and h > 0:
            corners = [tr.map(QPointF(cx, cy)) for cx, cy in box_corners(st.bbox)]
            pen = QPen(BOX_COLOR, 1.5, Qt.PenStyle.DashLine if st.bbox_auto else Qt.PenStyle.SolidLine)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPolygon(corners)
            painter.setBrush(QBrush(BOX_COLOR))
            for c in corners:
                painter.drawRect(QRectF(c.x() - 4, c.y() - 4, 8, 8))
        for (a, b), bgr in zip(sk.limbs, limb_colours(sk)):
            if placed[a] and placed[b]:
                occluded = st.visibility[a] == 1 or st.visibility[b] == 1
                style = Qt.PenStyle.DashLine if occluded else Qt.PenStyle.SolidLine
                painter.setPen(QPen(QColor(bgr[2], bgr[1], bgr[0], 220), 2.0, style))
                painter.drawLine(pts[a], pts[b])
        r = JOINT_RADIUS_PX
        for j in np.flatnonzero(placed):
            jr, alpha = self.joint_style(j)
            color = QColor(self._colors[j])
            color.setAlpha(alpha)
            painter.setPen(QPen(QColor(0, 0, 0, alpha), 1.2))
            if st.visibility[j] == 2:
                painter.setBrush(QBrush(color))
            else:  # occluded: hollow, in the joint's colour
                painter.setPen(QPen(color, 2.5))
                painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(pts[j], jr, jr)
            if st.predicted[j]:
                ring = QColor(PREDICTED_COLOR)
                ring.setAlpha(alpha)
                painter.setPen(QPen(ring, 1.5, Qt.PenStyle.DotLine))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawEllipse(pts[j], jr + 3, jr + 3)
        if 0 <= self.selected < len(pts) and placed[self.selected]:
            p = pts[self.selected]
            painter.setPen(QPen(QColor(255, 255, 255), 2.0))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(p, r + 5, r + 5)
            font = QFont()
            font.setPointSizeF(9.0)
            font.setBold(True)
            painter.setFont(font)
            label = f"{self.selected} {sk.joints[self.selected]}"
            painter.setPen(QPen(QColor(0, 0, 0)))
            painter.drawText(p + QPointF(r + 8, -r - 3), label)
            painter.setPen(QPen(QColor(255, 255, 255)))
            painter.drawText(p + QPointF(r + 7, -r - 4), label)
        painter.restore()


class AnnotationViewBox(pg.ViewBox):
    """A ViewBox whose left drags move the joint or box corner under the mouse (elsewhere they pan)."""

    def __init__(self, canvas: AnnotationCanvasView):
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.canvas = canvas
        self._drag: tuple[str, int] | None = None

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph override
        if ev.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            self.canvas.handle_click(p.x(), p.y(), ev.button())
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 - pyqtgraph override
        if ev.button() == Qt.MouseButton.LeftButton:
            if ev.isStart():
                start = self.mapSceneToView(ev.buttonDownScenePos())
                self._drag = self.canvas.hit_test(start.x(), start.y())
            if self._drag is not None:
                ev.accept()
                p = self.mapSceneToView(ev.scenePos())
                kind, k = self._drag
                finished = ev.isFinish()
                if finished:
                    self._drag = None
                if kind == "joint":
                    self.canvas.jointDragged.emit(k, p.x(), p.y(), finished)
                else:
                    self.canvas.cornerDragged.emit(k, p.x(), p.y(), finished)
                return
        super().mouseDragEvent(ev, axis)


class AnnotationCanvasView(pg.GraphicsView):
    """Shows one frame with its annotation and turns mouse gestures into signals in image coordinates."""

    placeRequested = Signal(float, float)  # left click on no joint
    jointClicked = Signal(int)  # left click on a joint: select it
    jointRightClicked = Signal(int)  # right click on a joint: cycle its visibility
    jointDragged = Signal(int, float, float, bool)  # joint, x, y, finished
    cornerDragged = Signal(int, float, float, bool)  # corner (0 top-left, clockwise), x, y, finished

    def __init__(self, parent=None):
        super().__init__(parent, background=(30, 30, 30))
        self.view = AnnotationViewBox(self)
        self.setCentralItem(self.view)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.overlay = AnnotationItem()
        self.overlay.setZValue(10)
        self.view.addItem(self.overlay)
        self.state: FrameState | None = None
        self.skeleton: Skeleton | None = None
        self.hover = ""  # what hovering the joint under the mouse says (also its tooltip)
        self._shape: tuple[int, ...] | None = None
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.viewport().setMouseTracking(True)

    # -------------------------------------------------------------- drawing
    def set_image(self, rgb: np.ndarray) -> None:
        self.image.setImage(rgb, autoLevels=False, levels=(0, 255))
        if rgb.shape[:2] != self._shape:
            self._shape = rgb.shape[:2]
            self.fit()

    def fit(self) -> None:
        if self._shape is not None:
            h, w = self._shape
            self.view.setRange(QRectF(0, 0, w, h), padding=0.02)

    def set_annotation(self, skeleton: Skeleton, state: FrameState, selected: int,
                       confidence: np.ndarray | None = None) -> None:
        """Draw `state`; `confidence` (J,) is the model's for the joints still marked predicted."""
        self.state, self.skeleton = state, skeleton
        h, w = self._shape or (0, 0)
        self.overlay.set_content(skeleton, state, selected, QRectF(0, 0, w, h), confidence)

    # -------------------------------------------------------------- hover
    def hover_text(self, x: float, y: float) -> str:
        """What the joint at image point (x, y) is: its name, and for a prediction the model's confidence."""
        hit = self.hit_test(x, y)
        if hit is None or hit[0] != "joint" or self.skeleton is None or self.state is None:
            return ""
        j = hit[1]
        name = f"{j} {self.skeleton.joints[j]}"
        if self.state.predicted[j]:
            conf = self.overlay.joint_confidence(j)
            return f"{name}: predicted" + ("" if conf is None else f", confidence {conf:.2f}")
        return f"{name}: {'occluded' if self.state.visibility[j] == 1 else 'visible'}"

    def mouseMoveEvent(self, ev) -> None:  # noqa: N802 - Qt override
        super().mouseMoveEvent(ev)
        if ev.buttons() != Qt.MouseButton.NoButton:
            return
        p = self.view.mapSceneToView(self.mapToScene(ev.position().toPoint()))
        text = self.hover_text(p.x(), p.y())
        if text != self.hover:
            self.hover = text
            self.viewport().setToolTip(text)
            if text:
                QToolTip.showText(ev.globalPosition().toPoint(), text, self.viewport())
            else:
                QToolTip.hideText()

    # -------------------------------------------------------------- geometry
    def _pixel_size(self) -> float:
        px = self.view.viewPixelSize()
        return float(max(px[0], px[1])) or 1.0

    def hit_test(self, x: float, y: float) -> tuple[str, int] | None:
        """The joint (nearest first) or box corner within HIT_RADIUS_PX screen pixels of image point (x, y)."""
        st = self.state
        if st is None:
            return None
        radius = HIT_RADIUS_PX * self._pixel_size()
        placed = np.flatnonzero(st.placed)
        if len(placed):
            d = np.hypot(st.keypoints[placed, 0] - x, st.keypoints[placed, 1] - y)
            k = int(np.argmin(d))
            if d[k] <= radius:
                return ("joint", int(placed[k]))
        if st.bbox[2] > 0 and st.bbox[3] > 0:
            c = box_corners(st.bbox)
            d = np.hypot(c[:, 0] - x, c[:, 1] - y)
            k = int(np.argmin(d))
            if d[k] <= radius:
                return ("corner", k)
        return None

    def handle_click(self, x: float, y: float, button: Qt.MouseButton) -> None:
        hit = self.hit_test(x, y)
        joint = hit[1] if hit is not None and hit[0] == "joint" else None
        if button == Qt.MouseButton.RightButton:
            if joint is not None:
                self.jointRightClicked.emit(joint)
        elif joint is not None:
            self.jointClicked.emit(joint)
        elif hit is None:
            self.placeRequested.emit(x, y)

    def widget_pos(self, x: float, y: float) -> QPoint:
        """Where image point (x, y) is in the viewport's coordinates (for tests and tooltips)."""
        scene = self.view.mapViewToScene(QPointF(x, y))
        return self.mapFromScene(scene)
