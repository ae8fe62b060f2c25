"""After an analysis: `cpm suggest` on the analysed videos as a process, and its picks added to an annotation project.

Why a process: scoring reads every frame of every video through the model (minutes for long videos); in a process
the GUI stays responsive and the live viewer's model is not shared. The picks are added the way the Annotate tab's
own "Suggest frames…" adds them (`FrameSuggester` in `app/annotate/suggest_panel.py`: same JPEG folder beside the
project, same extras, same de-duplication, same suggestion list), so both routes give the same project; only
extracting the frames (a video read) runs here, in a worker thread.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from app.analyse.runner import CommandProcess
from app.annotate.suggest_panel import top_reason
from app.background import JobControl, run_in_worker
from cpm_core.suggest import FrameScore, save_frames


def free_name(folder: Path, stem: str, suffix: str) -> Path:
    """`folder/stem.suffix`, or `stem-2`, `stem-3`, ... when taken: a user's earlier file is never replaced."""
    path, n = folder / f"{stem}{suffix}", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}{suffix}"
    return path


def read_suggestions(path: Path) -> list[FrameScore]:
    """The picks of a `cpm suggest` JSON, most uncertain first; ValueError when the file is not one."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    frames = doc.get("frames") if isinstance(doc, dict) else None
    if not isinstance(frames, list):
        raise ValueError(f"{path}: not a cpm suggest result (no 'frames' list)")
    return [FrameScore(str(f["source"]), int(f["frame"]), float(f["score"]), dict(f.get("reasons") or {}))
            for f in frames]


class SuggestStep(QObject):
    """One `cpm suggest MODEL VIDEO... --count N --json OUT` run; then `add_to_project`."""

    suggested = Signal(list)  # list[FrameScore]
    failed = Signal(str)
    added = Signal(int)  # frames added to the project

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.process = CommandProcess(self)
        self.process.ended.connect(self._ended)
        self.json_path: Path | None = None
        self.picks: list[FrameScore] = []
        self.cancelled = False
        self.job = None

    def is_running(self) -> bool:
        return self.process.running()

    def start(self, model: str, videos: list[Path], count: int, out_dir: Path) -> Path:
        """Score `videos` with `model`; the result goes to a new `suggestions*.json` in `out_dir` (returned)."""
        self.cancelled, self.picks = False, []
        self.json_path = free_name(Path(out_dir), "suggestions", ".json")
        self.process.start(["-m", "training.cli", "suggest", str(model), *map(str, videos), "--count", str(count),
                            "--json", str(self.json_path)])
        return self.json_path

    def cancel(self) -> None:
        self.cancelled = True
        self.process.terminate()

    def _ended(self, code: int) -> None:
        if self.cancelled:
            return
        if code != 0 or self.json_path is None or not self.json_path.is_file():
            self.failed.emit(f"suggesting frames failed (exit code {code}): {self.process.tail() or 'no message'}")
            return
        try:
            self.picks = read_suggestions(self.json_path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.failed.emit(f"cannot read the suggestions: {exc}")
            return
        self.suggested.emit(self.picks)

    def add_to_project(self, workspace, picks: list[FrameScore], joints: int | None = None) -> str | None:
        """Extract `picks` beside `workspace`'s open project (worker thread) and add them as its suggestion list
        does. Returns why it cannot (no project, another skeleton), or None when started; `added` follows."""
        project = workspace.project
        if project is None:
            return ("no annotation project is open: open or create one (File menu), then add the suggested frames; "
                    f"they are kept in {self.json_path}")
        if joints is not None and joints != project.num_joints:
            return f"the model predicts {joints} joints; the open project's skeleton has {project.num_joints}"
        if not picks:
            return "no frames were suggested"
        folder = Path(project.folder)

        def extract(control: JobControl) -> list[tuple[FrameScore, Path]]:
            by_video: dict[str, list[FrameScore]] = {}
            for p in picks:
                by_video.setdefault(p.source, []).append(p)
            out: list[tuple[FrameScore, Path]] = []
            for n, (video, scores) in enumerate(by_video.items()):
                if control.cancelled:
                    break
                saved = dict(save_frames(video, [s.frame for s in scores], folder / f"{Path(video).stem}_frames"))
                out += [(s, saved[s.frame]) for s in scores if s.frame in saved]
                control.progress(n + 1, len(by_video))
            return out

        def done(picked: list[tuple[FrameScore, Path]]) -> None:
            before = len(project.frames)
            workspace.suggester._add(picked)  # the Annotate tab's own adding (project, list, autosave, go-to)
            self.added.emit(len(project.frames) - before)

        self.job = run_in_worker(extract, done, lambda exc: self.failed.emit(f"extracting the frames failed: {exc}"),
                                 parent=self)
        return None


class SuggestBox(QGroupBox):
    """The dialog's "Suggest frames to label" part, shown once videos were analysed: count, run, the picks listed
    most uncertain first, "Add to annotation project"."""

    def __init__(self, parent=None):
        super().__init__("Suggest frames to label", parent)
        self.step = SuggestStep(self)
        self.model, self.videos, self.out_dir, self.workspace = "", [], Path(), None
        self.last_error = ""
        self.count = QSpinBox()
        self.count.setRange(1, 500)
        self.count.setValue(20)
        self.count.setToolTip("how many frames: the ones the model is least sure of, kept apart in time and look")
        self.run_button = QPushButton("Suggest frames to label")
        self.busy = QProgressBar()
        self.busy.setRange(0, 1)
        self.busy.setTextVisible(False)
        self.picks = QListWidget()
        self.picks.setMaximumHeight(110)
        self.add_button = QPushButton("Add to annotation project")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(QLabel("Frames"))
        row.addWidget(self.count)
        row.addWidget(self.run_button)
        row.addWidget(self.busy, 1)
        row.addStretch(1)  # the busy bar hidden, the count and button keep their size
        bottom = QHBoxLayout()
        bottom.addWidget(self.message, 1)
        bottom.addWidget(self.add_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.picks)
        layout.addLayout(bottom)
        self.run_button.clicked.connect(self.run)
        self.add_button.clicked.connect(self.add)
        self.step.suggested.connect(self._show)
        self.step.failed.connect(self._error)
        self.step.added.connect(self._added)
        self.reset()

    def reset(self) -> None:
        self.picks.clear()
        self.add_button.setEnabled(False)
        self.run_button.setEnabled(True)
        self.busy.setRange(0, 1)
        self.busy.setVisible(False)
        self.message.setText("")
        self.message.setStyleSheet("")
        self.last_error = ""

    def offer(self, model: str, videos: list[Path], out_dir: Path, workspace) -> None:
        """Show the box for these analysed videos (nothing runs until the user asks)."""
        self.model, self.videos, self.out_dir, self.workspace = model, list(videos), Path(out_dir), workspace
        self.reset()
        self.message.setText(f"Score the {len(videos)} analysed video(s) by the model's uncertainty and pick "
                             "frames worth labelling.")
        self.setVisible(True)

    def run(self) -> None:
        if self.step.is_running() or not self.videos:
            return
        self.reset()
        self.run_button.setEnabled(False)
        self.busy.setVisible(True)
        self.busy.setRange(0, 0)  # cpm suggest reports no progress to a program: a busy bar
        path = self.step.start(self.model, self.videos, self.count.value(), self.out_dir)
        self.message.setText(f"Scoring every frame (in a background process); the list goes to {path.name}…")

    def add(self) -> None:
        if self.workspace is None:
            self._error("no Annotate tab to add the frames to")
            return
        card = getattr(self.workspace.estimator_provider(), "card", None)
        why = self.step.add_to_project(self.workspace, self.step.picks,
                                       card.skeleton.num_joints if card is not None else None)
        if why:
            self._error(why)
            return
        self.add_button.setEnabled(False)
        self.message.setText("Extracting the frames into the project's folder…")

    def shutdown(self) -> None:
        if self.step.is_running():
            self.step.cancel()
            self.step.process.proc.waitForFinished(10000)
        if self.step.job is not None:
            self.step.job.cancel()
            self.step.job.wait(10000)

    def _show(self, picks: list[FrameScore]) -> None:
        self.busy.setRange(0, 1)
        self.busy.setVisible(False)
        self.run_button.setEnabled(True)
        for p in picks:
            self.picks.addItem(f"{p.score:.2f}  frame {p.frame} · {top_reason(p.reasons)} · {Path(p.source).name}")
        self.add_button.setEnabled(bool(picks))
        self.message.setText(f"{len(picks)} frame(s) suggested (saved in {self.step.json_path}); add them to the "
                             "open annotation project to label them in the Annotate tab.")

    def _added(self, n: int) -> None:
        self.message.setText(f"{n} frame(s) added to {Path(self.workspace.project.path).name}; label them in the "
                             "Annotate tab (the Suggested list, most uncertain first)")

    def _error(self, text: str) -> None:
        self.busy.setRange(0, 1)
        self.busy.setVisible(False)
        self.run_button.setEnabled(True)
        self.last_error = text
        self.message.setText(text)
        self.message.setStyleSheet("color: #e05050;")
