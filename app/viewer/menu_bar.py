"""The window's menus and toolbars: File (open a source, cameras, recent; annotation projects and dataset
export; Analyse videos; snapshot and record; quit), Model (load a file or folder, the embedded defaults), View
(`ViewMenu`: the views toolbar and the ticked toggles), Help, and the transport toolbar (`PlaybackBar` with
snapshot and record beside it).

Built once from the window's parts; it holds no state of its own: every action calls one of those parts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QMenu, QMessageBox

from app.analyse.menu import add_analyse_action
from app.viewer.playback import PlaybackBar
from app.viewer.view_menu import ViewMenu
from app.views import VIEW_CLASSES
from cpm_core.weights import default_model_path

if TYPE_CHECKING:
    from app.main_window import MainWindow

ABOUT = "Live 2D pose estimation with Convolutional Pose Machines."


def build_menus(window: MainWindow) -> tuple[PlaybackBar, ViewMenu]:
    """Fill `window`'s menu bar and add its toolbars; returns the transport toolbar and the View menu."""
    bar = window.menuBar()
    _file_menu(window, bar.addMenu("&File"))
    _model_menu(window, bar.addMenu("&Model"))
    view_menu = ViewMenu(bar.addMenu("&View"), window.viewer_settings, window.action_factory,
                         {n: c.title for n, c in VIEW_CLASSES.items()}, window.set_view,
                         (window.controls_dock, window.card_dock, window.plots_dock), window)
    window.addToolBar(view_menu.views_bar)
    transport = PlaybackBar(window.session, window.action_factory)
    transport.addSeparator()
    transport.addAction(window.recording.snapshot_action)
    transport.addAction(window.recording.record_action)
    window.addToolBar(transport)
    help_menu = bar.addMenu("&Help")
    help_menu.addAction(window.action_factory("Keyboard shortcuts", window.show_shortcuts, "F1"))
    help_menu.addAction(window.action_factory("About CPM Studio", lambda: _about(window)))
    return transport, view_menu


def _file_menu(window: MainWindow, menu: QMenu) -> None:
    act, sources, ann = window.action_factory, window.source_menus, window.annotate
    menu.addAction(act("Open video or image…", lambda: sources.open_dialog(False), "Ctrl+O"))
    menu.addAction(act("Open image folder…", lambda: sources.open_dialog(True), "Ctrl+Shift+O"))
    menu.addMenu(sources.camera_menu)
    menu.addMenu(sources.recent_menu)
    menu.addSeparator()
    for text, slot in (("New annotation project from video…", ann.new_from_video_dialog),
                       ("New annotation project from image folder…", ann.new_from_folder_dialog),
                       ("New annotation project from dataset…", ann.new_from_dataset_dialog),
                       ("Open annotation project…", ann.open_project_dialog),
                       ("Export dataset…", ann.export_dialog)):
        menu.addAction(act(text, slot))
    add_analyse_action(menu, window)
    menu.addSeparator()
    menu.addAction(window.recording.snapshot_action)
    menu.addAction(window.recording.record_action)
    menu.addSeparator()
    menu.addAction(act("Quit", window.close, "Ctrl+Q"))


def _model_menu(window: MainWindow, menu: QMenu) -> None:
    act, models = window.action_factory, window.models
    menu.addAction(act("Load model file (.pkl, checkpoint, card.json)…", lambda: models.dialog(False), "Ctrl+M"))
    menu.addAction(act("Load model folder…", lambda: models.dialog(True), "Ctrl+Shift+M"))
    menu.addSeparator()
    for kind in ("hand", "body"):
        menu.addAction(act(f"Embedded default ({kind})",
                           lambda _=False, k=kind: window.load_model(default_model_path(k), True)))


def _about(window: MainWindow) -> None:
    if not window.quiet:
        QMessageBox.about(window, "CPM Studio", ABOUT)
