"""File > Analyse videos…: the menu entry, `add_analyse_action(menu, window)`, for the window's File menu.

Kept apart from the window's own menu code (`app/viewer/menu_bar.py`), which calls it with one line, so the dialog can
be built and tested without the whole window.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction

from app.analyse.dialog import AnalyseDialog
from cpm_core.weights import default_model_path


def current_model_path(window) -> str:
    """Where the window's current model was loaded from, for the child process to load it again: the window's
    `model_path` when it keeps one, a port file's recorded source, or the embedded default whose card it is;
    "" when unknown (the user picks the model folder)."""
    path = getattr(window, "model_path", None)
    if path:
        return str(path)
    pipeline = getattr(window, "pipeline", None)
    card = getattr(getattr(pipeline, "estimator", None), "card", None)
    if card is None:
        return ""
    source = (card.provenance or {}).get("source")
    if source and Path(source).exists():
        return str(source)
    for kind in ("hand", "body"):
        folder = default_model_path(kind)
        try:
            if json.loads((folder / "card.json").read_text(encoding="utf-8")).get("name") == card.name:
                return str(folder)
        except (OSError, ValueError):
            continue
    return ""


class _CloseWatch(QObject):
    """Stops the dialog's run when its window closes: a child dialog hears no close event of its own then, and a
    QProcess destroyed with its window is killed, leaving its work folder behind."""

    def __init__(self, window, dialog: AnalyseDialog):
        super().__init__(dialog)
        self.dialog = dialog
        window.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Close:
            self.dialog.runner.shutdown()
            self.dialog.suggest.shutdown()
        return False


def add_analyse_action(menu, window) -> QAction:
    """Add File > Analyse videos… to `menu` (the window's File menu). One dialog per window, made on first use,
    its run stopped when the window closes; the model field starts with the window's current model."""
    state: dict[str, AnalyseDialog] = {}

    def open_dialog() -> AnalyseDialog:
        dialog = state.get("dialog")
        if dialog is None:
            dialog = AnalyseDialog(window, workspace=getattr(window, "annotate", None))
            dialog.setWindowFlag(Qt.WindowType.Window)
            _CloseWatch(window, dialog)
            state["dialog"] = dialog
        if not dialog.runner.is_running():
            dialog.model_edit.setText(current_model_path(window) or dialog.model_edit.text())
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    action = QAction("Analyse videos…", window)
    action.setStatusTip("Run the model on a list of videos in the background: keypoints JSON/CSV, annotated videos")
    action.triggered.connect(open_dialog)
    menu.addAction(action)
    return action
