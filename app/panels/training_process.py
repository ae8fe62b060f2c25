"""TrainingProcess: one `cpm train|distill|eval` run as a QProcess, its stdout protocol turned into signals.

Qt reads the pipes in the event loop (no thread of ours, no blocking read), so the GUI stays responsive
whatever the run does. A run that dies without a `done` or `error` event (a crash, a kill, a bad command line)
is reported through `error` with the tail of its stderr, where Python's traceback is.

Stopping never kills on a timer: a run asked to stop saves a checkpoint, evaluates and exports its model, which
takes the default hand recipe longer than any fixed grace period (a 15 s timer used to kill it mid-export, leaving
"the process crashed" and no model). `stop()` asks once and waits; only `kill()`, which the user asks for
separately, ends the process at once.
"""

from __future__ import annotations

import sys
from collections import deque

from PySide6.QtCore import QObject, QProcess, Signal

from app.child_process import project_process
from training.events import (
    CheckpointEvent,
    DoneEvent,
    EpochEvent,
    ErrorEvent,
    EvalEvent,
    StartEvent,
    StepEvent,
    parse_line,
)

STDERR_TAIL_LINES = 40


class TrainingProcess(QObject):
    """Signals carry the protocol's typed events (`training.events`, docs/protocol.md): `started` a
    StartEvent, `step` a StepEvent, and so on; `event` every one of them."""

    event = Signal(object)  # every event (a training.events.Event)
    started = Signal(object)  # StartEvent
    step = Signal(object)  # StepEvent
    epoch = Signal(object)  # EpochEvent
    evaluated = Signal(object)  # EvalEvent
    checkpoint = Signal(object)  # CheckpointEvent
    done = Signal(object)  # DoneEvent
    error = Signal(str)  # error event's message, or a crash with its stderr tail
    log = Signal(str)  # stderr lines and non-protocol stdout lines
    output = Signal(str)  # every stdout line (for commands such as `cpm eval` that print a report)
    finished = Signal(int)  # exit code (-1 when the process crashed or could not start)
    stopping = Signal()  # a clean stop was asked for; the run is saving its checkpoint and model

    def __init__(self, parent: QObject | None = None, program: list[str] | None = None):
        """`program`: the command that takes the arguments (default: this Python running `training.cli`);
        another protocol speaker can stand in for it, e.g. in tests."""
        super().__init__(parent)
        self.program = list(program) if program else [sys.executable, "-m", "training.cli"]
        self._proc: QProcess | None = None
        self.stop_requested = False  # stop() was called for the current run
        self._killed = False  # kill() was called for the current run
        self._stdout_buf = b""
        self._stderr_buf = b""
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._ended_cleanly = False  # a done or error event was seen

    # -- control -----------------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.state() != QProcess.ProcessState.NotRunning

    def start(self, arguments: list[str]) -> None:
        """Run `python -m training.cli ARGUMENTS...` (or `program ARGUMENTS...`) from the project root."""
        if self.is_running():
            raise RuntimeError("a run is already in progress")
        self._stdout_buf = self._stderr_buf = b""
        self._stderr_tail.clear()
        self._ended_cleanly = False
        self.stop_requested = self._killed = False
        proc = project_process(self)
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._process_error)
        self._proc = proc
        self.log.emit("$ cpm " + " ".join(arguments))
        proc.start(self.program[0], [*self.program[1:], *arguments])

    def stop(self) -> None:
        """Ask the run to stop cleanly: it finishes the step, saves a checkpoint, evaluates, exports its model and
        sends `done` with stopped=true, however long that takes. Asking again does nothing more; `kill()` is
        the way to end it at once."""
        if not self.is_running() or self.stop_requested:
            return
        self.stop_requested = True
        self._proc.write(b"stop\n")
        self.log.emit("stop requested: the run saves a checkpoint and its model, then ends")
        self.stopping.emit()

    def kill(self) -> None:
        """End the run at once (the user asked for it): it loses the steps since its last checkpoint and exports
        no model; `--resume` continues from that checkpoint."""
        if self.is_running():
            self._killed = True
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
        if isinstance(ev, StartEvent):
            self.started.emit(ev)
        elif isinstance(ev, StepEvent):
            self.step.emit(ev)
        elif isinstance(ev, EpochEvent):
            self.epoch.emit(ev)
        elif isinstance(ev, EvalEvent):
            self.evaluated.emit(ev)
        elif isinstance(ev, CheckpointEvent):
            self.checkpoint.emit(ev)
        elif isinstance(ev, DoneEvent):
            self._ended_cleanly = True
            self.done.emit(ev)
        elif isinstance(ev, ErrorEvent):
            self._ended_cleanly = True
            self.error.emit(ev.message or "unknown error")

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
        self._read_stdout()
        self._read_stderr()
        if self._stdout_buf:
            self._handle_line(self._stdout_buf.decode("utf-8", "replace"))
            self._stdout_buf = b""
        crashed = status == QProcess.ExitStatus.CrashExit
        if not self._ended_cleanly and (crashed or code != 0):
            how = ("was killed on request: no model was exported; the last periodic checkpoint is kept for --resume"
                   if self._killed else "crashed" if crashed else f"exited with code {code}")
            self.error.emit(f"the process {how}\n{self.stderr_tail()}".rstrip())
        self.finished.emit(-1 if crashed else code)

    def _process_error(self, err: QProcess.ProcessError) -> None:
        if err == QProcess.ProcessError.FailedToStart:
            self.error.emit(f"could not start {sys.executable}: {self._proc.errorString()}")
            self.finished.emit(-1)
