"""SourceSession: the open source and its CaptureThread, following the loop and real-time settings.

One source at a time: opening another stops the current capture first and bumps `generation`, so results still
in flight from the old source are recognised and dropped (`ViewDisplay.deliver`). A source that cannot be opened
leaves the current one playing.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.capture import CaptureThread
from app.frame_sources import FrameSource, SourceInfo, open_source
from app.viewer.settings import ViewerSettings
from cpm_core.live_pipeline import LivePipeline

STOP_WAIT_MS = 3000


class SourceSession(QObject):
    """Opens sources and runs their capture thread into `pipeline`'s mailbox."""

    opened = Signal(object, int)  # SourceInfo, generation
    positionChanged = Signal(int)  # index of the frame just handed on
    frameWarning = Signal(str)  # a bad frame was skipped, or the source's end note
    failed = Signal(str)  # the source died (camera unplugged)

    def __init__(self, settings: ViewerSettings, pipeline: LivePipeline, parent: QObject | None = None):
        super().__init__(parent)
        self.settings = settings
        self.pipeline = pipeline
        self.capture: CaptureThread | None = None
        self.info: SourceInfo | None = None
        self.ended = False
        self.generation = 0
        settings.subscribe("loop", lambda on: self.capture.set_loop(on) if self.capture else None)
        settings.subscribe("realtime", lambda on: self.capture.set_realtime(on) if self.capture else None)

    def open(self, spec: str | Path) -> None:
        """Open a path or 'camera:N' and switch to it; raises `SourceError` (the current source stays)."""
        self.switch_to(open_source(spec))

    def switch_to(self, source: FrameSource) -> None:
        """Switch to an already opened source (the current one stops)."""
        self.stop()
        self.generation += 1
        self.pipeline.clear()
        self.info = source.info
        self.ended = False
        cap = CaptureThread(source, self.pipeline.submit, self.generation, self.pipeline.wait_for_slot)
        cap.positionChanged.connect(self.positionChanged)
        cap.frameWarning.connect(self.frameWarning)
        cap.sourceFailed.connect(self._on_failed)
        cap.sourceEnded.connect(self._on_ended)
        cap.set_loop(self.settings.loop)
        cap.set_realtime(self.settings.realtime)
        self.capture = cap
        self.opened.emit(source.info, self.generation)
        cap.start()

    def _on_failed(self, message: str) -> None:
        self.ended = True
        self.failed.emit(message)

    def _on_ended(self) -> None:
        self.ended = True

    def stop(self) -> None:
        cap, self.capture = self.capture, None
        if cap is not None:
            for sig in (cap.positionChanged, cap.frameWarning, cap.sourceFailed, cap.sourceEnded):
                sig.disconnect()
            cap.stop()
            cap.wait(STOP_WAIT_MS)

    # --- playback ---
    @property
    def playing(self) -> bool:
        return self.capture is not None and self.capture.playing

    def set_playing(self, playing: bool) -> None:
        if self.capture is not None:
            self.capture.set_playing(playing)

    def toggle_play(self) -> None:
        self.set_playing(not self.playing)

    def step(self, delta: int) -> None:
        if self.capture is not None:
            self.capture.step(delta)

    def seek(self, index: int) -> None:
        if self.capture is not None:
            self.ended = False
            self.capture.seek(index)
