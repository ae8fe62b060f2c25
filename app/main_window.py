"""MainWindow: wires sources, the capture and inference threads, the four views and the controls together.

The window owns no per-frame work beyond drawing: frames arrive from the InferenceWorker as PoseFrames and only
the newest one is drawn (a burst of results coalesces into one redraw). Every failure a user can cause, a bad
file, a missing camera, weights that do not fit, ends as a message while the previous source and model keep
working; message boxes never block (and are skipped entirely in quiet / --quit mode).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path

from PySide6.QtCore import QRect, QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QStackedWidget,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.annotate.workspace import AnnotationWorkspace
from app.cameras import list_cameras
from app.capture import CaptureThread
from app.frame_sources import FrameSource, SourceInfo, open_source
from app.inference import InferenceWorker, PoseFrame
from app.panels import DistillPanel, EvaluatePanel, TrainPanel
from app.plots import ConfidencePlotsWidget
from app.recording import Recorder
from app.views import VIEW_CLASSES, PoseView, TrackerView
from cpm_core.detection import DETECTORS, default_detector_name
from cpm_core.estimator import PoseEstimator
from cpm_core.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, SourceError
from cpm_core.subject_size import HINT as SMALL_SUBJECT_HINT
from cpm_core.weights import WeightsError, default_model_path, sniff_format

VIEW_ORDER = ("multi", "single", "joints", "tracker")
MAX_RECENT = 8
MODEL_SUFFIXES = (".pkl", ".pickle", ".index", ".weights.h5")
# Window sizing (`MainWindow.fit_to_screen`): the size the window opens at when the screen has room; what a window
# manager's title bar and borders take around it (the window's own size excludes them); the least room the
# tabs and the confidence plots keep, small enough that the whole window fits a 1366x768 screen.
PREFERRED_SIZE = (1400, 900)
FRAME_ALLOWANCE = (16, 40)
CENTRAL_MIN_SIZE = (440, 300)
PLOTS_MIN_HEIGHT = 110


def looks_like_model(path: str | Path) -> bool:
    """Whether a dropped path is weights rather than media (model folders, .pkl, checkpoints, card.json)."""
    p = Path(path)
    if p.is_dir():
        return (p / "card.json").exists() or (p / "checkpoint").exists() or any(p.glob("*.index"))
    return p.name == "card.json" or p.name.endswith(MODEL_SUFFIXES) or ".data-" in p.name


def fitted_window_size(available: QSize) -> QSize:
    """The window's size on a screen whose available area is `available`: `PREFERRED_SIZE` where it fits with the
    frame (`FRAME_ALLOWANCE`), else as much of the screen as the frame leaves."""
    return QSize(min(PREFERRED_SIZE[0], available.width() - FRAME_ALLOWANCE[0]),
                 min(PREFERRED_SIZE[1], available.height() - FRAME_ALLOWANCE[1]))


def _scrolling(widget: QWidget) -> QScrollArea:
    """`widget` in a frameless vertical scroll area, so a dock holding it can be shorter than its form."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setMinimumWidth(widget.minimumSizeHint().width())
    return area


def _log_slider(lo: float, hi: float, value: float) -> QSlider:
    """A slider over log10 values in [lo, hi] (noise levels span orders of magnitude)."""
    import math

    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(round(math.log10(lo) * 10), round(math.log10(hi) * 10))
    s.setValue(round(math.log10(value) * 10))
    return s


def paint_interval_for(screen_interval: float, info: SourceInfo | None) -> float:
    """Seconds between view paints: the screen's refresh interval, or a video's or camera's frame interval when
    that is longer. Processing every frame of a 30 fps clip at 100 frames/s, a paint per screen refresh showed
    frames no one can follow and took the GUI thread's time from the pipeline; at the source's own rate the
    preview still moves as smoothly as the footage itself. Images, folders and unknown rates: the screen's."""
    fps = info.fps if info is not None and info.kind in ("video", "camera") else 0.0
    return max(screen_interval, 1.0 / fps) if 5.0 <= fps <= 240.0 else screen_interval


