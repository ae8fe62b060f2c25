"""The annotation side panel: the joint list, the frame list and the buttons, without any editing logic.

The workspace fills these from the project after each change; the lists only report what the user picked.
Marks: a joint is "✓" placed by a person, "?" predicted and not yet confirmed, "◌" occluded, "·" not placed;
a frame is "✓" labelled, "?" holding unconfirmed predictions, "·" untouched. A prediction's row also shows the
model's confidence (per joint; a frame's mean), so the least sure ones can be checked first.

The panel has its own message line: the window's status bar shares its width with the viewer's speed readout,
which cut the tab's messages off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.annotate.check_panel import CheckList
from app.annotate.suggest_panel import SuggestionList
from cpm_core.dataset.project import AnnotationProject, FrameState

PREDICTED_FG = QColor(200, 0, 200)


def joint_mark(state: FrameState, j: int) -> str:
    if state.visibility[j] == 0:
        return "·"
    if state.predicted[j]:
        return "?"
    return "◌" if state.visibility[j] == 1 else "✓"


def frame_mark(state: FrameState) -> str:
    if state.labelled:
        return "✓"
    return "?" if state.predicted.any() else "·"


class JointListWidget(QListWidget):
    """One row per skeleton joint, in labelling order, showing whether it is placed, occluded or predicted."""

    def show_state(self, names: tuple[str, ...], state: FrameState, selected: int,
                   confidence: np.ndarray | None = None) -> None:
        """`confidence`: the model's (J,) confidences of this frame's predictions, if known."""
        self.blockSignals(True)
        if self.count() != len(names):
            self.clear()
            for _ in names:
                self.addItem(QListWidgetItem())
        for j, name in enumerate(names):
            item = self.item(j)
            mark = joint_mark(state, j)
            extra = {"?": "  predicted", "◌": "  occluded"}.get(mark, "")
            if mark == "?" and confidence is not None and j < len(confidence):
                extra += f" {float(confidence[j]):.2f}"
            item.setText(f"{mark} {j:2d} {name}{extra}")
            item.setForeground(PREDICTED_FG if mark == "?" else self.palette().text().color())
        self.setCurrentRow(selected)
        self.blockSignals(False)


class FrameListWidget(QListWidget):
    """One row per project frame with its labelled state."""

    def fill(self, project: AnnotationProject) -> None:
        self.blockSignals(True)
        self.clear()
        for i in range(len(project)):
            self.addItem(QListWidgetItem())
            self.update_frame(project, i)
        self.blockSignals(False)

    def update_frame(self, project: AnnotationProject, index: int, confidence: float | None = None) -> None:
        """`confidence`: the mean model confidence of the frame's unconfirmed predictions, if known."""
        item = self.item(index)
        if item is not None:
            st = project.state(index)
            conf = "" if confidence is None else f"  ({confidence:.2f})"
            item.setText(f"{frame_mark(st)} {index + 1:4d}  {Path(project.frames[index].image).name}{conf}")
            item.setForeground(PREDICTED_FG if frame_mark(st) == "?" else self.palette().text().color())

    def select(self, index: int) -> None:
        self.blockSignals(True)
        self.setCurrentRow(index)
        self.blockSignals(False)


class AnnotationPanel(QWidget):
    """Joint list, frame list, counts and the buttons of the annotation mode."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMaximumWidth(380)  # the canvas gets the rest of the width
        lay = QVBoxLayout(self)
        self.title = QLabel("No project: File ▸ New annotation project…")
        self.title.setWordWrap(True)
        self.counts = QLabel()
        self.counts.setWordWrap(True)
        self.message = QLabel()  # the tab's last message, whole (the status bar cut it under the speed readout)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.title)
        lay.addWidget(self.counts)
        lay.addWidget(self.message)
        buttons = QGridLayout()
        self.predict_button = QPushButton("Predict frame (P)")
        self.predict_all_button = QPushButton("Predict all… (Shift+P)")
        self.confirm_button = QPushButton("Confirm (Enter)")
        self.next_button = QPushButton("Next unlabelled (N)")
        self.least_button = QPushButton("Least confident (Shift+N)")
        self.least_button.setToolTip("Go to the unconfirmed prediction the model was least sure of (then the next "
                                     "least sure, on each press)")
        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.export_button = QPushButton("Export dataset…")
        # the labelling loop: frames the model is unsure of, labels that look wrong (issue #23)
        self.suggest_button = QPushButton("Suggest frames…")
        self.check_button = QPushButton("Check labels")
        for k, b in enumerate((self.predict_button, self.predict_all_button, self.confirm_button, self.next_button,
                               self.least_button, self.export_button, self.undo_button, self.redo_button,
                               self.suggest_button, self.check_button)):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            buttons.addWidget(b, k // 2, k % 2)
        lay.addLayout(buttons)
        joints_box = QGroupBox("Joints (click places the selected / next unplaced one)")
        jl = QVBoxLayout(joints_box)
        self.joints = JointListWidget()
        jl.addWidget(self.joints)
        lay.addWidget(joints_box, 3)
        frames_box = QGroupBox("Frames")
        fl = QVBoxLayout(frames_box)
        self.frames = FrameListWidget()
        fl.addWidget(self.frames)
        lay.addWidget(frames_box, 2)
        self.suggestions = SuggestionList()
        self.checks = CheckList()
        self.loop_tabs = QTabWidget()
        self.loop_tabs.addTab(self.suggestions, "Suggested frames")
        self.loop_tabs.addTab(self.checks, "Check labels")
        lay.addWidget(self.loop_tabs, 3)
        # Short on purpose: at 1366x768 the lists above need the height (F1 lists every shortcut).
        self.help = QLabel("Click: place · drag: move / pan · wheel: zoom · V: visibility · PgUp/PgDn: frame · "
                           "N / Shift+N: next unlabelled / least confident · Enter: confirm · F1: all shortcuts")
        self.help.setWordWrap(True)
        self.help.setStyleSheet("color: gray;")
        lay.addWidget(self.help)
        for lst in (self.joints, self.frames, self.suggestions, self.checks):
            lst.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.frames.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.frames.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
