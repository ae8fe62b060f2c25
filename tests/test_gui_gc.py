"""app.gui_gc: with the app's collector on, garbage cycles made in a worker thread are freed in the GUI thread
(where PySide can delete Qt objects safely), not in the worker that happened to allocate."""

from __future__ import annotations

import gc
import threading

import pytest

from app.gui_gc import GuiThreadCollector


class _Cycle:
    """A reference cycle that records the thread its finaliser runs in."""

    def __init__(self, seen: list[int]):
        self.me = self
        self.seen = seen

    def __del__(self):
        self.seen.append(threading.get_ident())


def _make_garbage_in_a_worker(seen: list[int]) -> int:
    """In a new thread: drop a cycle, then allocate far past generation 0's threshold; returns the thread's id."""
    ident: list[int] = []

    def work() -> None:
        ident.append(threading.get_ident())
        _Cycle(seen)
        keep = [[] for _ in range(20 * gc.get_threshold()[0])]  # containers count towards a collection
        del keep

    t = threading.Thread(target=work)
    t.start()
    t.join()
    return ident[0]


@pytest.mark.own_gc
def test_cycles_from_a_worker_are_collected_in_the_gui_thread(qtbot):
    gc.collect()
    # Without it (the interpreter's own collection), the worker collects its own garbage: what hung a run.
    seen: list[int] = []
    worker = _make_garbage_in_a_worker(seen)
    assert seen == [worker]

    collector = GuiThreadCollector(interval_s=0.05)
    try:
        assert not gc.isenabled()
        seen = []
        _make_garbage_in_a_worker(seen)
        assert seen == []  # nothing was collected in the worker
        hold: list = []

        def gui_allocates_and_looks() -> bool:
            # The GUI goes on allocating (objects that stay), so the timer's next look finds generation 0 over its
            # threshold and collects: what a running app does. (Counting alone is not enough: frees lower the
            # count, and a test that only waits may never cross the threshold.)
            hold.append([[] for _ in range(gc.get_threshold()[0])])
            return seen != []

        qtbot.waitUntil(gui_allocates_and_looks, timeout=5000)  # the GUI thread's timer collected it
        assert seen == [threading.get_ident()]
        hold.clear()
    finally:
        collector.stop()
    assert gc.isenabled()