class MainWindow(QMainWindow):
    """The live pose viewer."""

    frameDisplayed = Signal(int)  # number of frames drawn so far for the current source
    sourceOpened = Signal(str)
    modelChanged = Signal(str)

    def __init__(self, estimator: PoseEstimator | None = None, settings: QSettings | None = None,
                 quiet: bool = False, parent=None):
        super().__init__(parent)
        self.setWindowTitle("CPM Studio")
        self.setAcceptDrops(True)
        self.quiet = quiet
        self.settings = settings if settings is not None else QSettings("CPM Studio", "cpm-studio")
        self.last_error = ""
        self.capture: CaptureThread | None = None
        self.source_info: SourceInfo | None = None
        self.source_ended = False
        self.generation = 0
        self.displayed = 0  # frames painted for the current source
        self.delivered = 0  # results that reached the GUI for the current source (each one recorded)
        self._last_draw = 0.0
        screen = QGuiApplication.primaryScreen()
        rate = screen.refreshRate() if screen is not None else 0.0
        self.screen_interval = 1.0 / (rate if 20.0 <= rate <= 240.0 else 60.0)
        self.paint_interval = self.screen_interval  # seconds between view paints (see paint_interval_for)
        self.recorder: Recorder | None = None
        self._latest: PoseFrame | None = None
        self._drawn: PoseFrame | None = None
        self._draw_scheduled = False
        self._realtime = True
        self._draw_times: deque[float] = deque(maxlen=60)
        self._capture_marks: deque[tuple[float, int]] = deque(maxlen=8)  # 2 s of readout ticks
        self._shortcut_actions: list[QAction] = []

        self.worker = InferenceWorker(estimator)
        self.worker.resultReady.connect(self._on_result)
        self.worker.modelLoaded.connect(self._on_model_loaded)
        self.worker.modelFailed.connect(self._on_model_failed)
        self.worker.frameFailed.connect(self._on_frame_failed)
        self.worker.detectionFailed.connect(self._on_detection_failed)
        self._model_interactive = False
        self.selected_subject: int | None = None  # None: the lowest id present

        self._build_views()
        self._build_annotation()
        self._build_controls()
        self._build_plots_and_card()
        self._build_actions()
        self._build_status()

        self.worker.start()
        if estimator is None:
            self.load_model(default_model_path("hand"))
        else:
            self._on_model_loaded(estimator)
        self._readout_timer = QTimer(self)
        self._readout_timer.timeout.connect(self.update_readout)
        self._readout_timer.start(250)
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None or QGuiApplication.platformName() in ("offscreen", "minimal"):
            # No real screen to fit (scripted screenshots, tests): the preferred size, as on a large screen.
            available = QRect(0, 0, PREFERRED_SIZE[0] + FRAME_ALLOWANCE[0], PREFERRED_SIZE[1] + FRAME_ALLOWANCE[1])
        else:
            available = screen.availableGeometry()
        self.fit_to_screen(available)

    def fit_to_screen(self, available: QRect) -> None:
        """Size and place the window inside `available` (a screen's available geometry): the preferred size where it
        fits, else the screen less room for the window manager's frame, with the docks in proportion. At 1366x768
        every part stays on the screen: the docks shrink (controls scroll), the toolbars fit in one row."""
        size = fitted_window_size(QSize(available.width(), available.height()))
        self.resize(size)
        self.resizeDocks([self.plots_dock], [max(PLOTS_MIN_HEIGHT, round(size.height() * 0.21))],
                         Qt.Orientation.Vertical)
        self.resizeDocks([self.controls_dock], [320], Qt.Orientation.Horizontal)
        frame = QSize(*FRAME_ALLOWANCE)
        x = available.x() + max(0, (available.width() - size.width() - frame.width()) // 2)
        y = available.y() + max(0, (available.height() - size.height() - frame.height()) // 2)
        self.move(x, y)

    # ------------------------------------------------------------------ building
    def _build_views(self) -> None:
        self.views: dict[str, PoseView] = {name: cls() for name, cls in VIEW_CLASSES.items()}
        self.stack = QStackedWidget()
        for name in VIEW_ORDER:
            self.stack.addWidget(self.views[name])
            self.views[name].subjectClicked.connect(self.select_subject)
        self.setCentralWidget(self.stack)
        self.view_name = "multi"

    def _build_annotation(self) -> None:
        """Viewer | Annotate tabs around the central widget; the annotation mode is one self-contained widget."""
        self.annotate = AnnotationWorkspace(lambda: self.worker.estimator)
        self.annotate.statusMessage.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.annotate.errorOccurred.connect(lambda m: self.report_error(m, interactive=True))
        self.annotate.projectChanged.connect(lambda _p: self.mode_tabs.setCurrentWidget(self.annotate))
        self.mode_tabs = QTabWidget()
        self.mode_tabs.addTab(self.takeCentralWidget(), "Viewer")
        self.mode_tabs.addTab(self.annotate, "Annotate")
        self._build_training_tabs()
        self.mode_tabs.currentChanged.connect(self._on_mode_changed)
        # The tabs' own minimum is their tallest page's (the Distill form, ~580 px): with the viewer's docks around
        # it that would hold the window taller than a 768-line screen. Those tall pages hide the viewer's docks
        # (`_on_mode_changed`), so they get their room at 1366x768 even with this smaller minimum.
        self.mode_tabs.setMinimumSize(CENTRAL_MIN_SIZE[0], CENTRAL_MIN_SIZE[1])
        self.setCentralWidget(self.mode_tabs)

    def _build_training_tabs(self) -> None:
        """Train, Distill and Evaluate run as separate processes; a finished model loads into the viewer."""
        self.train_panel = TrainPanel()
        self.distill_panel = DistillPanel()
        self.evaluate_panel = EvaluatePanel()
        for panel in (self.train_panel, self.distill_panel):
            panel.model_ready.connect(self._load_trained_model)
        self.mode_tabs.addTab(self.train_panel, "Train")
        self.mode_tabs.addTab(self.distill_panel, "Distill")
        self.mode_tabs.addTab(self.evaluate_panel, "Evaluate")

    def _load_trained_model(self, path: str) -> None:
        if self.load_model(path, interactive=True):
            self.mode_tabs.setCurrentIndex(0)

    def _on_mode_changed(self, _index: int) -> None:
        # Labelling is on still frames, and the model is better spent on predictions than on a hidden video;
        # the viewer-only docks give their room to the canvas and come back with the viewer.
        annotating = self.mode_tabs.currentIndex() != 0  # any tab but the viewer
        if annotating and self.capture is not None and self.capture.playing:
            self.capture.set_playing(False)
        viewer_docks = (self.controls_dock, self.plots_dock)
        if annotating:
            self._docks_before_annotate = [d for d in viewer_docks if not d.isHidden()]
            for d in self._docks_before_annotate:
                d.hide()
        else:
            for d in getattr(self, "_docks_before_annotate", []):
                d.show()
            self._docks_before_annotate = []

    def _build_controls(self) -> None:
        panel = QWidget()
        form = QFormLayout(panel)
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0, 100)
        self.threshold_slider.setValue(10)
        self.threshold_label = QLabel("0.10")
        self.threshold_slider.valueChanged.connect(self._on_threshold)
        form.addRow("Confidence threshold", self.threshold_slider)
        form.addRow("", self.threshold_label)

        self.kalman_check = QCheckBox("Kalman smoothing (K)")
        self.kalman_check.setChecked(True)
        self.kalman_check.toggled.connect(self.worker.set_kalman)
        form.addRow(self.kalman_check)
        self.q_slider = _log_slider(1e-4, 1.0, 0.03)
        self.r_slider = _log_slider(1e-2, 100.0, 1.0)
        self.noise_label = QLabel()
        self.q_slider.valueChanged.connect(self._on_noise)
        self.r_slider.valueChanged.connect(self._on_noise)
        form.addRow("Process noise q", self.q_slider)
        form.addRow("Measurement noise r", self.r_slider)
        form.addRow("", self.noise_label)
        self._on_noise()

        self.tracking_check = QCheckBox("Self-tracking crop (T)")
        self.tracking_check.toggled.connect(self.worker.set_tracking)
        form.addRow(self.tracking_check)
        self.tracker_threshold = QDoubleSpinBox()
        self.tracker_threshold.setRange(0.0, 50.0)
        self.tracker_threshold.setSingleStep(0.1)
        self.tracker_threshold.setValue(1.0)
        self.tracker_threshold.setToolTip("The track is lost when the sum of the joints' heatmap peaks falls below")
        self.tracker_threshold.valueChanged.connect(self.worker.set_tracker_threshold)
        form.addRow("Lost below (sum of peaks)", self.tracker_threshold)
        self.tracker_mode = QComboBox()
        self.tracker_mode.addItems(TrackerView.MODES)
        self.tracker_mode.currentTextChanged.connect(self.views["tracker"].set_mode)
        form.addRow("Tracker view pose", self.tracker_mode)

        self._build_detection_controls(form)

        self.autoscale_check = QCheckBox("Auto-scale heatmap colours")
        self.autoscale_check.setToolTip("Colour each heatmap tile over its own range instead of [0, 1]: shows the "
                                        "structure of weak or untrained models' outputs")
        self.autoscale_check.toggled.connect(self._on_autoscale)
        form.addRow(self.autoscale_check)

        self.loop_check = QCheckBox("Loop video (L)")
        self.loop_check.setChecked(True)
        self.loop_check.toggled.connect(self._on_loop)
        form.addRow(self.loop_check)

        dock = QDockWidget("Controls", self)
        dock.setObjectName("controls")
        dock.setWidget(_scrolling(panel))  # shrinks with a small screen instead of holding the window taller
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.controls_dock = dock

    def _build_detection_controls(self, form: QFormLayout) -> None:
        """Detect subjects: a detector finds hands/people anywhere in the frame and each gets its own pose and
        id. The detector follows the model's skeleton unless overridden; the max and override persist."""
        self.detect_check = QCheckBox("Detect subjects (D)")
        self.detect_check.setToolTip("Find every subject anywhere in the frame with a detector, pose each one and "
                                     "keep their ids over time; click a subject to show its heatmaps")
        form.addRow(self.detect_check)
        self.max_subjects_spin = QSpinBox()
        self.max_subjects_spin.setRange(1, 10)
        self.max_subjects_spin.setValue(int(self.settings.value("detection/max_subjects", 4)))
        form.addRow("Max subjects", self.max_subjects_spin)
        self.detector_combo = QComboBox()
        self.detector_combo.addItem("auto", "")
        for name in DETECTORS:
            self.detector_combo.addItem(name, name)
        saved = str(self.settings.value("detection/detector", "") or "")
        self.detector_combo.setCurrentIndex(max(0, self.detector_combo.findData(saved)))
        self.detector_combo.setToolTip("auto: palm for hand models, pose for body models")
        form.addRow("Detector", self.detector_combo)
        self.detect_check.toggled.connect(self._on_detection_settings)
        self.max_subjects_spin.valueChanged.connect(self._on_detection_settings)
        self.detector_combo.currentIndexChanged.connect(self._on_detection_settings)

    def detector_name(self) -> str:
        """The override if one is chosen, else the detector that suits the loaded model's skeleton."""
        override = self.detector_combo.currentData()
        if override:
            return str(override)
        estimator = self.worker.estimator
        return default_detector_name(estimator.card.skeleton.name) if estimator is not None else "palm"

    def _on_detection_settings(self, *_args) -> None:
        self.detector_combo.setItemText(0, f"auto ({self.detector_name() if self.worker.estimator else '–'})")
        self.settings.setValue("detection/max_subjects", self.max_subjects_spin.value())
        self.settings.setValue("detection/detector", self.detector_combo.currentData() or "")
        self.worker.set_detection(self.detect_check.isChecked(), self.detector_name(), self.max_subjects_spin.value())

    def _on_detection_failed(self, message: str) -> None:
        self.report_error(f"{message}; subject detection is off", interactive=False)
        self.detect_check.setChecked(False)

    def select_subject(self, subject_id: int | None) -> None:
        """Show this subject's heatmaps in the Multi-stage and Joints views (None: the lowest id present)."""
        self.selected_subject = subject_id
        for v in self.views.values():
            v.selected_subject = subject_id
        self.current_view.redraw()

    def select_subject_at(self, x: float, y: float) -> int | None:
        """Select the subject under a frame point of the last drawn frame; returns its id (None: no subject)."""
        sid = self._drawn.subject_at(x, y) if self._drawn is not None else None
        if sid is not None:
            self.select_subject(sid)
        return sid

    def _build_plots_and_card(self) -> None:
        self.plots = ConfidencePlotsWidget()
        self.plots.setMinimumHeight(PLOTS_MIN_HEIGHT)
        dock = QDockWidget("Confidence", self)
        dock.setObjectName("confidence")
        dock.setWidget(self.plots)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.plots_dock = dock

        card = QWidget()
        lay = QVBoxLayout(card)
        self.card_warning = QLabel()
        self.card_warning.setWordWrap(True)
        self.card_warning.setStyleSheet("color: white; background: #b00020; padding: 4px; font-weight: bold;")
        self.card_label = QLabel()
        self.card_label.setWordWrap(True)
        self.card_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.card_warning)
        lay.addWidget(self.card_label)
        lay.addStretch(1)
        dock = QDockWidget("Model card", self)
        dock.setObjectName("model_card")
        dock.setWidget(_scrolling(card))  # a long card scrolls in a short dock instead of being cut
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.card_dock = dock

    def _action(self, text: str, slot, shortcut: str | QKeySequence.StandardKey | None = None,
                checkable: bool = False, checked: bool = False) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self._shortcut_actions.append(act)
        act.setCheckable(checkable)
        if checkable:
            act.setChecked(checked)
            act.toggled.connect(slot)
        else:
            act.triggered.connect(slot)
        self.addAction(act)
        return act

    def _build_actions(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self._action("Open video or image…", lambda: self._open_dialog(False), "Ctrl+O"))
        file_menu.addAction(self._action("Open image folder…", lambda: self._open_dialog(True), "Ctrl+Shift+O"))
        self.camera_menu = file_menu.addMenu("Open camera")
        self.camera_menu.aboutToShow.connect(self._fill_camera_menu)
        self.recent_menu = file_menu.addMenu("Open recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        ann = self.annotate
        for text, slot in (("New annotation project from video…", ann.new_from_video_dialog),
                           ("New annotation project from image folder…", ann.new_from_folder_dialog),
                           ("New annotation project from dataset…", ann.new_from_dataset_dialog),
                           ("Open annotation project…", ann.open_project_dialog),
                           ("Export dataset…", ann.export_dialog)):
            file_menu.addAction(self._action(text, slot))
        file_menu.addSeparator()
        self.snapshot_action = self._action("Snapshot view to PNG…", lambda: self.snapshot(), "Ctrl+S")
        self.record_action = self._action("Record video + keypoints…", self._on_record_toggled, "Ctrl+R",
                                          checkable=True)
        file_menu.addAction(self.snapshot_action)
        file_menu.addAction(self.record_action)
        file_menu.addSeparator()
        file_menu.addAction(self._action("Quit", self.close, "Ctrl+Q"))

        model_menu = bar.addMenu("&Model")
        model_menu.addAction(self._action("Load model file (.pkl, checkpoint, card.json)…",
                                          lambda: self._model_dialog(False), "Ctrl+M"))
        model_menu.addAction(self._action("Load model folder…", lambda: self._model_dialog(True), "Ctrl+Shift+M"))
        model_menu.addSeparator()
        for kind in ("hand", "body"):
            model_menu.addAction(self._action(f"Embedded default ({kind})",
                                              lambda _=False, k=kind: self.load_model(default_model_path(k), True)))

        view_menu = bar.addMenu("&View")
        self.view_group = QActionGroup(self)
        self.view_actions: dict[str, QAction] = {}
        views_bar = QToolBar("Views")
        views_bar.setObjectName("views_toolbar")
        for i, name in enumerate(VIEW_ORDER):
            act = self._action(f"{VIEW_CLASSES[name].title} view", lambda _=False, n=name: self.set_view(n), str(i + 1),
                               checkable=False)
            act.setCheckable(True)
            act.setChecked(name == self.view_name)
            self.view_group.addAction(act)
            view_menu.addAction(act)
            views_bar.addAction(act)
            self.view_actions[name] = act
        view_menu.addSeparator()
        self.kalman_action = self._action("Toggle Kalman smoothing", self.kalman_check.toggle, "K")
        self.tracking_action = self._action("Toggle self-tracking crop", self.tracking_check.toggle, "T")
        self.loop_action = self._action("Toggle loop", self.loop_check.toggle, "L")
        self.detect_action = self._action("Toggle subject detection", self.detect_check.toggle, "D")
        self.realtime_action = self._action("Process every frame (no drops, slower than real time)",
                                            lambda on: self.set_realtime(not on), checkable=True)
        for act in (self.kalman_action, self.tracking_action, self.loop_action, self.detect_action,
                    self.realtime_action):
            view_menu.addAction(act)
        for dock in (self.controls_dock, self.card_dock, self.plots_dock):
            view_menu.addAction(dock.toggleViewAction())
        self.addToolBar(views_bar)

        transport = QToolBar("Playback")
        transport.setObjectName("playback_toolbar")
        self.play_action = self._action("Play/Pause", self.toggle_play, "Space")
        self.step_back_action = self._action("◀ Step", lambda: self.step(-1), "Left")
        self.step_fwd_action = self._action("Step ▶", lambda: self.step(1), "Right")
        self.rewind_action = self._action("Start", lambda: self.seek(0), "Home")
        for act in (self.rewind_action, self.step_back_action, self.play_action, self.step_fwd_action):
            transport.addAction(act)
        self.seek_slider = QSlider(Qt.Orientation.Horizontal)
        self.seek_slider.setMinimumWidth(160)  # it takes the toolbar's spare room; Snapshot/Record stay in view
        self.seek_slider.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.seek_slider.sliderMoved.connect(self.seek)
        transport.addWidget(self.seek_slider)
        self.position_label = QLabel(" – ")
        self._fit_position_label(None)
        self._position: int | None = None
        self._shown_position: int | None = None
        self._position_timer = QTimer(self)
        self._position_timer.setSingleShot(True)
        self._position_timer.setInterval(66)
        self._position_timer.timeout.connect(self._show_position)
        transport.addWidget(self.position_label)
        transport.addSeparator()
        self.snapshot_action.setIconText("Snapshot")
        self.record_action.setIconText("Record")
        self.play_action.setIconText("Play/Pause")
        transport.addAction(self.snapshot_action)
        transport.addAction(self.record_action)
        self.addToolBar(transport)

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self._action("Keyboard shortcuts", self.show_shortcuts, "F1"))
        help_menu.addAction(self._action("About CPM Studio", self._about))

    def _build_status(self) -> None:
        self.readout = QLabel("capture – fps | inference – ms | display – fps")
        self.model_badge = QLabel()
        self.statusBar().addPermanentWidget(self.readout)
        self.statusBar().addPermanentWidget(self.model_badge)

    # ------------------------------------------------------------------ messages
    def report_error(self, message: str, interactive: bool = False) -> None:
        """Show a failure in the status bar and, where the user acted, in a non-blocking message box."""
        self.last_error = message
        self.statusBar().showMessage(message, 20000)
        print(f"cpm-studio: {message}", file=sys.stderr)
        if interactive and not self.quiet:
            box = QMessageBox(QMessageBox.Icon.Warning, "CPM Studio", message, QMessageBox.StandardButton.Ok, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()

    def shortcut_list(self) -> list[tuple[str, str]]:
        return [(a.shortcut().toString(QKeySequence.SequenceFormat.NativeText), a.text())
                for a in self._shortcut_actions]

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>{t}</td></tr>" for k, t in self.shortcut_list())
        text = f"<table cellspacing=4>{rows}</table><p>Drop a video, image, folder or model onto the window.</p>"
        box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", text, QMessageBox.StandardButton.Ok,
                          self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if not self.quiet:
            box.open()
        self.shortcuts_box = box

    def _about(self) -> None:
        if not self.quiet:
            QMessageBox.about(self, "CPM Studio", "Live 2D pose estimation with Convolutional Pose Machines.")

    # ------------------------------------------------------------------ sources
    def open_source(self, spec: str | Path, interactive: bool = False) -> bool:
        """Open a path or 'camera:N'; on failure keep the current source and report why."""
        try:
            source = open_source(spec)
        except SourceError as exc:
            self.report_error(str(exc), interactive)
            return False
        self.open_frame_source(source)
        return True

    def open_frame_source(self, source: FrameSource) -> None:
        """Switch to an already opened source (the current one stops)."""
        self._stop_capture()
        self.generation += 1
        self.worker.clear()
        self.source_info = source.info
        self.paint_interval = paint_interval_for(self.screen_interval, source.info)
        self.source_ended = False
        self.displayed = 0
        self.delivered = 0
        self._latest = None
        self._shown_position = None
        self.select_subject(None)  # ids start again at 1 with the new source (the worker resets its tracker)
        cap = CaptureThread(source, self.worker.submit, self.generation, self.worker.wait_for_slot)
        cap.positionChanged.connect(self._on_position)
        cap.frameWarning.connect(self._on_frame_warning)
        cap.sourceFailed.connect(self._on_source_failed)
        cap.sourceEnded.connect(self._on_source_ended)
        cap.set_loop(self.loop_check.isChecked())
        cap.set_realtime(self._realtime)
        self.capture = cap
        info = source.info
        self.seek_slider.setEnabled(info.seekable and (info.frame_count or 0) > 1)
        self.seek_slider.setRange(0, max(0, (info.frame_count or 1) - 1))
        self.seek_slider.setValue(0)
        self._fit_position_label(info.frame_count)
        self.plots.reset(info.frame_count if info.kind in ("video", "folder") else None,
                         show_timeline=info.kind in ("video", "folder", "camera"))
        cap.start()
        self._add_recent(info.label)
        self.setWindowTitle(f"CPM Studio – {Path(info.label).name if info.kind != 'camera' else info.label}")
        self.statusBar().showMessage(f"Opened {info.kind} {info.label}", 5000)
        self.sourceOpened.emit(info.label)

    def _stop_capture(self) -> None:
        cap, self.capture = self.capture, None
        if cap is not None:
            for sig in (cap.positionChanged, cap.frameWarning, cap.sourceFailed, cap.sourceEnded):
                sig.disconnect()
            cap.stop()
            cap.wait(3000)

    def _open_dialog(self, folder: bool) -> None:
        if folder:
            path = QFileDialog.getExistingDirectory(self, "Open image folder")
        else:
            pattern = " ".join(f"*{s}" for s in sorted(VIDEO_SUFFIXES | IMAGE_SUFFIXES))
            path, _ = QFileDialog.getOpenFileName(self, "Open video or image", "", f"Media ({pattern});;All files (*)")
        if path:
            self.open_source(path, interactive=True)

    def _fill_camera_menu(self) -> None:
        self.camera_menu.clear()
        cams = list_cameras()
        if not cams:
            act = self.camera_menu.addAction("No cameras found")
            act.setEnabled(False)
        for cam in cams:
            self.camera_menu.addAction(cam.name, lambda c=cam: self.open_source(c.spec, interactive=True))

    def recent_sources(self) -> list[str]:
        value = self.settings.value("recent_sources", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, label: str) -> None:
        recent = [label] + [r for r in self.recent_sources() if r != label]
        self.settings.setValue("recent_sources", recent[:MAX_RECENT])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_sources()
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for r in recent:
            self.recent_menu.addAction(r, lambda s=r: self.open_source(s, interactive=True))

    # ------------------------------------------------------------------ playback
    def toggle_play(self) -> None:
        if self.capture is not None:
            self.capture.set_playing(not self.capture.playing)

    def step(self, delta: int) -> None:
        if self.capture is not None:
            self.capture.step(delta)

    def seek(self, index: int) -> None:
        if self.capture is not None:
            self.source_ended = False
            self.capture.seek(index)

    def set_realtime(self, realtime: bool) -> None:
        """Real time drops frames a slow model cannot keep up with; off, every frame is processed."""
        self._realtime = realtime
        if self.capture is not None:
            self.capture.set_realtime(realtime)

    def _on_loop(self, loop: bool) -> None:
        if self.capture is not None:
            self.capture.set_loop(loop)

    def _on_position(self, index: int) -> None:
        """Seek bar and frame label follow playback at most ~15 times a second (every frame, at 100 frames/s,
        re-laid the toolbar out in the GUI thread); the latest position is always shown in the end."""
        self._position = index
        if not self._position_timer.isActive():
            self._show_position()
            self._position_timer.start()

    def _fit_position_label(self, frame_count: int | None) -> None:
        """Fix the frame label's size to its widest text for this source. A label whose width may change asks
        its window for a new layout on every setText: during playback that re-laid out the main window ~10
        times a second (0.5 ms each, plus an animation object per toolbar and dock), CPU the model needed
        (bench/pipeline.py)."""
        digits = max(5, len(str(frame_count or 0)))
        widest = " " + "8" * digits + " / " + "8" * digits
        metrics = self.position_label.fontMetrics()
        self.position_label.setFixedSize(max(110, metrics.horizontalAdvance(widest) + 8),
                                         max(self.position_label.sizeHint().height(), metrics.height()))

    def _show_position(self) -> None:
        index = self._position
        if index is None or index == self._shown_position:
            return
        self._shown_position = index
        if not self.seek_slider.isSliderDown():
            self.seek_slider.blockSignals(True)
            self.seek_slider.setValue(index)
            self.seek_slider.blockSignals(False)
        count = self.source_info.frame_count if self.source_info else None
        self.position_label.setText(f" {index + 1} / {count}" if count else f" {index + 1}")

    def _on_frame_warning(self, message: str) -> None:
        self.statusBar().showMessage(message, 8000)
        self.last_error = message

    def _on_source_failed(self, message: str) -> None:
        self.report_error(f"{message}; the last frame stays on screen, open another source", False)
        self.source_ended = True

    def _on_source_ended(self) -> None:
        self.source_ended = True

    # ------------------------------------------------------------------ model
    def load_model(self, path: str | Path, interactive: bool = False) -> bool:
        """Start loading weights in the inference thread; the current model runs until the new one is ready."""
        try:
            sniff_format(path)
        except WeightsError as exc:
            self.report_error(str(exc), interactive)
            return False
        self._model_interactive = interactive
        self.statusBar().showMessage(f"Loading model {path} …")
        self.worker.request_model(path)
        return True

    def _model_dialog(self, folder: bool) -> None:
        if folder:
            path = QFileDialog.getExistingDirectory(self, "Load model folder")
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Load model", "",
                                                  "Models (card.json *.pkl *.pickle *.index *.weights.h5);;"
                                                  "All files (*)")
        if path:
            self.load_model(path, interactive=True)

    def _on_model_loaded(self, estimator: PoseEstimator) -> None:
        card = estimator.card
        self.card_label.setText(card.summary())
        self.card_warning.setVisible(not card.trained)
        self.card_warning.setText("UNTRAINED MODEL: random weights, the poses shown are meaningless until a "
                                  "trained model is loaded (Model menu)")
        if card.trained:
            self.model_badge.setText(f" model: {card.name} ")
            self.model_badge.setStyleSheet("")
        else:
            self.model_badge.setText(f" UNTRAINED MODEL: {card.name} ")
            self.model_badge.setStyleSheet("color: white; background: #b00020; font-weight: bold;")
        # The placeholder's confidences are ~1e-4: show its (meaningless) pose and heatmap structure anyway.
        self.threshold_slider.setValue(10 if card.trained else 0)
        self.autoscale_check.setChecked(not card.trained)
        hand = card.skeleton.name.startswith("hand")
        self.kalman_check.setChecked(hand)  # the port smooths hands, not bodies
        self._on_detection_settings()  # an 'auto' detector follows the new skeleton
        self.statusBar().showMessage(f"Model: {card.name}", 5000)
        self.modelChanged.emit(card.name)

    def _on_model_failed(self, message: str) -> None:
        self.report_error(f"cannot load model: {message} (keeping the current model)", self._model_interactive)

    def _on_frame_failed(self, message: str) -> None:
        self.statusBar().showMessage(message, 8000)
        self.last_error = message

    # ------------------------------------------------------------------ views and drawing
    def set_view(self, name: str) -> None:
        if name not in self.views:
            raise ValueError(f"unknown view {name!r}; choose one of {', '.join(VIEW_ORDER)}")
        self.view_name = name
        self.stack.setCurrentWidget(self.views[name])
        self.view_actions[name].setChecked(True)
        if self._drawn is not None:
            self.views[name].show_pose(self._drawn)

    @property
    def current_view(self) -> PoseView:
        return self.views[self.view_name]

    def _on_threshold(self, value: int) -> None:
        t = value / 100.0
        self.threshold_label.setText(f"{t:.2f}")
        for v in self.views.values():
            v.threshold = t
        self.current_view.redraw()

    def _on_autoscale(self, on: bool) -> None:
        for v in self.views.values():
            v.autoscale = on
        self.plots.set_autoscale(on)
        self.current_view.redraw()

    def _on_noise(self) -> None:
        q = 10 ** (self.q_slider.value() / 10)
        r = 10 ** (self.r_slider.value() / 10)
        self.noise_label.setText(f"q = {q:.3g}, r = {r:.3g}")
        self.worker.set_kalman_noise(q, r)

    def _on_result(self, pose: PoseFrame) -> None:
        """Every result is delivered (counted, and recorded in the confidence plots); the view is painted with
        the newest one at most every `paint_interval` (the screen's refresh, or the source's frame interval when
        longer). Painting 100 results a second on a 60 Hz screen showed nothing more and took the CPU the model
        needed (bench/pipeline.py)."""
        if pose.generation != self.generation:
            return  # from the previous source
        self._hint_small_subject(pose)
        self.delivered += 1
        self.plots.add(pose)
        self._latest = pose
        if not self._draw_scheduled:
            self._draw_scheduled = True
            wait = self._last_draw + self.paint_interval - time.perf_counter()
            QTimer.singleShot(max(0, int(wait * 1000)), self._draw_latest)

    _small_hint_generation: int | None = None  # the source the small-person hint was shown for

    def _hint_small_subject(self, pose: PoseFrame) -> None:
        """A body model on the whole frame sees no person big enough to pose (`cpm_core.subject_size`): say so in
        the status bar once per source, not on every frame (the views draw no skeleton meanwhile)."""
        if pose.small_subject and self._small_hint_generation != self.generation:
            self._small_hint_generation = self.generation
            self.statusBar().showMessage(f"No person big enough for a whole-frame pose: {SMALL_SUBJECT_HINT}", 10000)

    def _draw_latest(self) -> None:
        self._draw_scheduled = False
        pose, self._latest = self._latest, None
        if pose is None:
            return
        self._last_draw = time.perf_counter()
        self.current_view.show_pose(pose)
        self._drawn = pose
        self._draw_times.append(time.perf_counter())
        self.displayed += 1
        self.frameDisplayed.emit(self.displayed)

    @staticmethod
    def _rate(times: list[float]) -> float:
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

    def update_readout(self) -> None:
        """Rates over the last ~2 s: capture (frames offered to the model), display (frames drawn)."""
        now = time.perf_counter()
        self._capture_marks.append((now, self.worker.captured))
        marks = list(self._capture_marks)
        span = marks[-1][0] - marks[0][0]
        cap_fps = (marks[-1][1] - marks[0][1]) / span if span > 0 else 0.0
        stale = not self._draw_times or now - self._draw_times[-1] > 1.0
        disp_fps = 0.0 if stale else self._rate(list(self._draw_times))
        pose = self._drawn
        ms = f"{pose.timings.get('model', 0):.1f}" if pose else "–"
        self.readout.setText(f"capture {cap_fps:.1f} fps | inference {ms} ms | display {disp_fps:.1f} fps | "
                             f"dropped {self.worker.dropped}"
                             + (f" | subjects {len(pose.subjects)}" if pose and pose.detecting else "")
                             + (" | REC" if self.recorder else ""))

    # ------------------------------------------------------------------ output
    def snapshot(self, path: str | Path | None = None) -> Path | None:
        """Save the current view as a PNG (asks where when no path is given)."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save snapshot", f"cpm-{self.view_name}.png", "PNG (*.png)")
            if not path:
                return None
        path = Path(path)
        if not self.current_view.grab().save(str(path), "PNG"):
            self.report_error(f"{path}: cannot write the snapshot", interactive=True)
            return None
        self.statusBar().showMessage(f"Snapshot saved to {path}", 5000)
        return path

    def _on_record_toggled(self, on: bool) -> None:
        if on and self.recorder is None:
            if not self.start_recording(None):
                self.record_action.blockSignals(True)
                self.record_action.setChecked(False)
                self.record_action.blockSignals(False)
        elif not on and self.recorder is not None:
            self.stop_recording()

    def start_recording(self, path: str | Path | None) -> bool:
        """Record the annotated video and keypoints of every processed frame to `path` (.mp4/.json/.csv)."""
        estimator = self.worker.estimator
        if estimator is None:
            self.report_error("no model loaded yet", interactive=True)
            return False
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Record to", "cpm-recording.mp4", "MP4 video (*.mp4)")
            if not path:
                return False
        fps = self.source_info.fps if self.source_info else 30.0
        try:
            rec = Recorder(path, estimator.card.skeleton, fps, self.threshold_slider.value() / 100)
        except OSError as exc:
            self.report_error(f"cannot record: {exc}", interactive=True)
            return False
        self.recorder = rec
        self.worker.set_recorder(rec)
        self.record_action.blockSignals(True)
        self.record_action.setChecked(True)
        self.record_action.blockSignals(False)
        self.statusBar().showMessage(f"Recording to {rec.video_path}", 5000)
        return True

    def stop_recording(self) -> Recorder | None:
        rec, self.recorder = self.recorder, None
        if rec is None:
            return None
        self.worker.set_recorder(None)
        self.record_action.blockSignals(True)
        self.record_action.setChecked(False)
        self.record_action.blockSignals(False)
        try:
            rec.close()
        except OSError as exc:  # a full disk: the message says where the recorded part stays
            self.report_error(str(exc), interactive=True)
            return rec
        self.statusBar().showMessage(f"Recorded {rec.frames_written} frames to {rec.video_path} (+ .json, .csv)",
                                     8000)
        return rec

    # ------------------------------------------------------------------ drag and drop, closing
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if not urls:
            return
        event.acceptProposedAction()
        self.open_dropped(urls[0])

    def open_dropped(self, path: str) -> bool:
        if looks_like_model(path):
            return self.load_model(path, interactive=True)
        return self.open_source(path, interactive=True)

    def shutdown(self) -> None:
        """Stop threads and finish a recording; safe to call twice."""
        self.stop_recording()
        self.annotate.shutdown()
        for panel in (self.train_panel, self.distill_panel, self.evaluate_panel):
            panel.shutdown()
        self._stop_capture()
        if self.worker.isRunning():
            self.worker.stop()
            self.worker.wait(10000)
        self._readout_timer.stop()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)
