"""TrainingLiveView: what a running `cpm train|distill` shows: loss (total and per stage), validation PCK,
progress with ETA and images/s, and the log. Shared by TrainPanel and DistillPanel.

Curves are redrawn at most a few times a second: a run logging every step must not cost the GUI thread a
full redraw per event.

The legends sit beside the plots (they covered the curves), the log-scale loss axis labels only what fits
(`app.panels.axes`), and the progress bar says "no run" when idle (it read "0 / 1 steps") and ends on the step
the run really stopped at (the checkpoint and done events carry it; step events come only every log_every
steps).
"""

from __future__ import annotations

import time

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QVBoxLayout, QWidget

from app.panels.axes import TidyAxis, legend_beside
from app.panels.training_process import TrainingProcess
from training.events import CheckpointEvent, DoneEvent, EvalEvent, StartEvent, StepEvent

STAGE_COLOURS = [(90, 160, 255), (255, 170, 60), (120, 220, 120), (230, 90, 200), (240, 230, 80), (90, 230, 230)]
REDRAW_MS = 250
LOG_LINES = 2000
IDLE_FORMAT = "no run"
RUN_FORMAT = "%v / %m steps"


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TrainingLiveView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.loss_plot = pg.PlotWidget(title="loss", axisItems={"left": TidyAxis("left"),
                                                                "bottom": TidyAxis("bottom")})
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.setLogMode(y=True)
        self.loss_legend = legend_beside(self.loss_plot.getPlotItem())
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen("w", width=2), name="total")
        self.stage_curves: list[pg.PlotDataItem] = []
        self.pck_plot = pg.PlotWidget(title="validation PCK@0.2", axisItems={"left": TidyAxis("left"),
                                                                             "bottom": TidyAxis("bottom")})
        self.pck_plot.setLabel("bottom", "step")
        self.pck_plot.setYRange(0, 1, padding=0.02)
        self.pck_legend = legend_beside(self.pck_plot.getPlotItem())
        self.pck_curve = self.pck_plot.plot([], [], pen=pg.mkPen((120, 220, 120), width=2), symbol="o",
                                            symbolSize=6, name="model")
        self.teacher_line: pg.InfiniteLine | None = None
        self.progress = QProgressBar()
        self.status = QLabel("idle")
        self.status.setWordWrap(True)  # an error names the formats a run reads: shown whole, not cut at the edge
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(LOG_LINES)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot, 3)
        plots.addWidget(self.pck_plot, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(plots, 3)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.log_view, 1)
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.timeout.connect(self.redraw)
        self.reset()

    def reset(self) -> None:
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.stage_losses: list[list[float]] = []
        self.eval_steps: list[int] = []
        self.pcks: list[float] = []
        self.total_steps = 0
        self._t_start = time.monotonic()
        self._start_step = 0
        for c in self.stage_curves:
            self.loss_plot.removeItem(c)
        self.stage_curves = []
        if self.teacher_line is not None:
            self.pck_plot.removeItem(self.teacher_line)
            self.teacher_line = None
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat(IDLE_FORMAT)
        self.status.setText("idle")
        self.redraw()

    def attach(self, process: TrainingProcess) -> None:
        process.started.connect(self.on_start)
        process.step.connect(self.on_step)
        process.evaluated.connect(self.on_eval)
        process.checkpoint.connect(self.on_checkpoint)
        process.done.connect(self.on_done)
        process.error.connect(lambda msg: self.append_log(f"ERROR: {msg}"))
        process.log.connect(self.append_log)

    def append_log(self, line: str) -> None:
        self.log_view.appendPlainText(line)

    def on_start(self, ev: StartEvent) -> None:
        self.total_steps = int(ev.steps)
        self._start_step = int(ev.start_step)
        self._t_start = time.monotonic()
        self.progress.setRange(0, max(self.total_steps, 1))
        self.progress.setValue(self._start_step)
        self.progress.setFormat(RUN_FORMAT)
        subjects = "?" if ev.train_subjects is None else ev.train_subjects
        self.status.setText(f"{ev.kind or 'run'} started: {subjects} training subjects, "
                            f"{ev.val_subjects} validation; {ev.machine}")

    def on_step(self, ev: StepEvent) -> None:
        step = int(ev.step)
        self.steps.append(step)
        self.losses.append(float("nan") if ev.loss is None else float(ev.loss))  # null on the wire: NaN
        self.stage_losses.append([float("nan") if v is None else float(v) for v in ev.loss_per_stage])
        self.progress.setValue(step)
        total = int(ev.steps or self.total_steps)
        elapsed = time.monotonic() - self._t_start
        done_here = step - self._start_step
        eta = elapsed / done_here * (total - step) if done_here > 0 else 0.0
        ips = ev.images_per_s
        self.status.setText(f"step {step}/{total}  loss {self.losses[-1]:.4g}  "
                            f"{'' if ips is None else f'{ips:.1f} images/s  '}ETA {format_eta(eta)}")
        self._schedule()

    def on_eval(self, ev: EvalEvent) -> None:
        if ev.pck is None:
            return
        self.eval_steps.append(int(ev.step))
        self.pcks.append(float(ev.pck))
        teacher = ev.teacher_pck  # only `cpm distill` sends it
        if teacher is not None and self.teacher_line is None:
            self.teacher_line = pg.InfiniteLine(pos=float(teacher), angle=0, label=f"teacher {teacher:.3f}",
                                                pen=pg.mkPen((255, 170, 60), style=pg.QtCore.Qt.PenStyle.DashLine))
            self.pck_plot.addItem(self.teacher_line)
        self.append_log(f"eval at step {ev.step}: PCK@0.2 {ev.pck:.4f}"
                        + (f" (teacher {teacher:.4f})" if teacher is not None else ""))
        self._schedule()

    def on_checkpoint(self, ev: CheckpointEvent) -> None:
        self.append_log(f"checkpoint at step {ev.step}: {ev.path} ({ev.reason})")
        self._show_step(ev.step)

    def _show_step(self, step: int | None) -> None:
        """Move the bar to `step` (a checkpoint's or the end's: later than the last step event after a stop)."""
        if step is not None and self.progress.format() == RUN_FORMAT:
            self.progress.setValue(max(self.progress.value(), int(step)))

    def on_done(self, ev: DoneEvent) -> None:
        self.redraw()
        self._show_step(ev.step)
        how = "stopped" if ev.stopped else "finished"
        if ev.stopped:
            self.progress.setFormat("stopped at step %v of %m")
        pck = ev.metrics.get("pck@0.2")  # the card's metrics (a plain dict), absent without a validation set
        self.status.setText(f"{how} at step {ev.step}; model: {ev.model}"
                            + (f"; PCK@0.2 {pck}" if pck is not None else ""))

    def _schedule(self) -> None:
        if not self._redraw.isActive():
            self._redraw.start(REDRAW_MS)

    def redraw(self) -> None:
        self.loss_curve.setData(self.steps, self.losses)
        n_stages = max((len(s) for s in self.stage_losses), default=0)
        while len(self.stage_curves) < n_stages:
            i = len(self.stage_curves)
            self.stage_curves.append(self.loss_plot.plot([], [], pen=pg.mkPen(STAGE_COLOURS[i % 6]),
                                                         name=f"stage {i + 1}"))
        for i, curve in enumerate(self.stage_curves):
            pts = [(s, v[i]) for s, v in zip(self.steps, self.stage_losses) if len(v) > i]
            curve.setData([p[0] for p in pts], [p[1] for p in pts])
        self.pck_curve.setData(self.eval_steps, self.pcks)
