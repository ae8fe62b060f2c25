"""CaptureThread: decodes frames off the GUI thread and hands each one to the live pipeline's mailbox.

Videos play at the file's own rate (a slow model then drops frames in the worker, it never slows playback);
with `realtime` off the thread instead waits for the worker to take each frame, which processes every frame
as fast as the model allows (benchmarks, recording every frame). All controls are thread-safe calls that set
state under a lock and wake the loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QThread, Signal

from app.frame_sources import FrameError, FrameSource
from cpm_core.live_pipeline import FramePacket
from cpm_core.sources import SourceError

__all__ = ["CaptureThread", "FramePacket"]


class CaptureThread(QThread):
    """Reads one `FrameSource`; owned and closed by this thread."""

    positionChanged = Signal(int)  # index of the frame just handed on
    frameWarning = Signal(str)  # a bad frame was skipped
    sourceFailed = Signal(str)  # the source died (camera unplugged); the thread ends
    sourceEnded = Signal()  # end of a non-looping video / folder / single image

    def __init__(self, source: FrameSource, sink: Callable[[FramePacket], None], generation: int = 0,
                 wait_for_sink: Callable[[float], bool] | None = None, parent=None):
        super().__init__(parent)
        self.source = source
        self._sink = sink
        self._wait_for_sink = wait_for_sink
        self._generation = generation
        self._cond = threading.Condition()
        self._stop = False
        self._playing = source.info.kind in ("video", "folder", "camera")
        self._loop = False
        self._realtime = True
        self._seek_to: int | None = None
        self._step = 0 if self._playing else 1  # a still image shows once, at once
        self._position = -1
        self._restart = True
        self._ended = False
        self._end_noted = False  # the source's end note (a truncated video) is shown once, not on every loop

    # --- controls (any thread) ---
    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def position(self) -> int:
        return self._position

    def set_playing(self, playing: bool) -> None:
        with self._cond:
            if playing and self._ended:
                self._seek_to = 0  # play at the end starts over
            self._playing = bool(playing)
            self._cond.notify_all()

    def set_loop(self, loop: bool) -> None:
        with self._cond:
            self._loop = bool(loop)
            self._cond.notify_all()

    def set_realtime(self, realtime: bool) -> None:
        with self._cond:
            self._realtime = bool(realtime)
            self._cond.notify_all()

    def seek(self, index: int) -> None:
        with self._cond:
            self._seek_to = max(0, int(index))
            self._cond.notify_all()

    def step(self, delta: int) -> None:
        """Show the frame `delta` away from the current one, pausing playback."""
        with self._cond:
            self._playing = False
            if delta < 0:
                self._seek_to = max(0, self._position + delta)
            else:
                self._step += int(delta)
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    # --- thread body ---
    def _emit(self, index: int, frame: np.ndarray) -> None:
        packet = FramePacket(index, frame, time.perf_counter(), self._restart, self._generation)
        self._restart = False
        self._position = index
        self._sink(packet)
        self.positionChanged.emit(index)

    def _read_one(self) -> bool:
        """Read and hand on one frame; False at the end of the source."""
        while True:
            try:
                got = self.source.read()
            except FrameError as exc:
                self.frameWarning.emit(f"skipped a bad frame: {exc}")
                continue
            if got is not None:
                self._ended = False
                self._emit(*got)
                return True
            if not self._end_noted:
                note = self.source.end_note()
                if note:
                    self._end_noted = True
                    self.frameWarning.emit(note)
            if self._loop and self.source.info.kind in ("video", "folder") and self._position > 0:
                self.source.seek(0)
                self._restart = True
                self._position = -1
                continue
            return False

    def run(self) -> None:
        fps = max(self.source.info.fps, 0.1)
        next_due = time.perf_counter()
        try:
            while True:
                with self._cond:
                    while not (self._stop or self._seek_to is not None or self._step
                               or (self._playing and not self._ended)):
                        self._cond.wait(0.5)
                    if self._stop:
                        return
                    seek_to, self._seek_to = self._seek_to, None
                    step, self._step = self._step, 0
                    playing, realtime = self._playing, self._realtime
                if seek_to is not None:
                    self.source.seek(seek_to)
                    self._restart = True
                    self._ended = False
                    if not self._read_one():
                        self._finish()
                    next_due = time.perf_counter() + 1.0 / fps
                    continue
                if step:
                    for _ in range(step):
                        if not self._read_one():
                            self._finish()
                            break
                    continue
                if not playing:
                    continue
                if realtime:
                    delay = next_due - time.perf_counter()
                    if delay > 0:
                        with self._cond:
                            self._cond.wait(delay)
                            if self._stop or self._seek_to is not None or self._step or not self._playing:
                                continue
                    now = time.perf_counter()
                    next_due = max(next_due + 1.0 / fps, now - 1.0 / fps)  # never burst to catch up
                elif self._wait_for_sink is not None:
                    while not self._wait_for_sink(0.1):
                        if self._stop:
                            return
                if not self._read_one():
                    self._finish()
        except SourceError as exc:
            self.sourceFailed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - a decoder crash must reach the user, not kill silently
            self.sourceFailed.emit(f"{self.source.info.label}: {type(exc).__name__}: {exc}")
        finally:
            self.source.close()

    def _finish(self) -> None:
        # Playback stops at the end, as in any player: a seek afterwards shows that frame and stays there.
        with self._cond:
            self._ended = True
            self._playing = False
        self.sourceEnded.emit()
