"""TrainingProcess: one `cpm train|distill|eval` run as a QProcess, its stdout protocol turned into signals.

Qt reads the pipes in the event loop (no thread of ours, no blocking read), so the GUI stays responsive
whatever the run does. A run that dies without a `done` or `error` event (a crash, a kill, a bad command line)
is reported through `error` with the tail of its stderr, where Python's traceback is.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from training.events import parse_line

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STDERR_TAIL_LINES = 40


class TrainingProcess(QObject):
    """Signals carry the protocol's event dicts (docs/protocol.md)."""

    event = Signal(dict)  # every event
    started = Signal(dict)
    step = Signal(dict)
    epoch = Signal(dict)
    evaluated = Signal(dict)
    checkpoint = Signal(dict)
    done = Signal(dict)
    error = Signal(str)  # error event's message, or a crash with its stderr tail
    log = Signal(str)  # stderr lines and non-protocol stdout lines
    output = Signal(str)  # every stdout line (for commands such as `cpm eval` that print a report)
    finished = Signal(int)  # exit code (-1 when the process crashed or could not start)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._proc: QProcess | None = None
        self._stdout_buf = b""
        self._stderr_buf = b""
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._ended_cleanly = False  # a done or error event was seen
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self.kill)

    # -- control -----------------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.state() != QProcess.ProcessState.NotRunning

    def start(self, arguments: list[str]) -> None:
        """Run `python -m training.cli ARGUMENTS...` from the project root."""
        if self.is_running():
            raise RuntimeError("a run is already in progress")
        self._stdout_buf = self._stderr_buf = b""
        self._stderr_tail.clear()
        self._ended_cleanly = False
        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONPATH", os.pathsep.join(p for p in (str(PROJECT_ROOT), env.value("PYTHONPATH")) if p))
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("TF_CPP_MIN_LOG_LEVEL", env.value("TF_CPP_MIN_LOG_LEVEL") or "2")
        proc.setProcessEnvironment(env)
        proc.setWorkingDirectory(str(PROJECT_ROOT))
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._process_error)
        self._proc = proc
        self.log.emit("$ cpm " + " ".join(arguments))
        proc.start(sys.executable, ["-m", "training.cli", *arguments])

    def stop(self, kill_after_ms: int = 15000) -> None:
        """Ask the run to stop (it checkpoints, then sends `done` with stopped=true); kill it if it has not
        ended after `kill_after_ms`."""
        if not self.is_running():
            return
        self._proc.write(b"stop\n")
        self.log.emit("stop requested")
        self._kill_timer.start(kill_after_ms)

    def kill(self) -> None:
        if self.is_running():
            self.log.emit("killing the run")
            self._proc.kill()

    def shutdown(self, wait_ms: int = 20000) -> None:
        """On closing the app: a running job is asked to stop (a training run checkpoints first), given
        `wait_ms` to finish, then killed, so no process outlives the window and no checkpoint is cut short."""
        if not self.is_running():
            return
        self._proc.write(b"stop\n")
        self._proc.waitForBytesWritten(1000)
        if not self._proc.waitForFinished(wait_ms):
            self._proc.kill()
            self._proc.waitForFinished(3000)

    def wait_for_finished(self, ms: int = 30000) -> bool:
        return self._proc is None or self._proc.waitForFinished(ms)

    # -- reading -----------------------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        self._stdout_buf += bytes(self._proc.readAllStandardOutput())
        *lines, self._stdout_buf = self._stdout_buf.split(b"\n")
        for raw in lines:
            self._handle_line(raw.decode("utf-8", "replace"))

    def _handle_line(self, line: str) -> None:
        self.output.emit(line)
        ev = parse_line(line)
        if ev is None:
            if line.strip():
                self.log.emit(line)
            return
        self.event.emit(ev)
        kind = ev["event"]
        if kind == "start":
            self.started.emit(ev)
        elif kind == "step":
            self.step.emit(ev)
        elif kind == "epoch":
            self.epoch.emit(ev)
        elif kind == "eval":
            self.evaluated.emit(ev)
        elif kind == "checkpoint":
            self.checkpoint.emit(ev)
        elif kind == "done":
            self._ended_cleanly = True
            self.done.emit(ev)
        elif kind == "error":
            self._ended_cleanly = True
            self.error.emit(str(ev.get("message", "unknown error")))

    def _read_stderr(self) -> None:
        self._stderr_buf += bytes(self._proc.readAllStandardError())
        *lines, self._stderr_buf = self._stderr_buf.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._stderr_tail.append(line)
                self.log.emit(line)

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail)

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        self._read_stdout()
        self._read_stderr()
        if self._stdout_buf:
            self._handle_line(self._stdout_buf.decode("utf-8", "replace"))
            self._stdout_buf = b""
        crashed = status == QProcess.ExitStatus.CrashExit
        if not self._ended_cleanly and (crashed or code != 0):
            how = "crashed" if crashed else f"exited with code {code}"
            self.error.emit(f"the process {how}\n{self.stderr_tail()}".rstrip())
        self.finished.emit(-1 if crashed else code)

    def _process_error(self, err: QProcess.ProcessError) -> None:
        if err == QProcess.ProcessError.FailedToStart:
            self.error.emit(f"could not start {sys.executable}: {self._proc.errorString()}")
            self.finished.emit(-1)
