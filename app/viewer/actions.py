"""Window actions with shortcuts, and the shortcut list the Help menu shows (built from the actions themselves,
so the list cannot drift from the keys that work)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMessageBox, QWidget


class ActionFactory:
    """Makes actions on `owner` (a window: their shortcuts work anywhere in it) and remembers those with keys."""

    def __init__(self, owner: QWidget):
        self.owner = owner
        self.with_shortcuts: list[QAction] = []

    def __call__(self, text: str, slot: Callable, shortcut: str | QKeySequence.StandardKey | None = None,
                 checkable: bool = False, checked: bool = False) -> QAction:
        act = QAction(text, self.owner)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self.with_shortcuts.append(act)
        act.setCheckable(checkable)
        if checkable:
            act.setChecked(checked)
            act.toggled.connect(slot)
        else:
            act.triggered.connect(slot)
        self.owner.addAction(act)
        return act

    def shortcut_list(self) -> list[tuple[str, str]]:
        """(key, what it does) for every action with a shortcut, in the order they were made."""
        return [(a.shortcut().toString(QKeySequence.SequenceFormat.NativeText), a.text()) for a in self.with_shortcuts]

    def shortcuts_box(self, quiet: bool, text: str | None = None) -> QMessageBox:
        """The Help menu's table of keys (`text`: HTML, by default this factory's keys; not shown when `quiet`:
        scripted runs open no dialogs)."""
        if text is None:
            text = "".join(f"<tr><td><b>{k}</b></td><td>{t}</td></tr>" for k, t in self.shortcut_list())
            text = f"<table cellspacing=4>{text}</table>"
        text += "<p>Drop a video, image, folder or model onto the window.</p>"
        box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", text, QMessageBox.StandardButton.Ok,
                          self.owner)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if not quiet:
            box.open()
        return box
