"""The live confidence plots: every result recorded, drawn cheaply (x range by half pages, timeline blitted)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from app.plots import HISTORY, PAGE, UNSEEN_BGRA, ConfidencePlotsWidget


def _pose(index: int, peaks: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(index=index, stage_conf=np.array([0.2, 0.5, 0.8]), joint_peaks=peaks)


def test_stage_plot_x_range_moves_by_half_pages_and_keeps_the_newest_frame(qtbot):
    plots = ConfidencePlotsWidget()
    qtbot.addWidget(plots)
    plots.reset(None)
    ranges = []
    for i in range(2 * HISTORY + 10):
        plots._record(_pose(i, np.full(21, 0.5, np.float32)))
        plots.redraw()
        lo, hi = plots.stage_plot.getViewBox().viewRange()[0]
        assert lo <= i <= hi
        ranges.append((round(lo), round(hi)))
    distinct = list(dict.fromkeys(ranges))
    assert distinct[0] == (0, HISTORY) and all(b[0] - a[0] == PAGE for a, b in zip(distinct, distinct[1:]))
    assert len(distinct) <= 2 * HISTORY // PAGE + 1  # moved a few times, not on every frame
    assert len(plots._x) == HISTORY  # the curves keep the last HISTORY results
    plots._record(_pose(3, np.full(21, 0.5, np.float32)))  # a seek back: the range follows at once
    plots.redraw()
    lo, hi = plots.stage_plot.getViewBox().viewRange()[0]
    assert lo <= 3 <= hi


def test_timeline_is_the_peaks_through_the_jet_table(qtbot):
    from app.fast_image import bgra_lut
    from app.pose_overlay import jet_lut

    plots = ConfidencePlotsWidget()
    qtbot.addWidget(plots)
    plots.show()
    plots.reset(40)
    peaks = np.linspace(0, 1, 21, dtype=np.float32)
    plots._record(_pose(7, peaks))
    plots.redraw()
    image = plots.timeline.image
    assert image.shape == (21, 40, 4) and image.dtype == np.uint8
    lut = bgra_lut(jet_lut())
    np.testing.assert_array_equal(image[:, 7], lut[(peaks * 255).astype(int)])
    # frames not processed (not reached yet, or dropped) are grey, not the table's zero-confidence blue
    np.testing.assert_array_equal(image[:, 0], np.repeat(np.array([UNSEEN_BGRA], np.uint8), 21, axis=0))
    assert not (image[:, 0] == lut[0]).all()
    assert plots.cursor.value() == 7.5
    plots._record(_pose(8, np.zeros(21, np.float32)))  # a processed frame of zero confidence is the table's zero
    plots.redraw()
    np.testing.assert_array_equal(plots.timeline.image[:, 8], np.repeat(lut[:1], 21, axis=0))
    plots.set_autoscale(True)  # auto-scaled colours span what was seen, unprocessed columns ignored
    plots.redraw()
    np.testing.assert_array_equal(plots.timeline.image[:, 7], lut[(peaks * 255).astype(int)])
