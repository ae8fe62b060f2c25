"""The View menu: the four views (keys 1-4, also a toolbar), the checkable toggles (K, T, L, D, process every
frame) and the docks' own show/hide actions. Every action sets a `ViewerSettings` field and shows that field's
state: a toggle is ticked while its setting is on, whoever changed it (a key, the Controls dock, a script, a
recording switching real time off). The toggles used to be plain actions with no ticked state."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QSignalBlocker
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QDockWidget, QMenu, QToolBar

from app.viewer.actions import ActionFactory
from app.viewer.settings import VIEWS, ViewerSettings

TOGGLES = (("Kalman smoothing", "kalman", "K"), ("Self-tracking crop", "tracking", "T"),
           ("Loop video", "loop", "L"), ("Subject detection", "detect", "D"))


def check_quietly(action: QAction, on: bool) -> None:
    """Show a setting's state on its checkable action without triggering it (the setting already holds it)."""
    with QSignalBlocker(action):
        action.setChecked(on)


class ViewMenu:
    """Fills `menu` and the views toolbar (`views_bar`); `view_actions`, `toggle_actions` and `realtime_action`
    are the actions by setting."""

    def __init__(self, menu: QMenu, settings: ViewerSettings, act: ActionFactory, titles: dict[str, str],
                 set_view: Callable[[str], None], docks: tuple[QDockWidget, ...], owner: QObject):
        s = settings
        self.views_bar = QToolBar("Views")
        self.views_bar.setObjectName("views_toolbar")
        self.view_group = QActionGroup(owner)  # exclusive: one view is checked
        self.view_actions: dict[str, QAction] = {}
        for i, name in enumerate(VIEWS):
            a = act(f"{titles[name]} view", lambda _=False, n=name: set_view(n), str(i + 1))
            a.setCheckable(True)
            self.view_group.addAction(a)
            self.view_actions[name] = a
            menu.addAction(a)
            self.views_bar.addAction(a)
        s.subscribe("view", lambda n: self.view_actions[n].setChecked(True), now=True)
        menu.addSeparator()
        self.toggle_actions: dict[str, QAction] = {}
        for text, name, key in TOGGLES:
            a = act(text, lambda on, n=name: setattr(s, n, on), key, checkable=True, checked=getattr(s, name))
            s.subscribe(name, lambda on, a=a: check_quietly(a, on))
            self.toggle_actions[name] = a
            menu.addAction(a)
        self.realtime_action = act("Process every frame (no drops, slower than real time)",
                                   lambda on: setattr(s, "realtime", not on), checkable=True, checked=not s.realtime)
        s.subscribe("realtime", lambda on: check_quietly(self.realtime_action, not on))
        menu.addAction(self.realtime_action)
        for dock in docks:
            menu.addAction(dock.toggleViewAction())
