"""How the views draw: the heatmap mosaic's canvas and the pose overlay's joint dots (real widgets, offscreen)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

from app.pose_overlay import DOT_LEVELS, dot_radius, joint_dot
from app.views import BACKGROUND_BGRA, JET_BGRA, HeatmapMosaic


def _mosaic(qtbot) -> tuple[HeatmapMosaic, pg.GraphicsLayoutWidget]:
    widget = pg.GraphicsLayoutWidget()
    qtbot.addWidget(widget)
    return HeatmapMosaic(widget.ci, 0, 0, tile=32), widget  # the widget owns the items: keep it alive


def test_mosaic_colours_each_tile_in_place_and_redraws_a_title_only_when_it_changes(qtbot):
    mosaic, _widget = _mosaic(qtbot)
    maps = [np.full((8, 8), v, np.float32) for v in (0.0, 0.5, 1.0)]
    maps[1][2, 3] = np.nan  # shown as the bottom of the scale, not garbage
    mosaic.show(maps, ["a", "b", "c"], cols=2)
    canvas = mosaic.image.image
    band, side, gap = mosaic.TITLE_BAND, mosaic.tile, mosaic.GAP
    assert canvas.shape == (2 * (band + side) + gap, 2 * side + gap, 4)
    for i, value in enumerate((0.0, 0.5, 1.0)):
        r, c = divmod(i, 2)
        y, x = r * (band + side + gap) + band, c * (side + gap)
        np.testing.assert_array_equal(canvas[y + side - 1, x + side - 1], JET_BGRA[int(value * 255)])
    y1, x1 = band, side + gap  # tile 1: cell (2, 3) of an 8-cell map enlarged 4x (nearest neighbour)
    np.testing.assert_array_equal(canvas[y1 + 2 * 4 + 1, x1 + 3 * 4 + 1], JET_BGRA[0])
    np.testing.assert_array_equal(canvas[-1, -1], BACKGROUND_BGRA)  # the empty fourth place
    title_a = canvas[:band, :side].copy()
    assert (title_a != np.asarray(BACKGROUND_BGRA, np.uint8)).any()  # the title was drawn

    mosaic.cells[0]._title_at -= 10.0  # long enough ago: the next title change is shown
    mosaic.show([m * 0 + 1.0 for m in maps], ["a much longer title", "b", "c"], cols=2)
    assert mosaic.image.image is canvas  # the same array, coloured over
    np.testing.assert_array_equal(canvas[band + 1, 1], JET_BGRA[255])
    assert (canvas[:band, :side] != title_a).any()
    title_b = canvas[:band, side + gap:2 * side + gap].copy()
    mosaic.show(maps, ["a", "b changed at once", "c"], cols=2)  # too soon after the last change: kept
    np.testing.assert_array_equal(canvas[:band, side + gap:2 * side + gap], title_b)

    mosaic.show(maps[:2], ["a", "b"], cols=1)  # a new layout gets a new canvas
    assert mosaic.image.image.shape == (2 * (band + side) + gap, side, 4)


def test_joint_dots_take_their_colour_and_radius():
    thumb = (255, 25, 25)
    small, half_small = joint_dot(thumb, 2.0)
    large, half_large = joint_dot(thumb, 6.0)
    assert half_large > half_small and large.width() > small.width()
    centre = QColor(large.pixel(large.width() // 2, large.height() // 2))
    assert (centre.red(), centre.green(), centre.blue()) == thumb
    assert QColor.fromRgba(large.pixel(0, 0)).alpha() == 0  # transparent around the dot
    sharp, _ = joint_dot(thumb, 6.0, ratio=2.0)  # a HiDPI screen gets a dot drawn at its own resolution
    assert sharp.width() == 2 * large.width() and sharp.devicePixelRatio() == 2.0
    assert DOT_LEVELS >= 5
    assert dot_radius(200, 1.0) < dot_radius(800, 1.0)  # in proportion to the frame on screen ...
    assert dot_radius(50, 1.0) >= 1.5 and dot_radius(5000, 1.0) <= 6.0  # ... within limits
    assert dot_radius(800, 0.0) < dot_radius(800, 1.0)  # an unsure joint's dot is smaller


def test_every_view_fills_its_background_without_a_cached_pixmap(qtbot):
    """The views fill their plain background on each paint (no pixmap cache): the corners show the background
    colour at the first size and again after a resize."""
    from app.views import BACKGROUND, VIEW_CLASSES

    for name, cls in VIEW_CLASSES.items():
        view = cls()
        qtbot.addWidget(view)
        for size in ((320, 200), (500, 360)):
            view.resize(*size)
            image = view.grab().toImage()
            for x, y in ((1, 1), (image.width() - 2, image.height() - 2)):
                assert image.pixelColor(x, y) == QColor(*BACKGROUND), (name, size, (x, y))
