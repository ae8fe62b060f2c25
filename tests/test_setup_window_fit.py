"""The main window fits the screen it opens on (issue #19): at 1366x768 (a common laptop screen) it opened at
1400x900, so the confidence plots and the status bar were below the screen and the Record button was cut to
"Rec". Checked here on the real window (pytest-qt, offscreen) against a given available geometry: its size, that
nothing can hold it larger, that every part lies inside it, and that the toolbar keeps its buttons whole.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize
from PySide6.QtWidgets import QApplication, QWidget

from app.main_window import FRAME_ALLOWANCE, PLOTS_MIN_HEIGHT, PREFERRED_SIZE, MainWindow, fitted_window_size

LAPTOP = QRect(0, 0, 1366, 768)


def _rect_in(widget: QWidget, window: MainWindow) -> QRect:
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def test_preferred_size_on_a_large_screen_and_the_screen_less_its_frame_on_a_small_one() -> None:
    """A big screen gets the preferred size; a small one gets what is left after the window manager's frame."""
    assert fitted_window_size(QSize(1920, 1080)) == QSize(*PREFERRED_SIZE)
    small = fitted_window_size(LAPTOP.size())
    assert small.width() + FRAME_ALLOWANCE[0] <= 1366 and small.height() + FRAME_ALLOWANCE[1] <= 768
    assert small.width() >= 1300 and small.height() >= 700  # the room is used, not wasted


def test_window_fits_1366x768_with_every_part_inside_and_the_record_button_whole(qtbot, window: MainWindow) -> None:
    """At 1366x768 the window takes the fitted size (nothing's minimum holds it larger), sits inside the screen,
    and the docks, status bar and the toolbar buttons (Snapshot, Record, Play) are inside it and not cut."""
    window.fit_to_screen(LAPTOP)
    QApplication.processEvents()
    expected = fitted_window_size(LAPTOP.size())
    assert window.size() == expected
    hint = window.minimumSizeHint()
    assert hint.width() <= expected.width() and hint.height() <= expected.height()
    assert window.x() >= 0 and window.y() >= 0
    assert window.x() + window.width() + FRAME_ALLOWANCE[0] <= LAPTOP.width()
    assert window.y() + window.height() + FRAME_ALLOWANCE[1] <= LAPTOP.height()

    inside = window.rect()
    for part in (window.plots_dock, window.controls_dock, window.card_dock, window.statusBar(), window.mode_tabs):
        assert part.isVisible(), part.objectName()
        assert inside.contains(_rect_in(part, window)), part.objectName()
    assert window.plots_dock.height() >= PLOTS_MIN_HEIGHT

    for action in (window.recording.snapshot_action, window.recording.record_action, window.playback.play_action):
        button = next(w for w in action.associatedObjects() if isinstance(w, QWidget) and w.parentWidget()
                      and w.parentWidget().objectName() == "playback_toolbar")
        assert button.isVisible(), action.iconText()  # not pushed into the toolbar's overflow menu
        assert button.width() >= button.sizeHint().width(), action.iconText()  # "Record", not "Rec"
        assert inside.contains(_rect_in(button, window)), action.iconText()


def test_the_tallest_tab_gets_its_room_at_1366x768(qtbot, window: MainWindow) -> None:
    """The tabs' minimum is set below the Distill form's height so the window fits; that form hides the viewer's
    docks when shown, and must then still get all the height it asks for (no squashed rows)."""
    window.fit_to_screen(LAPTOP)
    window.mode_tabs.setCurrentWidget(window.distill_panel)
    QApplication.processEvents()
    assert not window.plots_dock.isVisible()
    assert window.distill_panel.height() >= window.distill_panel.minimumSizeHint().height()
    assert window.train_panel.minimumSizeHint().height() <= window.distill_panel.height()
