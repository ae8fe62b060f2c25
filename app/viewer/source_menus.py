"""The File menu's source entries: open dialogs, the camera menu (listed when opened) and recent sources.

Recent sources persist in the app's QSettings; a failure to open ends as a message through the window's
`open_source`, never here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from app.cameras import list_cameras
from cpm_core.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES

MAX_RECENT = 8


class SourceMenus:
    """Fills the camera and recent menus on demand and runs the open dialogs; `open_source(spec, interactive)`
    does the opening."""

    def __init__(self, parent: QWidget, settings: QSettings, open_source: Callable[[str | Path, bool], bool]):
        self.parent = parent
        self.settings = settings
        self.open_source = open_source
        self.camera_menu = QMenu("Open camera", parent)
        self.camera_menu.aboutToShow.connect(self.fill_camera_menu)
        self.recent_menu = QMenu("Open recent", parent)
        self.recent_menu.aboutToShow.connect(self.fill_recent_menu)

    def open_dialog(self, folder: bool) -> None:
        if folder:
            path = QFileDialog.getExistingDirectory(self.parent, "Open image folder")
        else:
            pattern = " ".join(f"*{s}" for s in sorted(VIDEO_SUFFIXES | IMAGE_SUFFIXES))
            path, _ = QFileDialog.getOpenFileName(self.parent, "Open video or image", "",
                                                  f"Media ({pattern});;All files (*)")
        if path:
            self.open_source(path, True)

    def fill_camera_menu(self) -> None:
        self.camera_menu.clear()
        cams = list_cameras()
        if not cams:
            self.camera_menu.addAction("No cameras found").setEnabled(False)
        for cam in cams:
            self.camera_menu.addAction(cam.name, lambda c=cam: self.open_source(c.spec, True))

    def recent_sources(self) -> list[str]:
        value = self.settings.value("recent_sources", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def add_recent(self, label: str) -> None:
        recent = [label] + [r for r in self.recent_sources() if r != label]
        self.settings.setValue("recent_sources", recent[:MAX_RECENT])

    def fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_sources()
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for r in recent:
            self.recent_menu.addAction(r, lambda s=r: self.open_source(s, True))
