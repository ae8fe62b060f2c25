"""AnalyseRunner: `cpm infer` on a list of videos, one background process per video, never in the GUI process.

Why a process per video: a video that crashes its decoder, or a model that runs out of memory, ends only that
video's process; the runner reports it in one message and goes on with the next. Loading the model again per video
costs a few seconds, little beside analysing a video.

Each video is worked on in a hidden folder of the output folder, `.analyse-<name>.partial/`: `cpm infer
--progress jsonl` writes the keypoints JSON (and the annotated video) there, a second small process
(`app.analyse.keypoints_csv`) adds the CSV, and only then are the files moved into the output folder as
`<name>.json`, `<name>.csv`, `<name>_pose.mp4` (a rename: nothing half-written ever carries a final name). Cancel
sends SIGTERM, on which `cpm infer` removes its own temporary files; the runner then removes the work folder.
Only a process killed outright (the app itself killed) can leave a `.analyse-*.partial` folder, named as such,
which the next run of that video replaces. `<name>` is the video's stem, or its path relative to the other
videos' folder when stems clash (`cpm_core.infer.plan_names`), so no video's outputs replace another's.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, Signal

from app.child_process import project_process
from cpm_core.infer import plan_names

WORK_PREFIX = ".analyse-"
WORK_SUFFIX = ".partial"
STDERR_TAIL = 20


def output_names(videos: list[Path], annotated: bool) -> list[list[str]]:
    """For each video, the file names it gets in the output folder (in order: JSON, CSV, annotated video)."""
    return [[f"{k}.json", f"{k}.csv"] + ([f"{k}_pose.mp4"] if annotated else [])
            for k in plan_names([Path(v) for v in videos])]


def existing_outputs(videos: list[Path], out_dir: Path, annotated: bool) -> list[Path]:
    """The outputs of this run that are already in `out_dir` (the dialog asks before replacing them)."""
    return [out_dir / n for names in output_names(videos, annotated) for n in names if (out_dir / n).exists()]


@dataclass
class VideoJob:
    """One video of the run: its progress and how it ended (`state`: queued, running, done, failed, cancelled)."""

    video: Path
    key: str
    state: str = "queued"
    total: int = 0  # the header's frame count (0 when unknown)
    done: int = 0
    message: str = ""  # the failure, or a warning (a truncated video) for a finished one
    outputs: list[Path] = field(default_factory=list)


class CommandProcess(QObject):
    """One Python command as a QProcess: JSON lines from stdout as `event`, stderr kept as a tail, `ended(code)`.
    Qt reads the pipes in the event loop, so the GUI never blocks on the child."""

    event = Signal(dict)
    ended = Signal(int)  # exit code; -1 when it crashed, was killed or could not start

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.proc: QProcess | None = None
        self._buf = b""
        self.stderr: deque[str] = deque(maxlen=STDERR_TAIL)

    def start(self, args: list[str]) -> None:
        self._buf = b""
        self.stderr.clear()
        if self.proc is not None:
            self.proc.deleteLater()  # the previous step's process (deleted after its finished signal returns)
        proc = project_process(self)
        proc.readyReadStandardOutput.connect(self._read)
        proc.readyReadStandardError.connect(self._read_err)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._failed_to_start)
        self.proc = proc
        proc.start(sys.executable, args)

    def running(self) -> bool:
        return self.proc is not None and self.proc.state() != QProcess.ProcessState.NotRunning

    def terminate(self) -> None:
        if self.running():
            self.proc.terminate()

    def kill(self) -> None:
        if self.running():
            self.proc.kill()

    def tail(self) -> str:
        return "\n".join(self.stderr)

    def _read(self) -> None:
        self._buf += bytes(self.proc.readAllStandardOutput())
        *lines, self._buf = self._buf.split(b"\n")
        for raw in lines:
            try:
                ev = json.loads(raw.decode("utf-8", "replace"))
            except json.JSONDecodeError:
                continue
            if isinstance(ev, dict) and "event" in ev:
                self.event.emit(ev)

    def _read_err(self) -> None:
        for raw in bytes(self.proc.readAllStandardError()).decode("utf-8", "replace").splitlines():
            if raw.strip():
                self.stderr.append(raw.rstrip())

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._read()
        self._read_err()
        self._buf += b"\n"
        self._read()
        self.ended.emit(-1 if status == QProcess.ExitStatus.CrashExit else code)

    def _failed_to_start(self, err: QProcess.ProcessError) -> None:
        if err == QProcess.ProcessError.FailedToStart:
            self.stderr.append(f"could not start {sys.executable}: {self.proc.errorString()}")
            self.ended.emit(-1)


class AnalyseRunner(QObject):
    """Runs the videos one after another; signals carry the job's index in `jobs`."""

    videoStarted = Signal(int)
    progressed = Signal(int, int, int)  # index, frames done, frames total (0: unknown)
    videoFinished = Signal(int)  # see jobs[index].state / .message / .outputs
    finished = Signal()  # every video ended, or the run was cancelled

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.jobs: list[VideoJob] = []
        self.out_dir = Path()
        self.model, self.annotated, self.detect = "", False, False
        self.cancelled = False
        self._index = -1
        self._phase = ""  # "infer" or "csv"
        self._saw_done = False
        self._errors: list[str] = []
        self.process = CommandProcess(self)
        self.process.event.connect(self._on_event)
        self.process.ended.connect(self._on_ended)

    def is_running(self) -> bool:
        return 0 <= self._index < len(self.jobs)

    def start(self, videos: list[Path], out_dir: Path, model: str, annotated: bool = False,
              detect: bool = False) -> None:
        """Analyse `videos` into `out_dir` with the model at `model` (a folder or file `cpm infer --model` takes)."""
        if self.is_running():
            raise RuntimeError("an analysis is already running")
        videos = [Path(v) for v in videos]
        self.jobs = [VideoJob(v, k) for v, k in zip(videos, plan_names(videos))]
        self.out_dir, self.model, self.annotated, self.detect = Path(out_dir), str(model), annotated, detect
        self.cancelled = False
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._index = -1
        self._next()

    def cancel(self) -> None:
        """Stop the current video (its process cleans up on SIGTERM) and skip the rest; nothing unfinished stays."""
        if not self.is_running() or self.cancelled:
            return
        self.cancelled = True
        self.process.terminate()

    def kill(self) -> None:
        """End the current process at once (a Cancel that is taking too long); its work folder is removed."""
        self.cancel()
        self.process.kill()

    def shutdown(self, wait_ms: int = 15000) -> None:
        """On closing: cancel and wait for the process; killed if it does not end within `wait_ms`."""
        if not self.is_running():
            return
        self.cancel()
        proc = self.process.proc
        if proc is not None and not proc.waitForFinished(wait_ms):
            self.process.kill()
            proc.waitForFinished(3000)

    def work_dir(self, job: VideoJob) -> Path:
        return self.out_dir / f"{WORK_PREFIX}{job.key}{WORK_SUFFIX}"

    # -- the steps of one video -----------------------------------------------------------------------------
    def _next(self) -> None:
        self._index += 1
        if self._index >= len(self.jobs):
            self._index = len(self.jobs)
            self.finished.emit()
            return
        job = self.jobs[self._index]
        if self.cancelled:
            job.state = "cancelled"
            self.videoFinished.emit(self._index)
            self._next()
            return
        work = self.work_dir(job)
        shutil.rmtree(work, ignore_errors=True)  # what a killed earlier run of this video left
        work.mkdir(parents=True)
        job.state, self._phase, self._saw_done, self._errors = "running", "infer", False, []
        self.videoStarted.emit(self._index)
        args = ["-m", "training.cli", "infer", str(job.video), "--model", self.model,
                "--json", str(work / "keypoints.json"), "--progress", "jsonl"]
        if self.annotated:
            args += ["--out-dir", str(work)]
        if self.detect:
            args += ["--detect"]
        self.process.start(args)

    def _on_event(self, ev: dict) -> None:
        if not self.is_running():
            return
        job = self.jobs[self._index]
        kind = ev.get("event")
        if kind == "video":
            job.total = int(ev.get("frames") or 0)
            self.progressed.emit(self._index, job.done, job.total)
        elif kind == "frame":
            job.done = int(ev.get("frame") or 0)
            self.progressed.emit(self._index, job.done, job.total)
        elif kind == "error":
            self._errors.append(str(ev.get("message") or "unknown error"))
        elif kind == "done":  # a run whose only input failed ends with `done` too, with no frames
            self._saw_done = not ev.get("stopped") and int(ev.get("frames") or 0) > 0

    def _on_ended(self, code: int) -> None:
        if not self.is_running():
            return
        job = self.jobs[self._index]
        if self.cancelled:
            job.state, job.message = "cancelled", "cancelled"
            self._close_job(job)
            return
        if self._phase == "infer":
            wrote = (self.work_dir(job) / "keypoints.json").is_file()
            if self._saw_done and wrote:  # frames written, maybe with a warning (a truncated video's are kept)
                job.message = "; ".join(self._errors)
                self._phase = "csv"
                work = self.work_dir(job)
                self.process.start(["-m", "app.analyse.keypoints_csv", str(work / "keypoints.json"),
                                    str(work / "keypoints.csv")])
                return
            job.state = "failed"
            job.message = ("; ".join(self._errors) or
                           f"cpm infer ended without a result (exit code {code})\n{self.process.tail()}".strip())
            self._close_job(job)
            return
        if code != 0:
            job.state, job.message = "failed", f"writing the CSV failed: {self.process.tail()}"
        else:
            self._publish(job)
        self._close_job(job)

    def _publish(self, job: VideoJob) -> None:
        """Move the finished files from the work folder to their final names (renames in one folder)."""
        work = self.work_dir(job)
        moves = [(work / "keypoints.json", self.out_dir / f"{job.key}.json"),
                 (work / "keypoints.csv", self.out_dir / f"{job.key}.csv")]
        if self.annotated:
            moves += [(p, self.out_dir / f"{job.key}_pose.mp4") for p in work.glob("*_pose.mp4")][:1]
        try:
            for src, dst in moves:
                os.replace(src, dst)
                job.outputs.append(dst)
        except OSError as exc:
            job.state, job.message = "failed", f"cannot move the results into {self.out_dir}: {exc}"
            return
        job.state = "done"
        if job.total and job.done and job.done != job.total:  # the header's count was a hint; the bar ends full
            job.total = job.done
        self.progressed.emit(self._index, job.done, job.total or job.done)

    def _close_job(self, job: VideoJob) -> None:
        shutil.rmtree(self.work_dir(job), ignore_errors=True)
        self.videoFinished.emit(self._index)
        self._next()
