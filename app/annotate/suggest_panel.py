"""Annotate tab: "Suggest frames…" runs `cpm_core.suggest` on a video off the GUI thread and adds the frames the
model is least sure of (and that differ from each other) to the open project, listed by score.

The scoring reads the whole video through the model (seconds to minutes), so it runs in a `SuggestWorker` thread
with a cancellable progress dialog; the estimator is shared with the rest of the tab, so every model call holds
the workspace's model lock. The frames are written as JPEGs beside the project (`<video stem>_frames/`, as when a
project is made from a video) and appended as unlabelled frames whose extras keep the source, frame index, score
and reasons.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import Qt, QThread, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog, QListWidget, QListWidgetItem, QProgressDialog

from cpm_core.dataset.imageinfo import image_size
from cpm_core.dataset.project import ProjectFrame
from cpm_core.sources import VIDEO_SUFFIXES
from cpm_core.suggest import COMPONENTS, FrameScore, save_frames, score_sources, select_frames


class _LockedEstimator:
    """The shared estimator with every model call under the workspace's lock (the estimator is not thread-safe
    and the tab's own predictions use it too)."""

    def __init__(self, estimator, lock: threading.Lock):
        self._est, self._lock = estimator, lock
        self.card, self.spec = estimator.card, estimator.spec

    def __getattr__(self, name):
        return getattr(self._est, name)

    def predict(self, frame, crop=None):
        with self._lock:
            return self._est.predict(frame, crop)

    def predict_batch(self, *args, **kwargs):
        with self._lock:
            return self._est.predict_batch(*args, **kwargs)

    def run_raw(self, images):
        with self._lock:
            return self._est.run_raw(images)


class SuggestWorker(QThread):
    """Scores a video's frames, picks `count`, saves them as JPEGs into `out_dir`; emits the picks."""

    progressed = Signal(int, int)  # frames scored, frame count hint (0 when unknown)
    suggested = Signal(object)  # list of (FrameScore, saved image path)
    failed = Signal(str)

    def __init__(self, estimator, video: Path, count: int, out_dir: Path, every: int = 1,
                 lock: threading.Lock | None = None, parent=None):
        super().__init__(parent)
        self.estimator = _LockedEstimator(estimator, lock or threading.Lock())
        self.video, self.count, self.out_dir, self.every = Path(video), int(count), Path(out_dir), int(every)
        self._cancel = threading.Event()
        self.picked: list[tuple[FrameScore, Path]] = []

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:
        try:
            scores = score_sources(self.estimator, [self.video], self.every,
                                   progress=lambda _s, done, total: self.progressed.emit(done, total or 0),
                                   cancelled=self._cancel.is_set)
            if self._cancel.is_set():
                return
            if not scores:
                self.failed.emit(f"{self.video.name}: no frame could be read")
                return
            gap = max(self.every, 15)
            picks = select_frames(scores, self.count, min_gap=gap)
            saved = dict(save_frames(self.video, [p.frame for p in picks], self.out_dir))
            self.picked = [(p, saved[p.frame]) for p in picks if p.frame in saved]
        except Exception as exc:  # noqa: BLE001 - a bad video or a model failure becomes a message, the GUI lives on
            self.failed.emit(f"suggesting frames of {self.video.name} failed: {exc}")
            return
        self.suggested.emit(self.picked)


def top_reason(reasons: dict[str, float]) -> str:
    """The component that contributed most, for the list's one-line summary."""
    parts = {c: reasons.get(c, 0.0) for c in COMPONENTS}
    name = max(parts, key=parts.get)
    return f"{name.replace('_', ' ')} {parts[name]:.2f}"


class SuggestionList(QListWidget):
    """The suggested frames of the open project, most uncertain first; a click shows the frame."""

    frameRequested = Signal(int)  # project frame index

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setToolTip("Frames the model is least sure of (Suggest frames…); click to label one")
        self.setWordWrap(True)
        self.itemClicked.connect(lambda item: self.frameRequested.emit(int(item.data(Qt.ItemDataRole.UserRole))))

    def fill(self, project) -> None:
        """List the project's frames that carry a suggestion score, by score."""
        self.clear()
        if project is None:
            return
        rows = [(f.extras["suggested_score"], i, f) for i, f in enumerate(project.frames)
                if isinstance(f.extras.get("suggested_score"), int | float)]
        for score, i, f in sorted(rows, key=lambda r: -r[0]):
            mark = "✓" if project.is_labelled(i) else "·"
            text = (f"{mark} {score:.2f}  frame {f.extras.get('frame', '?')} · "
                    f"{top_reason(f.extras.get('suggested_reasons') or {})} · {f.extras.get('source', '?')}")
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, i)
            item.setToolTip("\n".join(f"{k}: {v:.3f}" for k, v in (f.extras.get("suggested_reasons") or {}).items()))
            self.addItem(item)


