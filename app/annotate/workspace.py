"""AnnotationWorkspace: the "Annotate" tab, wiring the project, undo stack, canvas, panel, model help and export.

Every change to a frame goes through a FrameEditCommand on one QUndoStack, and every change the stack applies
(push, undo, redo) is autosaved at once, atomically; only the moves of a drag in progress wait for the mouse
release. After a crash the project file therefore holds every finished edit.

The tab's keys are window-level actions that live only while the tab is shown (Qt's WindowShortcut context on a
widget of the tab): they work whatever has focus in the window, e.g. after a dialog closed or a button was
clicked, and do nothing on the other tabs. (They were WidgetWithChildrenShortcut, dead whenever focus sat
outside the tab's widgets: after Shift+P's progress dialog, a project created from a folder, ...)

The model's confidence of each prediction is kept in memory beside the project (`confidence`; the project file
has no field for it), drawn as the joints' size and opacity, and used by "Least confident" (Shift+N).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QProgressDialog,
    QSplitter,
    QWidget,
)

from app.annotate.assist import PredictionWorker
from app.annotate.canvas import AnnotationCanvasView, box_corners
from app.annotate.check_panel import LabelChecker
from app.annotate.commands import FrameEditCommand
from app.annotate.panel import AnnotationPanel
from app.annotate.suggest_panel import FrameSuggester
from app.background import WorkerJob, run_in_worker
from app.shortcuts import shortcut_rows
from cpm_core.dataset.formats import FORMATS, read_dataset, write_dataset
from cpm_core.dataset.frames import METHODS
from cpm_core.dataset.model import ABSENT
from cpm_core.dataset.project import PROJECT_SUFFIX, AnnotationProject, FrameState, ProjectError
from cpm_core.skeleton import HAND_21, Skeleton
from cpm_core.sources import VIDEO_SUFFIXES

FILE_FORMATS = ("coco", "tfrecord", "port-tfrecord")  # the others are written into a folder


class AnnotationWorkspace(QWidget):
    """The annotation mode: canvas on the left, joints / frames / buttons on the right."""

    statusMessage = Signal(str)
    errorOccurred = Signal(str)
    projectChanged = Signal(str)  # the project file's path

    def __init__(self, estimator_provider: Callable[[], object] | None = None, parent=None,
                 model_lock: threading.Lock | None = None):
        """`model_lock`: the lock of whoever owns the provided estimator (the live pipeline's in the app), held
        for every prediction here, so the viewer and the labelling assistant never run one estimator at once."""
        super().__init__(parent)
        self.estimator_provider = estimator_provider or (lambda: None)
        self.project: AnnotationProject | None = None
        self.index = 0
        self.selected = 0
        self.undo_stack = QUndoStack(self)
        self.model_lock = model_lock if model_lock is not None else threading.Lock()
        self.background_job: WorkerJob | None = None  # the last project creation or export run off the GUI thread
        self.worker: PredictionWorker | None = None
        self.progress: QProgressDialog | None = None
        self._setting_progress = False
        self.last_message = ""
        self.last_error = ""
        self.saves = 0
        self._dragging = False
        self._pushing = False
        self._drag_serial = 0
        self._drag_box: np.ndarray | None = None
        self._image_cache: tuple[Path, np.ndarray] | None = None
        # frame index -> (J,) the model's confidence of the joints it predicted there (this session's predictions)
        self.confidence: dict[int, np.ndarray] = {}
        self.key_actions: list[QAction] = []

        self.canvas = AnnotationCanvasView()
        self.panel = AnnotationPanel()
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.canvas)
        split.addWidget(self.panel)
        split.setStretchFactor(0, 1)
        split.setSizes([1000, 330])
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(split)

        self.canvas.placeRequested.connect(self.place_at)
        self.canvas.jointClicked.connect(self.select_joint)
        self.canvas.jointRightClicked.connect(self._cycle_joint)
        self.canvas.jointDragged.connect(self._on_joint_dragged)
        self.canvas.cornerDragged.connect(self._on_corner_dragged)
        self.panel.joints.currentRowChanged.connect(self.select_joint)
        self.panel.frames.currentRowChanged.connect(self.go_to)
        self.panel.predict_button.clicked.connect(self.predict_current)
        self.panel.predict_all_button.clicked.connect(lambda: self.predict_unlabelled())
        self.panel.confirm_button.clicked.connect(self.confirm)
        self.panel.next_button.clicked.connect(self.next_unlabelled)
        self.panel.least_button.clicked.connect(self.next_least_confident)
        self.panel.undo_button.clicked.connect(self.undo_stack.undo)
        self.panel.redo_button.clicked.connect(self.undo_stack.redo)
        self.panel.export_button.clicked.connect(self.export_dialog)
        self.suggester = FrameSuggester(self)
        self.checker = LabelChecker(self)
        self.panel.suggest_button.clicked.connect(self.suggester.dialog)
        self.panel.check_button.clicked.connect(self.checker.run)
        self.panel.suggestions.frameRequested.connect(self.go_to)
        self.undo_stack.canUndoChanged.connect(self.panel.undo_button.setEnabled)
        self.undo_stack.canRedoChanged.connect(self.panel.redo_button.setEnabled)
        self._build_actions()
        self._refresh_all()

    # ------------------------------------------------------------------ keys
    def _key_action(self, text: str, slot, *keys: str | QKeySequence.StandardKey) -> QAction:
        """An action whose shortcut works whatever has focus in the window while this tab is shown (a
        WindowShortcut on a widget of the tab: Qt only matches it while the tab is visible)."""
        act = QAction(text, self)
        act.setShortcuts([QKeySequence(k) for k in keys])
        act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        act.triggered.connect(lambda _=False: slot())
        self.addAction(act)
        self.key_actions.append(act)
        return act

    def shortcut_list(self) -> list[tuple[str, str]]:
        """(keys, what they do) of every key of this tab, read from its actions (for the F1 help)."""
        rows = shortcut_rows(self.key_actions)
        undo = shortcut_rows([self.undo_action, self.redo_action])
        return rows + [(keys, name) for (keys, _), name in zip(undo, ("Undo", "Redo"))]

    def _build_actions(self) -> None:
        self.undo_action = self.undo_stack.createUndoAction(self, "Undo")
        self.undo_action.setShortcuts([QKeySequence("Ctrl+Z")])
        self.redo_action = self.undo_stack.createRedoAction(self, "Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        for act in (self.undo_action, self.redo_action):
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self.addAction(act)
        self._key_action("Cycle visibility", self.cycle_selected, "V")
        self._key_action("Remove joint", self.remove_selected, "Delete", "Backspace")
        self._key_action("Next frame", lambda: self.step(1), "PgDown")
        self._key_action("Previous frame", lambda: self.step(-1), "PgUp")
        self._key_action("Next unlabelled frame", self.next_unlabelled, "N")
        self._key_action("Least confident prediction", self.next_least_confident, "Shift+N")
        self._key_action("Confirm frame", self.confirm, "Return", "Enter")
        self._key_action("Box follows joints", self.reset_box, "B")
        self._key_action("Fit frame", self.canvas.fit, "F")
        self._key_action("Predict frame", self.predict_current, "P")
        self._key_action("Predict unlabelled frames", lambda: self.predict_unlabelled(), "Shift+P")

    def reactivate(self) -> None:
        """Make this tab's window the active one again if no window of the app is: the tab's keys are window
        shortcuts, and when a dialog closes (file dialogs, the predict-all progress) nothing re-activates the
        window without a window manager that does it (seen under Xvfb: N, PgDn, P did nothing until a click
        on the canvas, which then also placed a joint)."""
        if QApplication.activeWindow() is None and self.isVisible():
            self.window().activateWindow()

    # ------------------------------------------------------------------ messages
    def _status(self, message: str) -> None:
        self.last_message = message
        self.panel.message.setStyleSheet("")
        self.panel.message.setText(message)
        self.statusMessage.emit(message)

    def _error(self, message: str) -> None:
        self.last_error = message
        self.panel.message.setStyleSheet("color: #e05050;")
        self.panel.message.setText(message)
        self.errorOccurred.emit(message)

    # ------------------------------------------------------------------ projects
    def set_project(self, project: AnnotationProject, save: bool = True) -> None:
        """Show `project` (saving it first, so a new project exists on disk before the first edit)."""
        self.cancel_prediction()
        self.suggester.cancel()
        self.undo_stack.clear()
        self.project = project
        self.index = 0
        self.selected = 0
        self._image_cache = None
        self.confidence = {}
        if save:
            self._save()
        self.panel.frames.fill(project)
        self.panel.suggestions.fill(project)
        self.panel.checks.clear()
        self.go_to(0, force=True)
        self._refresh_all()  # the buttons were left disabled until the first edit
        self.projectChanged.emit(str(project.path))

    def open_project(self, path: str | Path) -> bool:
        try:
            project = AnnotationProject.load(path)
        except ProjectError as exc:
            self._error(str(exc))
            return False
        self.set_project(project, save=False)
        self._status(f"Opened annotation project {path}")
        self.reactivate()
        return True

    def _default_skeleton(self) -> Skeleton:
        est = self.estimator_provider()
        return est.card.skeleton if est is not None else HAND_21

    def new_from_video(self, video: str | Path, project_path: str | Path, count: int = 20,
                       method: str = "uniform", background: bool = False) -> bool:
        """A project of `count` frames of `video`. Choosing and extracting the frames decodes the whole video
        (twice for some methods): with `background` (the File menu's way) that runs in a worker thread
        (`run_in_worker`), the window stays responsive and the project opens when it is ready; True then means
        started. Without it (scripts, tests) it runs here and returns whether the project opened."""
        if background:
            skeleton = self._default_skeleton()
            self._status(f"Extracting {count} frames from {Path(video).name} …")
            self.background_job = run_in_worker(
                lambda _control: AnnotationProject.from_video(project_path, video, count, method, skeleton),
                lambda project: self._adopt(project, f"{len(project)} frames from {Path(video).name} ({method})"),
                lambda exc: self._error(f"cannot make a project from {video}: {exc}"), parent=self)
            return True
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            project = AnnotationProject.from_video(project_path, video, count, method, self._default_skeleton())
        except (OSError, ValueError) as exc:
            self._error(f"cannot make a project from {video}: {exc}")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        return self._adopt(project, f"{len(project)} frames from {Path(video).name} ({method})")

    def new_from_folder(self, folder: str | Path, project_path: str | Path) -> bool:
        try:
            project = AnnotationProject.from_folder(project_path, folder, self._default_skeleton())
        except (OSError, ValueError) as exc:
            self._error(f"cannot make a project from {folder}: {exc}")
            return False
        return self._adopt(project, f"{len(project)} images from {folder}")

    def new_from_dataset(self, dataset_path: str | Path, project_path: str | Path, fmt: str | None = None) -> bool:
        try:
            ds = read_dataset(dataset_path, fmt=fmt)
            project = AnnotationProject.from_dataset(project_path, ds)
        except (OSError, ValueError, KeyError) as exc:
            self._error(f"cannot import {dataset_path}: {exc}")
            return False
        skipped = f"; {len(ds.issues)} malformed records skipped" if ds.issues else ""
        return self._adopt(project, f"{len(project)} images imported from {Path(dataset_path).name}{skipped}")

    def _adopt(self, project: AnnotationProject, what: str) -> bool:
        try:
            self.set_project(project)
        except OSError as exc:
            self._error(f"cannot save the project to {project.path}: {exc}")
            return False
        self._status(f"New annotation project {project.path}: {what}")
        self.reactivate()
        return True

    # ------------------------------------------------------------------ dialogs (thin wrappers over the above)
    def _project_path_dialog(self, suggestion: Path) -> str:
        path, _ = QFileDialog.getSaveFileName(self, "Save annotation project as", str(suggestion),
                                              f"Annotation project (*{PROJECT_SUFFIX})")
        if path and not path.endswith(PROJECT_SUFFIX):
            path += PROJECT_SUFFIX
        return path

    def new_from_video_dialog(self) -> None:
        pattern = " ".join(f"*{s}" for s in sorted(VIDEO_SUFFIXES))
        video, _ = QFileDialog.getOpenFileName(self, "Extract frames from video", "", f"Videos ({pattern})")
        if not video:
            return
        count, ok = QInputDialog.getInt(self, "Extract frames", "Number of frames to label:", 20, 1, 10000)
        if not ok:
            return
        method, ok = QInputDialog.getItem(self, "Extract frames", "Choose frames:", list(METHODS), 0, False)
        if not ok:
            return
        path = self._project_path_dialog(Path(video).with_suffix(PROJECT_SUFFIX))
        if path:
            self.new_from_video(video, path, count, method, background=True)

    def new_from_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Label the images of a folder")
        if folder:
            path = self._project_path_dialog(Path(folder) / f"{Path(folder).name}{PROJECT_SUFFIX}")
            if path:
                self.new_from_folder(folder, path)

    def new_from_dataset_dialog(self) -> None:
        src, _ = QFileDialog.getOpenFileName(self, "Import dataset (COCO .json, labels.txt, .tfrecord, CMU .json)",
                                             "", "Datasets (*.json labels.txt *.tfrecord *.tfrecords *.record);;"
                                             "All files (*)")
        if not src:
            return
        fmt = None
        if Path(src).name == "labels.txt":  # the labels format is a folder of <person>/labels.txt
            src, fmt = str(Path(src).parent.parent), "labels"
        path = self._project_path_dialog(Path(src).with_name(Path(src).stem + PROJECT_SUFFIX))
        if path:
            self.new_from_dataset(src, path, fmt)

    def open_project_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open annotation project", "",
                                              f"Annotation project (*{PROJECT_SUFFIX});;JSON (*.json)")
        if path:
            self.open_project(path)

    def export_dialog(self) -> None:
        if self.project is None:
            self._error("no annotation project open: nothing to export")
            return
        fmt, ok = QInputDialog.getItem(self, "Export dataset", "Format:", list(FORMATS), 0, False)
        if not ok:
            return
        base = self.project.folder / f"{self.project.path.name.removesuffix(PROJECT_SUFFIX)}_{fmt}"
        if fmt in FILE_FORMATS:
            suffix = ".json" if fmt == "coco" else ".tfrecord"
            path, _ = QFileDialog.getSaveFileName(self, f"Export as {fmt}", str(base) + suffix)
        else:
            path = QFileDialog.getExistingDirectory(self, f"Export as {fmt} into folder", str(self.project.folder))
        if path:
            self.export(path, fmt, background=True)
        self.reactivate()

    # ------------------------------------------------------------------ export
    def export(self, path: str | Path, fmt: str, only_labelled: bool = True, background: bool = False) -> bool:
        """Write the labelled frames as `fmt` via write_dataset; any failure becomes one clear message. With
        `background` (the dialog's way; TFRecords take a while) the writing runs in a worker thread and True means
        started; the message comes when it is done."""
        if self.project is None:
            self._error("no annotation project open: nothing to export")
            return False
        ds = self.project.to_dataset(only_labelled=only_labelled)
        if not ds.samples:
            self._error("nothing to export: no frame is labelled yet (confirm frames with Enter)")
            return False
        left = len(self.project) - len(ds.samples)
        done = (f"Exported {len(ds.samples)} labelled frames as {fmt} to {path}"
                + (f" ({left} unlabelled frames left out)" if left else ""))
        if background:
            self._status(f"Exporting {len(ds.samples)} labelled frames as {fmt} …")
            self.background_job = run_in_worker(
                lambda _control: write_dataset(ds, path, fmt), lambda _result: self._status(done),
                lambda exc: self._error(f"export to {fmt} failed: {path}: {exc}"), parent=self)
            return True
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            write_dataset(ds, path, fmt)
        except Exception as exc:  # noqa: BLE001 - writers raise OSError, ValueError, TF errors: all become a message
            self._error(f"export to {fmt} failed: {path}: {exc}")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self._status(done)
        return True

    # ------------------------------------------------------------------ saving
    def _save(self) -> None:
        if self.project is None:
            return
        try:
            self.project.save()
            self.saves += 1
        except OSError as exc:
            self._error(f"autosave failed: {self.project.path}: {exc}")

    # ------------------------------------------------------------------ navigation and display
    def go_to(self, index: int, force: bool = False) -> None:
        if self.project is None or not len(self.project):
            return
        index = max(0, min(int(index), len(self.project) - 1))
        if index == self.index and not force:
            return
        self.index = index
        self._show_image()
        self.selected = self._next_unplaced(0)
        self._refresh_frame()
        self.panel.frames.select(index)

    def step(self, delta: int) -> None:
        self.go_to(self.index + delta)

    def next_unlabelled(self) -> None:
        if self.project is None:
            return
        nxt = self.project.next_unlabelled(self.index)
        if nxt is None:
            self._status("Every frame is labelled")
        else:
            self.go_to(nxt)

    def frame_confidence(self, index: int) -> float | None:
        """The mean model confidence of frame `index`'s joints that are still unconfirmed predictions (None: no
        such joint, or predicted in an earlier session)."""
        conf = self.confidence.get(index)
        if conf is None or self.project is None:
            return None
        st = self.project.state(index)
        if st.labelled or not st.predicted.any():
            return None
        return float(np.mean(conf[st.predicted]))

    def next_least_confident(self) -> None:
        """Go to the unconfirmed prediction the model was least sure of; pressed again on that frame, to the next
        least sure one (frames in rising order of confidence, wrapping)."""
        if self.project is None:
            return
        scored = sorted((c, i) for i in self.confidence if (c := self.frame_confidence(i)) is not None)
        if not scored:
            self._status("No unconfirmed prediction with a confidence: predict frames first (P, Shift+P)")
            return
        order = [i for _, i in scored]
        nxt = order[(order.index(self.index) + 1) % len(order)] if self.index in order else order[0]
        self.go_to(nxt)
        self._status(f"Frame {nxt + 1}: mean confidence {self.frame_confidence(nxt):.2f} "
                     f"({order.index(nxt) + 1} of {len(order)} unconfirmed, least confident first)")

    def _show_image(self) -> None:
        path = self.project.image_path(self.index)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            f = self.project.frames[self.index]
            rgb = np.full((f.height or 480, f.width or 640, 3), 60, np.uint8)
            self._error(f"{path}: cannot read the image")
        else:
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        self.canvas.set_image(rgb)

    def _refresh_frame(self) -> None:
        if self.project is None:
            return
        st = self.project.state(self.index)
        conf = self.confidence.get(self.index)
        self.canvas.set_annotation(self.project.skeleton, st, self.selected, conf)
        self.panel.joints.show_state(self.project.skeleton.joints, st, self.selected, conf)
        self.panel.frames.update_frame(self.project, self.index, self.frame_confidence(self.index))
        self._refresh_counts()

    def _refresh_counts(self) -> None:
        p = self.project
        if p is None:
            return
        c = p.counts()
        self.panel.title.setText(f"<b>{p.path.name}</b> · frame {self.index + 1} / {len(p)}<br>"
                                 f"{Path(p.frames[self.index].image).name}")
        self.panel.title.setToolTip(str(p.image_path(self.index)))
        self.panel.counts.setText(f"{c['labelled']} of {c['frames']} frames labelled · {c['predicted']} with "
                                  f"unconfirmed predictions · skeleton {p.skeleton.name}")

    def _refresh_all(self) -> None:
        has = self.project is not None
        for b in (self.panel.predict_button, self.panel.predict_all_button, self.panel.confirm_button,
                  self.panel.next_button, self.panel.least_button, self.panel.export_button,
                  self.panel.suggest_button, self.panel.check_button):
            b.setEnabled(has)
        self.panel.undo_button.setEnabled(self.undo_stack.canUndo())
        self.panel.redo_button.setEnabled(self.undo_stack.canRedo())

    def _on_frame_changed(self, index: int) -> None:
        """Called by every command's redo/undo: show the frame an undo/redo touched, and autosave."""
        if index != self.index and not self._pushing:
            self.go_to(index)
        if index == self.index:
            self._refresh_frame()
        else:  # a background prediction for another frame
            self.panel.frames.update_frame(self.project, index, self.frame_confidence(index))
            self._refresh_counts()
        if not self._dragging:
            self._save()

    # ------------------------------------------------------------------ edits
    def _push(self, after: FrameState, text: str, drag: tuple | None = None, index: int | None = None) -> None:
        index = self.index if index is None else index
        if self.project is None or after.same_as(self.project.state(index)):
            return
        self._pushing = True
        try:
            self.undo_stack.push(FrameEditCommand(self.project, index, after, text, self._on_frame_changed, drag))
        finally:
            self._pushing = False
        self._refresh_all()

    def _next_unplaced(self, start: int) -> int:
        """The first joint without a position at or after `start` in skeleton order (wrapping), else `start`."""
        st = self.project.state(self.index)
        n = len(st.visibility)
        for k in range(n):
            j = (start + k) % n
            if st.visibility[j] == ABSENT:
                return j
        return min(start, n - 1)

    def select_joint(self, joint: int) -> None:
        if self.project is None or not 0 <= joint < self.project.num_joints:
            return
        self.selected = joint
        self._refresh_frame()

    def place_at(self, x: float, y: float) -> None:
        """Place the selected joint if unplaced, else the next unplaced one; then select the next unplaced."""
        if self.project is None:
            return
        st = self.project.state(self.index)
        if not (st.visibility == ABSENT).any():
            self._status("All joints are placed: drag one to move it, Delete removes the selected one")
            return
        joint = self._next_unplaced(self.selected)
        name = self.project.skeleton.joints[joint]
        self.selected = joint
        self._push(self.project.placed_state(self.index, joint, (x, y)), f"place {name}")
        self.selected = self._next_unplaced(joint)
        self._refresh_frame()

    def _on_joint_dragged(self, joint: int, x: float, y: float, finished: bool) -> None:
        if self.project is None:
            return
        if not self._dragging:
            self._dragging = True
            self._drag_serial += 1
            self.selected = joint
        name = self.project.skeleton.joints[joint]
        self._push(self.project.placed_state(self.index, joint, (x, y)), f"move {name}",
                   drag=("joint", self.index, joint, self._drag_serial))
        if finished:
            self._dragging = False
            self._save()

    def _on_corner_dragged(self, corner: int, x: float, y: float, finished: bool) -> None:
        if self.project is None:
            return
        if not self._dragging:
            self._dragging = True
            self._drag_serial += 1
            self._drag_box = box_corners(self.project.state(self.index).bbox)
        fixed = self._drag_box[(corner + 2) % 4]
        box = (min(x, fixed[0]), min(y, fixed[1]), abs(x - fixed[0]), abs(y - fixed[1]))
        self._push(self.project.bbox_state(self.index, box), "edit box", drag=("box", self.index, self._drag_serial))
        if finished:
            self._dragging = False
            self._save()

    def _cycle_joint(self, joint: int) -> None:
        if self.project is None:
            return
        self.selected = joint
        st = self.project.cycled_state(self.index, joint)
        names = {0: "absent", 1: "occluded", 2: "visible"}
        self._push(st, f"{self.project.skeleton.joints[joint]} {names[int(st.visibility[joint])]}")

    def cycle_selected(self) -> None:
        if self.project is not None:
            st = self.project.state(self.index)
            if st.visibility[self.selected] or st.keypoints[self.selected].any():
                self._cycle_joint(self.selected)

    def remove_selected(self) -> None:
        if self.project is None:
            return
        j = self.selected
        if self.project.state(self.index).visibility[j] != ABSENT:
            self._push(self.project.visibility_state(self.index, j, ABSENT),
                       f"remove {self.project.skeleton.joints[j]}")

    def reset_box(self) -> None:
        if self.project is not None:
            self._push(self.project.bbox_state(self.index, None), "box follows joints")

    def confirm(self) -> None:
        """Accept the predicted joints and mark the frame labelled (an empty frame too: nothing to label there)."""
        if self.project is None:
            return
        self._push(self.project.confirmed_state(self.index), "confirm frame")

    # ------------------------------------------------------------------ model-assisted labelling
    def _start_prediction(self, indices: list[int], dialog: bool) -> PredictionWorker | None:
        if self.project is None:
            return None
        if self.worker is not None and self.worker.isRunning():
            self._status("A prediction is already running")
            return None
        est = self.estimator_provider()
        if est is None:
            self._error("no model loaded: load one from the Model menu to predict joints")
            return None
        if est.card.skeleton.num_joints != self.project.num_joints:
            self._error(f"the model predicts {est.card.skeleton.num_joints} joints ({est.card.skeleton.name}); "
                        f"this project's skeleton {self.project.skeleton.name!r} has {self.project.num_joints}")
            return None
        jobs = [(i, self.project.image_path(i)) for i in indices]
        worker = PredictionWorker(est, jobs, self.model_lock, self)
        worker.framePredicted.connect(self._on_predicted)
        worker.failed.connect(self._error)
        worker.finished.connect(self._on_prediction_finished)
        self.worker = worker
        if dialog:
            self.progress = QProgressDialog(f"Predicting joints on {len(jobs)} frames…", "Cancel", 0, len(jobs), self)
            self.progress.setWindowTitle("Predict unlabelled frames")
            self.progress.setWindowModality(Qt.WindowModality.WindowModal)
            self.progress.setMinimumDuration(0)
            self.progress.canceled.connect(worker.cancel)
            worker.progressed.connect(self._on_progress)
        worker.start()
        return worker

    def predict_current(self) -> PredictionWorker | None:
        """Fill the current frame's unplaced (and still predicted) joints with the model's, in the background."""
        return self._start_prediction([self.index], dialog=False)

    def predict_unlabelled(self, dialog: bool = True) -> PredictionWorker | None:
        """Predict every frame nobody has touched (no joint placed by a person), with a cancellable progress."""
        if self.project is None:
            return None
        todo = [i for i in range(len(self.project)) if not self.project.is_labelled(i)
                and not (self.project.state(i).placed & ~self.project.state(i).predicted).any()]
        if not todo:
            self._status("No unlabelled frame left to predict")
            return None
        return self._start_prediction(todo, dialog)

    def _on_progress(self, done: int, total: int) -> None:
        # A modal QProgressDialog's setValue runs the event loop, which may deliver `finished` and delete the
        # dialog under our feet (a crash seen on a loaded machine): finishing waits until setValue is back.
        if self.progress is not None and not self._setting_progress:
            self._setting_progress = True
            try:
                self.progress.setValue(done)
            finally:
                self._setting_progress = False

    def _on_predicted(self, index: int, keypoints: np.ndarray) -> None:
        if self.project is None or index >= len(self.project):
            return
        try:
            after = self.project.predicted_state(index, keypoints)
        except ValueError as exc:
            self._error(str(exc))
            return
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim == 2 and kp.shape[1] > 2:  # (J, 3): x, y, the model's confidence
            self.confidence[index] = np.clip(np.nan_to_num(kp[:, 2]), 0.0, 1.0)
        self._push(after, "predict joints", index=index)

    def _on_prediction_finished(self) -> None:
        if self._setting_progress:
            QTimer.singleShot(0, self._on_prediction_finished)
            return
        worker = self.worker
        if self.progress is not None:
            self.progress.reset()
            self.progress.deleteLater()
            self.progress = None
            self.reactivate()
        if worker is not None:
            word = "cancelled after" if worker.cancelled else "done:"
            self._status(f"Prediction {word} {worker.done} of {len(worker.jobs)} frames; predicted joints are "
                         "magenta until confirmed (Enter) or moved")

    def cancel_prediction(self, wait_ms: int = 10000) -> None:
        if self.worker is not None and self.worker.isRunning():
            self.worker.cancel()
            self.worker.wait(wait_ms)

    def shutdown(self) -> None:
        """Stop a running prediction, let a project creation or export finish, write the project one last time."""
        self.cancel_prediction()
        if self.background_job is not None:
            self.background_job.wait()
        self.suggester.cancel()
        self._dragging = False
        self._save()
