"""Python's cyclic garbage collection in the GUI thread only, on a timer.

Why: CPython collects cycles in whichever thread happens to allocate when a generation's count passes its
threshold; in this app that is often the capture or inference thread. When such a collection frees a Qt
wrapper (a closed dialog, a menu), PySide hands the C++ deletion to the main thread, and one full test run hung
there for good (2026-12-02, gdb: the main thread in QObject::~QObject under
Shiboken::BindingManager::runDeletionInMainThread holding the GIL, waiting for a Qt lock; the capture and
inference threads waiting for the GIL). pyqtgraph (already a dependency) ships the usual cure: switch automatic
collection off and collect on a QTimer in the GUI thread, with the interpreter's own thresholds.
"""

from __future__ import annotations

import gc

from pyqtgraph.util.garbage_collector import GarbageCollector


class GuiThreadCollector:
    """While alive (until `stop`), cycles are collected only by a GUI-thread timer every `interval_s`.

    Build it in the GUI thread after the QApplication exists; the timer runs while the event loop does."""

    def __init__(self, interval_s: float = 0.5):
        self._was_enabled = gc.isenabled()
        self._collector = GarbageCollector(interval=interval_s)  # disables automatic collection, starts the timer

    def stop(self) -> None:
        """Stop the timer, collect what is left here (the GUI thread) and give collection back to the
        interpreter as it was before."""
        self._collector.timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()