class FrameSuggester:
    """The "Suggest frames…" action of an `AnnotationWorkspace`: dialogs, the worker, adding frames."""

    def __init__(self, workspace):
        self.ws = workspace
        self.worker: SuggestWorker | None = None
        self.progress: QProgressDialog | None = None
        self.last_added: list[int] = []

    def dialog(self) -> None:
        ws = self.ws
        if ws.project is None:
            ws._error("no annotation project open: open or create one first, then suggest frames to add to it")
            return
        video, _ = QFileDialog.getOpenFileName(ws, "Suggest frames of a video", str(ws.project.folder),
                                               "Videos (" + " ".join(f"*{s}" for s in sorted(VIDEO_SUFFIXES)) + ")")
        if not video:
            return
        count, ok = QInputDialog.getInt(ws, "Suggest frames", "Frames to add (most uncertain, varied):", 10, 1, 500)
        if ok:
            self.start(video, count)

    def start(self, video: str | Path, count: int = 10, every: int = 1, dialog: bool = True) -> SuggestWorker | None:
        """Score `video` in the background and add `count` suggested frames to the open project."""
        ws = self.ws
        if ws.project is None:
            ws._error("no annotation project open: nothing to add suggested frames to")
            return None
        if self.worker is not None and self.worker.isRunning():
            ws._status("Suggesting frames is already running")
            return None
        est = ws.estimator_provider()
        if est is None:
            ws._error("no model loaded: suggestions come from the model's uncertainty; load one from the Model menu")
            return None
        if est.card.skeleton.num_joints != ws.project.num_joints:
            ws._error(f"the model predicts {est.card.skeleton.num_joints} joints; this project's skeleton has "
                      f"{ws.project.num_joints}")
            return None
        video = Path(video)
        if not video.is_file():
            ws._error(f"{video}: no such video")
            return None
        out_dir = ws.project.folder / f"{video.stem}_frames"
        worker = SuggestWorker(est, video, count, out_dir, every, ws.model_lock, ws)
        worker.suggested.connect(self._add)
        worker.failed.connect(ws._error)
        worker.finished.connect(self._finished)
        self.worker = worker
        if dialog:
            self.progress = QProgressDialog(f"Scoring the frames of {video.name} by the model's uncertainty…",
                                            "Cancel", 0, 0, ws)
            self.progress.setWindowTitle("Suggest frames")
            self.progress.setMinimumDuration(0)
            self.progress.canceled.connect(worker.cancel)
            worker.progressed.connect(self._on_progress)
        ws._status(f"Suggesting frames of {video.name}…")
        worker.start()
        return worker

    def _on_progress(self, done: int, total: int) -> None:
        if self.progress is not None:
            if total and self.progress.maximum() != total:
                self.progress.setMaximum(total)
            self.progress.setValue(min(done, total) if total else 0)
            self.progress.setLabelText(f"Scored {done}{f' of {total}' if total else ''} frames…")

    def _add(self, picked: list[tuple[FrameScore, Path]]) -> None:
        ws = self.ws
        proj = ws.project
        if proj is None:
            return
        known = {(f.extras.get("source"), f.extras.get("frame")) for f in proj.frames}
        added = []
        for score, path in picked:
            key = (Path(score.source).name, score.frame)
            if key in known:
                continue
            w, h = image_size(path) or (0, 0)
            extras = {"source": key[0], "frame": score.frame, "suggested_score": round(score.score, 4),
                      "suggested_reasons": {k: round(v, 4) for k, v in score.reasons.items()}}
            proj.frames.append(ProjectFrame(proj._relative(path), w, h, None, extras))
            added.append(len(proj.frames) - 1)
        self.last_added = added
        ws._save()
        ws.panel.frames.fill(proj)
        ws.panel.suggestions.fill(proj)
        ws.panel.loop_tabs.setCurrentWidget(ws.panel.suggestions)
        ws._refresh_counts()
        if added:
            ws.go_to(min(added, key=lambda i: -proj.frames[i].extras["suggested_score"]))
        ws._status(f"Added {len(added)} suggested frames of {self.worker.video.name if self.worker else 'the video'}"
                   f" ({len(picked) - len(added)} were already in the project); most uncertain first in the list")

    def _finished(self) -> None:
        if self.progress is not None:
            self.progress.reset()
            self.progress.deleteLater()
            self.progress = None
        if self.worker is not None and self.worker.cancelled:
            self.ws._status("Suggesting frames cancelled; nothing added")

    def cancel(self, wait_ms: int = 10000) -> None:
        if self.worker is not None and self.worker.isRunning():
            self.worker.cancel()
            self.worker.wait(wait_ms)
