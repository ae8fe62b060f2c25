"""Plot pieces that keep the Train / Distill / Evaluate plots readable at any size.

pyqtgraph always draws every label of its first tick level, even when they overlap: on a log axis spanning less
than a decade that level is the minor ticks (2·10⁻¹, 3·10⁻¹, ... stacked on each other), and a bar chart's
joint names ran into one string. `TidyAxis` draws a label only where it does not overlap one already drawn
(coarser levels first), `CategoryAxis` labels bars with names and shows as many as fit, and `legend_beside`
puts a legend in its own column of the plot instead of over the curves. Axes never rescale their numbers with
an SI prefix ("(x0.001)"): a threshold of 0.2 box sizes reads 0.2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg


class TidyAxis(pg.AxisItem):
    """An axis whose tick labels never overlap: a label that would overlap one already placed is left out."""

    def __init__(self, orientation: str, **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)

    def generateDrawSpecs(self, p):  # noqa: N802 - pyqtgraph override
        limits = self.style["textFillLimits"]
        if self.logMode:  # pyqtgraph would give up on the minor level whole; here its labels that fit are kept
            self.style["textFillLimits"] = [(0, 10.0)]
        try:
            specs = super().generateDrawSpecs(p)
        finally:
            self.style["textFillLimits"] = limits
        if specs is None:
            return None
        axis_spec, tick_specs, text_specs = specs
        kept: list = []
        for rect, flags, text in text_specs:  # pyqtgraph lists the coarsest level first
            if not any(rect.intersects(other) for other, _, _ in kept):
                kept.append((rect, flags, text))
        return axis_spec, tick_specs, kept

    def logTickValues(self, minVal, maxVal, size, stdTicks):  # noqa: N802, N803 - pyqtgraph override
        """pyqtgraph's log ticks with the decades (1, 0.1, ...) as a level of their own ahead of the minor ticks,
        so that where labels must be left out, the decades keep theirs."""
        levels = []
        for spacing, values in super().logTickValues(minVal, maxVal, size, stdTicks):
            if spacing is None:
                decades = [v for v in values if abs(v - round(v)) < 1e-9]
                if decades:
                    levels.append((1.0, decades))
                values = [v for v in values if abs(v - round(v)) >= 1e-9]
            levels.append((spacing, values))
        return levels

    def drawn_labels(self) -> list[tuple[object, str]]:
        """(rect, text) of the labels the axis draws at its current size (for tests and layout checks)."""
        from PySide6.QtGui import QImage, QPainter

        image = QImage(4, 4, QImage.Format.Format_ARGB32)
        painter = QPainter(image)
        try:
            if self.style["tickFont"] is not None:
                painter.setFont(self.style["tickFont"])
            specs = self.generateDrawSpecs(painter)
        finally:
            painter.end()
        return [] if specs is None else [(rect, text) for rect, _, text in specs[2]]


class CategoryAxis(TidyAxis):
    """Names at the integer positions 0..n-1 (bars); as many as fit without overlapping, every k-th otherwise,
    so that a short plot shows a readable subset rather than one smeared string."""

    def __init__(self, orientation: str, **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.names: list[str] = []

    def set_names(self, names: Sequence[str]) -> None:
        self.names = [str(n) for n in names]
        self.picture = None
        self.update()

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803 - pyqtgraph override
        if not self.names:
            return []
        lo, hi = sorted((minVal, maxVal))
        shown = [i for i in range(len(self.names)) if lo - 0.5 <= i <= hi + 0.5]
        if not shown:
            return []
        vertical = self.orientation in ("left", "right")
        font_px = 14.0 if vertical else 7.0 * max(len(n) for n in self.names)  # a label's extent along the axis
        per_bar = size / max(hi - lo, 1e-9)
        step = max(1, int(np.ceil(font_px / max(per_bar, 1e-9))))
        return [(float(step), [float(i) for i in shown if i % step == 0])]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph override
        return [self.names[int(round(v))] if 0 <= int(round(v)) < len(self.names) else "" for v in values]


def legend_beside(plot: pg.PlotItem, label_size: str = "8pt") -> pg.LegendItem:
    """A legend in a column of its own right of the plot's axes, filled by curves given a name (like
    `addLegend`'s), so it never covers the data."""
    legend = pg.LegendItem(labelTextSize=label_size)
    plot.layout.addItem(legend, 2, 3)
    plot.legend = legend  # plot(name=...) adds its curve here, as with addLegend
    return legend
