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

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QProgressDialog,
    QSplitter,
    QWidget,
)

from app.annotate.assist import PredictionWorker
from app.annotate.canvas import AnnotationCanvasView
from app.annotate.check_panel import LabelChecker
from app.annotate.frame_editing import FrameEditingMixin
from app.annotate.panel import AnnotationPanel
from app.annotate.prediction import PredictionMixin
from app.annotate.project_files import ProjectFilesMixin
from app.annotate.suggest_panel import FrameSuggester
from app.background import WorkerJob
from app.shortcuts import shortcut_rows
from cpm_core.dataset.project import AnnotationProject


class AnnotationWorkspace(ProjectFilesMixin, FrameEditingMixin, PredictionMixin, QWidget):
    """The annotation mode: canvas on the left, joints / frames / buttons on the right.

    This class holds the tab's state, widgets, keys and messages; its behaviour comes in parts from mixins, one
    module each: project files (`project_files.py`), navigation and edits (`frame_editing.py`), model-assisted
    labelling (`prediction.py`)."""

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

    def shutdown(self) -> None:
        """Stop a running prediction, let a project creation or export finish, write the project one last time."""
        self.cancel_prediction()
        if self.background_job is not None:
            self.background_job.wait()
        self.suggester.cancel()
        self._dragging = False
        self._save()
