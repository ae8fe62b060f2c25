"""run_in_worker: run a slow function off the GUI thread and hear back on it (result, error, progress).

Why: decoding a whole video to make an annotation project, or writing TFRecords on export, froze the window for
seconds. The function runs in a QThread; its result, error and progress reach the caller's slots through queued
signals, so they run on the GUI thread. The function itself sees no Qt: it gets a `JobControl` to report progress
and to ask whether it was cancelled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

_running: set[WorkerJob] = set()  # jobs started without a parent stay alive until they finish


class JobControl:
    """What a background function may do: report progress, and check for a cancel request between steps."""

    def __init__(self, job: WorkerJob):
        self._job = job

    def progress(self, *values: Any) -> None:
        """Hand `values` to the caller's `progress` slot (queued to the GUI thread)."""
        self._job.reported.emit(values)

    @property
    def cancelled(self) -> bool:
        return self._job.cancelled


class WorkerJob(QThread):
    """One function run in its own thread. `succeeded(result)` or `errored(exception)` is emitted once, then
    `finished`; `cancel()` only sets a flag the function reads through `JobControl.cancelled`."""

    succeeded = Signal(object)
    errored = Signal(object)  # the exception
    reported = Signal(object)  # a tuple of the values given to JobControl.progress

    def __init__(self, fn: Callable[[JobControl], Any], parent: QObject | None = None):
        super().__init__(parent)
        self._fn = fn
        self._cancel = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:
        try:
            self.result = self._fn(JobControl(self))
        except Exception as exc:  # noqa: BLE001 - every failure goes to the caller's on_error, the GUI lives on
            self.error = exc
            self.errored.emit(exc)
        else:
            self.succeeded.emit(self.result)


class _Relay(QObject):
    """Lives in the caller's (GUI) thread, so the job's signals reach the callbacks queued, on that thread (a plain
    function connected to a signal emitted in another thread is not guaranteed to run on the GUI thread)."""

    def __init__(self, on_done, on_error, progress, parent: QObject):
        super().__init__(parent)
        self._on_done, self._on_error, self._progress = on_done, on_error, progress

    @Slot(object)
    def done(self, result: Any) -> None:
        if self._on_done is not None:
            self._on_done(result)

    @Slot(object)
    def error(self, exc: BaseException) -> None:
        if self._on_error is not None:
            self._on_error(exc)

    @Slot(object)
    def progress(self, values: tuple) -> None:
        if self._progress is not None:
            self._progress(*values)


def run_in_worker(fn: Callable[[JobControl], Any], on_done: Callable[[Any], None] | None = None,
                  on_error: Callable[[BaseException], None] | None = None,
                  progress: Callable[..., None] | None = None, parent: QObject | None = None) -> WorkerJob:
    """Start `fn(control)` in a worker thread and return its job. `on_done(result)`, `on_error(exception)` and
    `progress(*values)` run on the GUI thread. Without a parent the job keeps itself alive until it ends."""
    job = WorkerJob(fn, parent)
    relay = _Relay(on_done, on_error, progress, job)
    job.succeeded.connect(relay.done)
    job.errored.connect(relay.error)
    job.reported.connect(relay.progress)
    if parent is None:
        _running.add(job)
        job.finished.connect(lambda: _running.discard(job))
    job.start()
    return job
