"""Window sizing and dock helpers: the window fits the screen it opens on, docks scroll instead of holding it tall.

At 1366x768 (a common laptop screen) the window used to open at 1400x900, with the plots and the status bar below
the screen; `fitted_window_size` and `fit_window` keep every part on the screen (issue #19).
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QScrollArea, QWidget

# The size the window opens at when the screen has room; what a window manager's title bar and borders take
# around it (the window's own size excludes them); the least room the tabs and the confidence plots keep, small
# enough that the whole window fits a 1366x768 screen.
PREFERRED_SIZE = (1400, 900)
FRAME_ALLOWANCE = (16, 40)
CENTRAL_MIN_SIZE = (440, 300)
PLOTS_MIN_HEIGHT = 110
CONTROLS_WIDTH = 320


def fitted_window_size(available: QSize) -> QSize:
    """The window's size on a screen whose available area is `available`: `PREFERRED_SIZE` where it fits with the
    frame (`FRAME_ALLOWANCE`), else as much of the screen as the frame leaves."""
    return QSize(min(PREFERRED_SIZE[0], available.width() - FRAME_ALLOWANCE[0]),
                 min(PREFERRED_SIZE[1], available.height() - FRAME_ALLOWANCE[1]))


def scrolling(widget: QWidget) -> QScrollArea:
    """`widget` in a frameless vertical scroll area, so a dock holding it can be shorter than its form."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setMinimumWidth(widget.minimumSizeHint().width())
    return area


def add_dock(window: QMainWindow, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
    """A dock named `name` (saved layouts find it by that) holding `widget`, added to `window` at `area`."""
    dock = QDockWidget(title, window)
    dock.setObjectName(name)
    dock.setWidget(widget)
    window.addDockWidget(area, dock)
    return dock


def fit_window(window: QMainWindow, available: QRect, plots_dock: QDockWidget, controls_dock: QDockWidget) -> None:
    """Size and place `window` inside `available` (a screen's available geometry): the preferred size where it
    fits, else the screen less room for the window manager's frame, with the docks in proportion. At 1366x768
    every part stays on the screen: the docks shrink (controls scroll), the toolbars fit in one row."""
    size = fitted_window_size(QSize(available.width(), available.height()))
    window.resize(size)
    window.resizeDocks([plots_dock], [max(PLOTS_MIN_HEIGHT, round(size.height() * 0.21))], Qt.Orientation.Vertical)
    window.resizeDocks([controls_dock], [CONTROLS_WIDTH], Qt.Orientation.Horizontal)
    frame = QSize(*FRAME_ALLOWANCE)
    x = available.x() + max(0, (available.width() - size.width() - frame.width()) // 2)
    y = available.y() + max(0, (available.height() - size.height() - frame.height()) // 2)
    window.move(x, y)


def screen_geometry(window: QWidget) -> QRect:
    """The available geometry to fit: the window's screen's, or on the offscreen and minimal platforms (scripted
    screenshots, tests) a large screen's, so those open at the preferred size."""
    from PySide6.QtGui import QGuiApplication

    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None or QGuiApplication.platformName() in ("offscreen", "minimal"):
        return QRect(0, 0, PREFERRED_SIZE[0] + FRAME_ALLOWANCE[0], PREFERRED_SIZE[1] + FRAME_ALLOWANCE[1])
    return screen.availableGeometry()


class TabDocks:
    """Which of some docks each tab of a window shows, and their sizes, remembered per tab: a tab gets its docks
    back as the user left them there. Why: the window hid the viewer's docks when the Annotate tab opened and
    showed them again on the way back, but a trip through a second tab (Annotate -> Train -> Viewer) overwrote
    what it remembered and both docks stayed hidden; and docks shown again took whatever room was left. A tab
    never visited shows the docks only if it is in `shown_in`."""

    def __init__(self, window: QMainWindow, docks: tuple[QDockWidget, ...], shown_in: tuple[int, ...] = (0,),
                 current: int = 0):
        self.window = window
        self.docks = docks
        self.shown_in = set(shown_in)
        self.current = current
        self._visible: dict[int, set[str]] = {}
        self._states: dict[int, object] = {}  # QMainWindow.saveState() per tab: dock sizes and places

    def switch(self, index: int) -> None:
        """Remember what the tab being left shows, then show what tab `index` showed when it was left."""
        if index == self.current:
            return
        self._visible[self.current] = {d.objectName() for d in self.docks if not d.isHidden()}
        self._states[self.current] = self.window.saveState()
        if index in self._states:
            self.window.restoreState(self._states[index])
        default = {d.objectName() for d in self.docks} if index in self.shown_in else set()
        wanted = self._visible.get(index, default)
        for dock in self.docks:
            dock.setVisible(dock.objectName() in wanted)
        self.current = index
