"""A dependency-free progress bar for the command line (stderr, redrawn in place, quiet when not a TTY)."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, total: int | None, label: str = "", stream=None, width: int = 30):
        self.total = total if total and total > 0 else None
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.count = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if now - self._last >= 0.2 or (self.total and self.count >= self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.count / max(now - self.start, 1e-9)
        if self.total:
            frac = min(self.count / self.total, 1.0)
            bar = "#" * int(frac * self.width)
            eta = (self.total - self.count) / rate if rate > 0 else 0
            text = f"{self.label} [{bar:<{self.width}}] {self.count}/{self.total} {rate:.1f}/s ETA {eta:.0f}s"
        else:
            text = f"{self.label} {self.count} {rate:.1f}/s"
        if self._tty:
            self.stream.write("\r" + text)
            self.stream.flush()

    def close(self) -> None:
        now = time.perf_counter()
        if self._tty:
            self._draw(now)
            self.stream.write("\n")
        else:
            self.stream.write(f"{self.label} {self.count} done in {now - self.start:.1f}s\n")
        self.stream.flush()
