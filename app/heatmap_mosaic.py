"""Heatmap tiles drawn as one image (`HeatmapMosaic`), with their titles in a real font fitted to each tile.

Split from `app.views` (which re-exports these names): the views compose a frame panel and a mosaic; the mosaic's
drawing, colouring and titling live here.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QGuiApplication, QImage, QPainter

from app.fast_image import FastImageItem, bgra_lut, colour_map
from app.pose_overlay import jet_lut

JET_BGRA = bgra_lut(jet_lut())
BACKGROUND = (30, 30, 30)
BACKGROUND_BGRA = (30, 30, 30, 255)
TITLE_RGB = (215, 215, 215)
TITLE_INTERVAL_S = 0.25  # a heatmap title changes at most this often: numbers changing at video rate cannot be read
TITLE_PIXELS = (8, 13)  # the smallest and largest font size (pixels) of a tile's title


def image_plot(layout: pg.GraphicsLayout, row: int, col: int, title: str = "", **kwargs
                ) -> tuple[pg.PlotItem, pg.ViewBox, FastImageItem]:
    """An axis-less PlotItem holding one row-major ImageItem; the plot's title sizes itself, unlike a label."""
    plot = layout.addPlot(row=row, col=col, title=title or None, **kwargs)
    for axis in ("left", "bottom"):
        plot.hideAxis(axis)
    plot.hideButtons()
    plot.setMenuEnabled(False)
    vb = plot.getViewBox()
    vb.setAspectLocked(True)
    vb.invertY(True)
    img = FastImageItem()
    vb.addItem(img)
    return plot, vb, img


def fit_title(text: str, width: int, band: int) -> tuple[QFont, str]:
    """The font and text of a tile's title: the application's own (antialiased) font at the largest pixel size in
    TITLE_PIXELS that fits `band` high and `width` wide; at the smallest size a title still too long is elided at
    its end, so its start ("#2 stage 1") always shows. Why: OpenCV's Hershey font at this size read "mean" as
    "meon", and a title with a subject's id ran off its tile."""
    font = QFont(QGuiApplication.font())
    room = width - 2
    size = max(TITLE_PIXELS[0], min(TITLE_PIXELS[1], band - 5))
    while True:
        font.setPixelSize(size)
        metrics = QFontMetrics(font)
        if metrics.horizontalAdvance(text) <= room or size <= TITLE_PIXELS[0]:
            break
        size -= 1
    if metrics.horizontalAdvance(text) > room:
        text = metrics.elidedText(text, Qt.TextElideMode.ElideRight, room)
    return font, text


def draw_title(strip: np.ndarray, text: str) -> None:
    """Draw `text` (fitted by `fit_title`) into a BGRA `strip` (band x width, C-contiguous) in place."""
    band, width = strip.shape[:2]
    font, shown = fit_title(text, width, band)
    image = QImage(strip.data, width, band, strip.strides[0], QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
    painter.setFont(font)
    painter.setPen(QColor(*TITLE_RGB))
    painter.drawText(QRectF(1, 0, width - 2, band), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, shown)
    painter.end()


def heatmap_levels(heatmap: np.ndarray, autoscale: bool) -> tuple[float, float]:
    """(0, 1) for a trained model's heatmaps; the tile's own range when auto-scaling (weak or untrained models
    output values far below 1, which would all show as the colour map's bottom)."""
    if autoscale:
        finite = heatmap[np.isfinite(heatmap)]
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            if hi > lo:
                return lo, hi
    return 0.0, 1.0


def format_confidence(value: float) -> str:
    """Two decimals for a trained model's peaks; scientific notation for the tiny values of untrained ones."""
    return f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.1e}"


class HeatmapCell:
    """One tile of a `HeatmapMosaic`: the values it shows (before the colour map, for tests and readouts) and its
    title, which changes at most every TITLE_INTERVAL_S (a title that changed at video rate could not be read)."""

    def __init__(self):
        self.values: np.ndarray | None = None
        self._title = ""
        self._title_at = 0.0

    @property
    def title(self) -> str:
        """The title drawn above the tile now (it lags a changing title by up to TITLE_INTERVAL_S)."""
        return self._title

    def update(self, heatmap: np.ndarray, title: str) -> None:
        self.values = heatmap
        now = time.perf_counter()
        if title != self._title and (not self._title or now - self._title_at >= TITLE_INTERVAL_S):
            self._title, self._title_at = title, now


class HeatmapMosaic:
    """Titled, colour-mapped heatmap tiles drawn as ONE image in one ViewBox.

    A PlotItem, ViewBox, ImageItem and title label per tile made Qt call back into Python for every one of them
    on every paint, and the model thread waited for the interpreter meanwhile: in the multi-stage view the three
    stage tiles took ~1.8 ms of a 4.8 ms paint on the AVX2 machine. Here the tiles are coloured with one table
    lookup, enlarged cell by cell (nearest neighbour, so cells stay visible) and titled (`draw_title`, a real
    font fitted to the tile) into one BGRA canvas, which Qt blits."""

    TITLE_BAND = 20  # canvas pixels above each tile for its title
    GAP = 8

    def __init__(self, layout: pg.GraphicsLayout, row: int, col: int, tile: int = 128):
        self.plot, self.view, self.image = image_plot(layout, row, col)
        self.view.setMouseEnabled(False, False)
        self.tile = tile
        self.cells: list[HeatmapCell] = []
        self._canvas: np.ndarray | None = None
        self._layout: tuple[int, int] | None = None  # (tiles, columns) the canvas was laid out for
        self._titles: list[str | None] = []  # the title drawn in each tile's band (redrawn only when it changes)

    def show(self, heatmaps: list[np.ndarray], titles: list[str], cols: int, autoscale: bool = False) -> None:
        """Colour each heatmap into its place in the canvas; a title band is redrawn only when its title changed.
        The canvas stays the same array from frame to frame (what Qt blits), so a frame costs no allocation."""
        if len(self.cells) != len(heatmaps):
            self.cells = [HeatmapCell() for _ in heatmaps]
        band, side, gap = self.TITLE_BAND, self.tile, self.GAP
        if self._canvas is None or self._layout != (len(heatmaps), cols):
            rows = -(-len(heatmaps) // cols)
            self._canvas = np.empty((rows * (band + side + gap) - gap, cols * (side + gap) - gap, 4), np.uint8)
            self._canvas[:] = BACKGROUND_BGRA
            self._layout, self._titles = (len(heatmaps), cols), [None] * len(heatmaps)
            resized = True
        else:
            resized = False
        for i, (heatmap, title, cell) in enumerate(zip(heatmaps, titles, self.cells)):
            cell.update(heatmap, title)
            r, c = divmod(i, cols)
            y, x = r * (band + side + gap), c * (side + gap)
            if self._titles[i] != cell._title:
                strip = np.empty((band, side, 4), np.uint8)
                strip[:] = BACKGROUND_BGRA
                draw_title(strip, cell._title)
                self._canvas[y:y + band, x:x + side] = strip
                self._titles[i] = cell._title
            self._canvas[y + band:y + band + side, x:x + side] = cv2.resize(
                colour_map(heatmap, heatmap_levels(heatmap, autoscale), JET_BGRA), (side, side),
                interpolation=cv2.INTER_NEAREST)
        self.image.set_bgra(self._canvas)
        if resized:
            self.view.autoRange(padding=0.0)
