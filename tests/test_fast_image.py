"""The BGRA blit path the live views paint with: right colours on screen, right colour map, right bounds."""

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QRectF

from app.fast_image import FastImageItem, bgra_lut, colour_map
from app.pose_overlay import jet_lut


def _grab_colour(qtbot, bgra: np.ndarray) -> tuple[int, int, int]:
    """Paint `bgra` filling a plain GraphicsView and read back the centre pixel as (r, g, b)."""
    view = pg.GraphicsView()
    qtbot.addWidget(view)
    view.resize(120, 120)
    item = FastImageItem()
    item.set_bgra(bgra)
    view.scene().addItem(item)
    view.setRange(QRectF(0, 0, bgra.shape[1], bgra.shape[0]), padding=0)
    view.show()
    qtbot.waitExposed(view)
    img = view.grab().toImage()
    c = img.pixelColor(img.width() // 2, img.height() // 2)
    return c.red(), c.green(), c.blue()


@pytest.mark.parametrize("bgr", [(255, 0, 0), (0, 0, 255), (30, 160, 90)])
def test_an_opencv_frame_shows_in_its_true_colours(qtbot, bgr):
    frame = np.zeros((40, 60, 4), np.uint8)
    frame[..., :3] = bgr
    frame[..., 3] = 255
    r, g, b = _grab_colour(qtbot, frame)
    assert (r, g, b) == (bgr[2], bgr[1], bgr[0])


def test_bounds_follow_the_frame_size_and_bad_arrays_are_refused(qtbot):
    item = FastImageItem()
    item.set_bgra(np.zeros((30, 50, 4), np.uint8))
    assert (item.width(), item.height()) == (50, 30)
    item.set_bgra(np.zeros((70, 20, 4), np.uint8))
    assert (item.width(), item.height()) == (20, 70)
    with pytest.raises(ValueError, match="BGRA"):
        item.set_bgra(np.zeros((10, 10, 3), np.uint8))


def test_colour_map_matches_the_jet_table_and_survives_nan():
    lut = bgra_lut(jet_lut())
    values = np.array([[0.0, 0.5, 1.0, np.nan, 7.0, -3.0]], np.float32)
    out = colour_map(values, (0.0, 1.0), lut)
    rgb = jet_lut()
    np.testing.assert_array_equal(out[0, 0, :3], rgb[0, ::-1])
    np.testing.assert_array_equal(out[0, 2, :3], rgb[255, ::-1])
    np.testing.assert_array_equal(out[0, 1, :3], rgb[127, ::-1])
    np.testing.assert_array_equal(out[0, 3], out[0, 0])  # NaN shows as the bottom of the map
    np.testing.assert_array_equal(out[0, 4], out[0, 2])  # beyond the levels: clipped
    np.testing.assert_array_equal(out[0, 5], out[0, 0])
    assert (out[..., 3] == 255).all()
    flat = colour_map(np.ones((2, 2), np.float32), (0.5, 0.5), lut)  # a constant map with empty levels
    assert (flat[..., :3] == lut[0, :3]).all()
