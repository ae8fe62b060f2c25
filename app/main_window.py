"""MainWindow: composes the viewer's parts (app/viewer/), the Annotate tab and the training tabs.

The viewer's state is one `ViewerSettings` (`window.viewer_settings`); its parts subscribe to it: the Controls
dock, the views (`ViewDisplay`), the pipeline (`PipelineBinding`), the capture (`SourceSession`) and the recorder.
Frames arrive from the pipeline's thread as PoseFrames and only the newest is drawn. Every failure a user can
cause, a bad file, a missing camera, weights that do not fit, ends as a message while the previous source and model
keep working; message boxes never block (and are skipped entirely in quiet / --quit mode).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QRect, QSettings, Qt, Signal
from PySide6.QtWidgets import QMainWindow, QMessageBox, QTabWidget

from app.annotate.workspace import AnnotationWorkspace
from app.frame_sources import FrameSource, SourceInfo
from app.inference import InferenceWorker
from app.panels import DistillPanel, EvaluatePanel, TrainPanel
from app.plots import ConfidencePlotsWidget
from app.shortcuts import help_html
from app.viewer.actions import ActionFactory
from app.viewer.bindings import PipelineBinding
from app.viewer.controls import ControlsPanel
from app.viewer.display import VIEW_ORDER, ViewDisplay, paint_interval_for
from app.viewer.docks import (
    CENTRAL_MIN_SIZE,
    FRAME_ALLOWANCE,
    PLOTS_MIN_HEIGHT,
    PREFERRED_SIZE,
    TabDocks,
    add_dock,
    fit_window,
    fitted_window_size,
    screen_geometry,
    scrolling,
)
from app.viewer.drop import dropped_path, looks_like_model
from app.viewer.menu_bar import build_menus
from app.viewer.model_loading import ModelLoader
from app.viewer.quit_guard import confirm_quit
from app.viewer.readout import Readout
from app.viewer.recording import RecordingActions
from app.viewer.session import SourceSession
from app.viewer.settings import ViewerSettings
from app.viewer.source_menus import SourceMenus
from app.views import PoseView
from cpm_core.estimator import PoseEstimator
from cpm_core.live_pipeline import LivePipeline
from cpm_core.sources import SourceError
from cpm_core.subject_size import HINT as SMALL_SUBJECT_HINT
from cpm_core.weights import default_model_path

__all__ = ["FRAME_ALLOWANCE", "PLOTS_MIN_HEIGHT", "PREFERRED_SIZE", "VIEW_ORDER", "MainWindow", "fitted_window_size",
           "looks_like_model", "paint_interval_for"]


class MainWindow(QMainWindow):
    """The live pose viewer beside the Annotate, Train, Distill and Evaluate tabs."""

    frameDisplayed = Signal(int)  # number of frames drawn so far for the current source
    sourceOpened = Signal(str)
    modelChanged = Signal(str)

    def __init__(self, estimator: PoseEstimator | None = None, settings: QSettings | None = None,
                 quiet: bool = False, parent=None, model_path: str | Path | None = None):
        super().__init__(parent)
        self.setWindowTitle("CPM Studio")
        self.setAcceptDrops(True)
        self.quiet = quiet
        self.settings = settings if settings is not None else QSettings("CPM Studio", "cpm-studio")
        self.viewer_settings = ViewerSettings()
        self.last_error = ""
        self.action_factory = ActionFactory(self)
        self.worker = InferenceWorker(estimator)
        self.binding = PipelineBinding(self.viewer_settings, self.pipeline, self.settings)
        self.session = SourceSession(self.viewer_settings, self.pipeline, self)
        self.plots = ConfidencePlotsWidget()
        self.plots.setMinimumHeight(PLOTS_MIN_HEIGHT)
        self.display = ViewDisplay(self.viewer_settings, self.plots, self)
        self.controls = ControlsPanel(self.viewer_settings)
        self.models = ModelLoader(self.viewer_settings, self.pipeline, self.report_error, self.show_status, self)
        self.recording = RecordingActions(
            self, self.viewer_settings, self.pipeline, self.action_factory, lambda: self.current_view.grab(),
            lambda: self.view_name, lambda: self.session.info.fps if self.session.info else 30.0,
            self.report_error, self.show_status)
        self.source_menus = SourceMenus(self, self.settings, self.open_source)
        self._connect()
        self._build_tabs()
        self._build_docks()
        self._build_menus()
        self.readout = Readout(lambda: self.pipeline, self.display, lambda: self.recording.recorder is not None)
        self.session.opened.connect(lambda _info, _gen: self.readout.new_source())
        self.statusBar().addPermanentWidget(self.readout)
        self.statusBar().addPermanentWidget(self.models.badge)
        self.worker.start()
        if estimator is None:
            self.load_model(default_model_path("hand"))
        else:
            self.models.model_path = str(model_path) if model_path is not None else None  # where `estimator` came from
            self.models.show_model(estimator)
        self.fit_to_screen(screen_geometry(self))

    @property
    def pipeline(self) -> LivePipeline:
        return self.worker.pipeline

    def _connect(self) -> None:
        w, s, d = self.worker, self.session, self.display
        w.resultReady.connect(d.deliver)
        w.modelLoaded.connect(self.models.show_model)
        w.modelFailed.connect(self.models.failed)
        w.frameFailed.connect(self._note)
        w.detectionFailed.connect(self._on_detection_failed)
        d.frameDisplayed.connect(self.frameDisplayed)
        d.smallSubject.connect(lambda: self.show_status(
            f"No person big enough for a whole-frame pose: {SMALL_SUBJECT_HINT}", 10000))
        s.opened.connect(self._on_source_opened)
        s.frameWarning.connect(self._note)
        s.failed.connect(lambda m: self.report_error(f"{m}; the last frame stays on screen, open another source"))
        self.plots.seekRequested.connect(s.seek)
        self.models.modelShown.connect(self._on_model_shown)

    def _on_model_shown(self, estimator: PoseEstimator) -> None:
        self.binding.refresh_detection()  # an 'auto' detector follows the new skeleton
        self.controls.show_auto_detector(self.binding.detector_name())
        self.evaluate_panel.set_viewer_model(self.models.model_path, estimator.card.name)
        self.modelChanged.emit(estimator.card.name)

    def _on_detection_failed(self, message: str) -> None:
        self.report_error(f"{message}; subject detection is off", interactive=False)
        self.viewer_settings.detect = False

    # ------------------------------------------------------------------ building
    def _build_tabs(self) -> None:
        """Viewer | Annotate | Train | Distill | Evaluate; the annotation mode is one self-contained widget that
        uses the pipeline's estimator under the pipeline's lock."""
        self.annotate = AnnotationWorkspace(lambda: self.pipeline.estimator, model_lock=self.pipeline.model_lock)
        self.annotate.statusMessage.connect(lambda m: self.show_status(m, 8000))
        self.annotate.errorOccurred.connect(lambda m: self.report_error(m, interactive=True))
        self.annotate.projectChanged.connect(lambda _p: self.mode_tabs.setCurrentWidget(self.annotate))
        self.train_panel, self.distill_panel, self.evaluate_panel = TrainPanel(), DistillPanel(), EvaluatePanel()
        for panel in (self.train_panel, self.distill_panel):
            panel.model_ready.connect(self._load_trained_model)
        self.mode_tabs = QTabWidget()
        for widget, name in ((self.display.stack, "Viewer"), (self.annotate, "Annotate"), (self.train_panel, "Train"),
                             (self.distill_panel, "Distill"), (self.evaluate_panel, "Evaluate")):
            self.mode_tabs.addTab(widget, name)
        self.mode_tabs.currentChanged.connect(self._on_mode_changed)
        # The tabs' own minimum is their tallest page's (the Distill form, ~580 px): with the viewer's docks around
        # it that would hold the window taller than a 768-line screen. Those tall pages hide the viewer's docks
        # (`_on_mode_changed`), so they get their room at 1366x768 even with this smaller minimum.
        self.mode_tabs.setMinimumSize(*CENTRAL_MIN_SIZE)
        self.setCentralWidget(self.mode_tabs)

    def _build_docks(self) -> None:
        right, bottom = Qt.DockWidgetArea.RightDockWidgetArea, Qt.DockWidgetArea.BottomDockWidgetArea
        # Scroll areas: a dock shrinks with a small screen instead of holding the window taller; a long card scrolls.
        self.controls_dock = add_dock(self, "Controls", "controls", scrolling(self.controls), right)
        self.plots_dock = add_dock(self, "Confidence", "confidence", self.plots, bottom)
        self.card_dock = add_dock(self, "Model card", "model_card", scrolling(self.models.card), right)
        # The viewer's controls and plots give their room to the other tabs' canvas and forms by default.
        self.tab_docks = TabDocks(self, (self.controls_dock, self.plots_dock), shown_in=(0,))
        self._resume_playing = False  # the video played when the viewer was left: it plays again on return

    def _build_menus(self) -> None:
        """Menus and toolbars (`app.viewer.menu_bar`); the View menu's actions are kept by name for scripts."""
        self.playback, menu = build_menus(self)
        self.view_menu = menu
        self.view_group, self.view_actions = menu.view_group, menu.view_actions
        self.toggle_actions, self.realtime_action = menu.toggle_actions, menu.realtime_action

    def fit_to_screen(self, available: QRect) -> None:
        """Size and place the window inside a screen's available geometry (`app.viewer.docks.fit_window`)."""
        fit_window(self, available, self.plots_dock, self.controls_dock)

    # ------------------------------------------------------------------ tabs
    def _load_trained_model(self, path: str) -> None:
        if self.load_model(path, interactive=True):
            self.mode_tabs.setCurrentIndex(0)

    def _on_mode_changed(self, index: int) -> None:
        """Each tab gets the viewer's docks back as the user left them in it (`TabDocks`), and the viewer its
        playback; the viewer's own readout shows only with the viewer, so other tabs' status messages have the
        status bar's width."""
        # Labelling is on still frames, and the model is better spent on predictions than on a hidden video.
        if index != 0 and self.tab_docks.current == 0:
            self._resume_playing = self.session.playing
            self.session.set_playing(False)
        elif index == 0 and self._resume_playing:
            self._resume_playing = False
            self.session.set_playing(True)
        self.tab_docks.switch(index)
        self.readout.setVisible(index == 0)

    # ------------------------------------------------------------------ messages
    def show_status(self, message: str, ms: int = 0) -> None:
        self.statusBar().showMessage(message, ms)

    def _note(self, message: str) -> None:
        """A passing problem (a skipped frame, a failed post step): the status bar, and `last_error`."""
        self.show_status(message, 8000)
        self.last_error = message

    def report_error(self, message: str, interactive: bool = False) -> None:
        """Show a failure in the status bar and, where the user acted, in a non-blocking message box."""
        self.last_error = message
        self.show_status(message, 20000)
        print(f"cpm-studio: {message}", file=sys.stderr)
        if interactive and not self.quiet:
            box = QMessageBox(QMessageBox.Icon.Warning, "CPM Studio", message, QMessageBox.StandardButton.Ok, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()

    def shortcut_list(self) -> list[tuple[str, str]]:
        return self.action_factory.shortcut_list()

    def show_shortcuts(self) -> None:
        """F1: every key of the window, the viewer's and the Annotate tab's, from their actions."""
        text = help_html([("Viewer", self.shortcut_list()), ("Annotate tab", self.annotate.shortcut_list())])
        self.shortcuts_box = self.action_factory.shortcuts_box(self.quiet, text)

    # ------------------------------------------------------------------ sources
    def open_source(self, spec: str | Path, interactive: bool = False) -> bool:
        """Open a path or 'camera:N'; on failure keep the current source and report why."""
        try:
            self.session.open(spec)
        except SourceError as exc:
            self.report_error(str(exc), interactive)
            return False
        return True

    def open_frame_source(self, source: FrameSource) -> None:
        """Switch to an already opened source (the current one stops)."""
        self.session.switch_to(source)

    def _on_source_opened(self, info: SourceInfo, generation: int) -> None:
        self.display.new_source(generation, info)
        self.plots.reset(info.frame_count if info.kind in ("video", "folder") else None,
                         show_timeline=info.kind in ("video", "folder", "camera"))
        self.source_menus.add_recent(info.label)
        self.setWindowTitle(f"CPM Studio – {Path(info.label).name if info.kind != 'camera' else info.label}")
        self.show_status(f"Opened {info.kind} {info.label}", 5000)
        self.sourceOpened.emit(info.label)

    def recent_sources(self) -> list[str]:
        return self.source_menus.recent_sources()

    @property
    def source_info(self) -> SourceInfo | None:
        return self.session.info

    @property
    def source_ended(self) -> bool:
        return self.session.ended

    @property
    def capture(self):
        return self.session.capture

    @property
    def generation(self) -> int:
        return self.session.generation

    # ------------------------------------------------------------------ model, views, output
    @property
    def model_path(self) -> str | None:
        """Where the shown model was loaded from (None for the model the window was given)."""
        return self.models.model_path

    def load_model(self, path: str | Path, interactive: bool = False) -> bool:
        """Start loading weights in the pipeline's thread; the current model runs until the new one is ready."""
        return self.models.load(path, interactive)

    def set_view(self, name: str) -> None:
        if name not in self.display.views:
            raise ValueError(f"unknown view {name!r}; choose one of {', '.join(VIEW_ORDER)}")
        self.viewer_settings.view = name

    @property
    def view_name(self) -> str:
        return self.viewer_settings.view

    @property
    def views(self) -> dict[str, PoseView]:
        return self.display.views

    @property
    def current_view(self) -> PoseView:
        return self.display.current_view

    @property
    def displayed(self) -> int:
        return self.display.displayed

    @property
    def delivered(self) -> int:
        return self.display.delivered

    def select_subject_at(self, x: float, y: float) -> int | None:
        """Select the subject under a frame point of the last drawn frame; returns its id (None: no subject)."""
        sid = self.display.subject_at(x, y)
        if sid is not None:
            self.viewer_settings.selected_subject = sid
        return sid

    def update_readout(self) -> None:
        self.readout.update_text()

    def snapshot(self, path: str | Path | None = None) -> Path | None:
        return self.recording.snapshot(path)

    def start_recording(self, path: str | Path | None) -> bool:
        return self.recording.start(path)

    def stop_recording(self):
        return self.recording.stop()

    # ------------------------------------------------------------------ drag and drop, closing
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        path = dropped_path(event)
        if path is not None:
            self.open_dropped(path)

    def open_dropped(self, path: str) -> bool:
        """A dropped model loads; anything else opens as a source."""
        if looks_like_model(path):
            return self.load_model(path, interactive=True)
        return self.open_source(path, interactive=True)

    def shutdown(self) -> None:
        """Stop threads and finish a recording; safe to call twice."""
        self.stop_recording()
        self.annotate.shutdown()
        for panel in (self.train_panel, self.distill_panel, self.evaluate_panel):
            panel.shutdown()
        self.session.stop()
        if self.worker.isRunning():
            self.worker.stop()
            self.worker.wait(10000)
        self.readout.pause()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if not confirm_quit(self, (self.train_panel, self.distill_panel)):  # a run in progress: asks first
            event.ignore()
            return
        self.shutdown()
        super().closeEvent(event)
