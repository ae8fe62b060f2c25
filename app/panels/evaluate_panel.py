"""EvaluatePanel: run `cpm eval MODEL DATASET --out DIR` as a process and show its results: per-joint PCK
bars, the PCK-vs-threshold curve and the end-point error, read from the eval.json it writes.

The per-joint bars lie horizontally, one row per joint with its name on the left axis (21 names under
vertical bars ran into one string), and the curve's axis shows thresholds as they are (0 to 0.5 box sizes,
no "(x0.001)" SI rescaling), with both ranges set from the data.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.panels.axes import CategoryAxis, TidyAxis
from app.panels.train_panel import DATASET_FILTER, path_row
from app.panels.training_process import TrainingProcess


class EvaluatePanel(QWidget):
    evaluated = Signal(dict)  # the eval.json contents

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.process = TrainingProcess(self)
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("model folder or weights file (empty: the viewer's model)")
        self.viewer_model: str | None = None  # the viewer's model, evaluated when the field is left empty
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText("labelled dataset")
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("results folder (default: a temporary folder)")
        form = QFormLayout()
        form.addRow("Model", path_row(self.model_edit, self._pick_model))
        form.addRow("Dataset", path_row(self.dataset_edit, self._pick_dataset))
        form.addRow("Results", self.out_edit)
        self.run_button = QPushButton("Evaluate")
        self.summary = QLabel("")
        self.joint_axis = CategoryAxis("left")
        self.bar_plot = pg.PlotWidget(title="PCK@0.2 per joint",
                                      axisItems={"left": self.joint_axis, "bottom": TidyAxis("bottom")})
        self.bar_plot.setXRange(0, 1, padding=0.02)
        self.bar_plot.invertY(True)  # joint 0 at the top, in skeleton order
        self.bar_plot.setMouseEnabled(x=False, y=True)
        self.curve_plot = pg.PlotWidget(title="PCK vs threshold",
                                        axisItems={"left": TidyAxis("left"), "bottom": TidyAxis("bottom")})
        self.curve_plot.setLabel("bottom", "threshold (x box size)")
        self.curve_plot.setLabel("left", "PCK")
        self.curve_plot.setYRange(0, 1, padding=0.02)
        self.curve_plot.setXRange(0, 0.5, padding=0.02)
        self.curve = self.curve_plot.plot([], [], pen=pg.mkPen((120, 220, 120), width=2))
        self.bars: pg.BarGraphItem | None = None
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(1000)
        plots = QHBoxLayout()
        plots.addWidget(self.bar_plot, 3)
        plots.addWidget(self.curve_plot, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.summary)
        layout.addLayout(plots, 3)
        layout.addWidget(self.log_view, 1)
        self.result: dict = {}
        self.last_error = ""
        self._out = ""
        self.run_button.clicked.connect(self.start)
        self.process.log.connect(self.log_view.appendPlainText)
        self.process.error.connect(self._on_error)
        self.process.finished.connect(self._on_finished)

    def _pick_model(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(self, "Model folder", self.model_edit.text() or self.viewer_model or "")
        if path:
            self.model_edit.setText(path)

    def _pick_dataset(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self, "Dataset", self.dataset_edit.text(), DATASET_FILTER)
        if path:
            self.dataset_edit.setText(path)

    def set_viewer_model(self, path: str | None, name: str) -> None:
        """The model the viewer shows: what Evaluate runs when the Model field is empty, as a user of the
        viewer expects (`path` None: a model the window was handed in memory, which has no file to evaluate)."""
        self.viewer_model = path
        self.model_edit.setPlaceholderText(f"empty: the viewer's model ({name})" if path
                                           else "model folder or weights file")

    def shutdown(self) -> None:
        self.process.shutdown()

    def start(self) -> bool:
        model = self.model_edit.text().strip() or self.viewer_model or ""
        dataset = self.dataset_edit.text().strip()
        if not model or not dataset or self.process.is_running():
            self.summary.setText("choose a model and a dataset" if not (model and dataset) else "already running")
            return False
        self._out = self.out_edit.text().strip() or tempfile.mkdtemp(prefix="cpm-eval-")
        self.last_error = ""
        self.summary.setText("evaluating...")
        self.run_button.setEnabled(False)
        self.process.start(["eval", model, dataset, "--out", self._out])
        return True

    def _on_error(self, message: str) -> None:
        self.last_error = message
        self.summary.setText(f"error: {message.splitlines()[-1] if message else 'unknown'}")
        self.log_view.appendPlainText(f"ERROR: {message}")

    def _on_finished(self, code: int) -> None:
        self.run_button.setEnabled(True)
        path = Path(self._out) / "eval.json"
        if code != 0 or not path.exists():
            return
        try:
            self.show_result(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            self._on_error(f"cannot read {path}: {exc}")

    def show_result(self, result: dict) -> None:
        self.result = result
        rows = result["per_joint"]
        values = np.array([np.nan if r["pck"] is None else r["pck"] for r in rows], float)
        if self.bars is not None:
            self.bar_plot.removeItem(self.bars)
        self.bars = pg.BarGraphItem(x0=0, y=np.arange(len(rows)), width=np.nan_to_num(values), height=0.7,
                                    brush=(90, 160, 255))
        self.bar_plot.addItem(self.bars)
        self.joint_axis.set_names([r["joint"] for r in rows])
        self.bar_plot.setYRange(-0.5, len(rows) - 0.5, padding=0.0)
        self.bar_plot.setXRange(0, 1, padding=0.02)
        curve = result["curve"]
        thresholds = np.asarray(curve["thresholds"], float)
        self.curve.setData(thresholds, [np.nan if v is None else v for v in curve["pck"]])
        if thresholds.size:
            self.curve_plot.setXRange(float(thresholds.min()), float(thresholds.max()), padding=0.02)
        self.curve_plot.setYRange(0, 1, padding=0.02)
        pck, epe = result.get("pck"), result.get("epe_px")
        low, high = result.get("pck_ci95") or (None, None)
        interval = f" (95% interval {low:.3f} to {high:.3f})" if low is not None and high is not None else ""
        self.summary.setText(f"PCK@{result['threshold']:g}: {'-' if pck is None else f'{pck:.4f}'}{interval}   "
                             f"EPE: {'-' if epe is None else f'{epe:.2f}'} px   "
                             f"{result['subjects']} subjects, margin {result['margin']:g}")
        self.evaluated.emit(result)
