"""Keyboard-shortcut help: the rows of a list of actions, and the F1 dialog's table, one section per part of the
window (the viewer's keys, the Annotate tab's keys).

The help is read from the actions themselves, so it can never list a key that does nothing or miss one that
exists; each part of the window exposes its rows (`MainWindow.shortcut_list`, `AnnotationWorkspace.shortcut_list`)
and the help dialog joins them here.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from PySide6.QtGui import QAction, QKeySequence


def shortcut_rows(actions: Iterable[QAction]) -> list[tuple[str, str]]:
    """(keys, what they do) for every action with a shortcut; an action's several keys read "Return / Enter"."""
    rows = []
    for act in actions:
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in act.shortcuts()]
        keys = [k for k in keys if k]
        if keys:
            rows.append((" / ".join(keys), act.text().replace("&", "")))
    return rows


def help_html(sections: Iterable[tuple[str, list[tuple[str, str]]]]) -> str:
    """The F1 dialog's text: one titled table per section that has rows."""
    parts = []
    for title, rows in sections:
        if not rows:
            continue
        body = "".join(f"<tr><td><b>{escape(k)}</b></td><td>{escape(t)}</td></tr>" for k, t in rows)
        parts.append(f"<h4>{escape(title)}</h4><table cellspacing=4>{body}</table>")
    return "".join(parts)
