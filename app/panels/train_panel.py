"""TrainPanel: set up a `cpm train` run, start it as a process, watch it live, stop it, load the result.

Start writes the settings as `run.toml` into the output folder (so the run can be repeated or resumed from a
terminal with the same file) and runs `cpm train run.toml --output DIR`.

Stop asks the run to stop cleanly and waits for it however long its checkpoint, evaluation and export take (the
panel says "stopping: saving checkpoint…"); the button then becomes "Kill now", and only a second press ends the
process at once, losing what the clean stop would have saved.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.panels.live_view import TrainingLiveView
from app.panels.run_config import parse_overrides, write_run_config
from app.panels.training_process import TrainingProcess
from cpm_core.spec import PRESETS

STOP_TEXT, KILL_TEXT = "Stop", "Kill now"
STOPPING_STATUS = "stopping: saving checkpoint…"
DATASET_FILTER = "Datasets and annotation projects (*.json *.txt *.tfrecord *.tfrecords);;All files (*)"


def path_row(edit: QLineEdit, pick) -> QWidget:
    """A line edit with a '...' button that fills it from a file dialog."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(edit, 1)
    button = QPushButton("...")
    button.setFixedWidth(32)
    button.clicked.connect(pick)
    row.addWidget(button)
    return box


class TrainPanel(QWidget):
    model_ready = Signal(str)  # the exported model folder of a finished (or stopped) run
    command = "train"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.process = TrainingProcess(self)
        self.form = QFormLayout()
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText("dataset or annotation project (COCO JSON, labels.txt, TFRecord, ...)")
        self.val_edit = QLineEdit()
        self.val_edit.setPlaceholderText("optional; empty: hold out 10% of the training data")
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(list(PRESETS))
        self.preset_combo.setCurrentText("hand-rt-128x3")
        self.spec_edit = QLineEdit()
        self.spec_edit.setPlaceholderText("optional overrides, e.g. input_size=96, stages=2")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 10_000_000)
        self.steps_spin.setValue(2000)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 4096)
        self.batch_spin.setValue(16)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(1e-6, 1.0)
        self.lr_spin.setSingleStep(1e-4)
        self.lr_spin.setValue(1e-3)
        self.optimizer_combo = QComboBox()
        self.optimizer_combo.addItems(["adam", "adamw", "rmsprop"])
        self.output_edit = QLineEdit(str(Path("runs") / "gui"))
        self._add_source_rows()
        self.form.addRow("Model preset", self.preset_combo)
        self.form.addRow("Model overrides", self.spec_edit)
        self.form.addRow("Steps", self.steps_spin)
        self.form.addRow("Batch", self.batch_spin)
        self.form.addRow("Learning rate", self.lr_spin)
        self.form.addRow("Optimiser", self.optimizer_combo)
        self.form.addRow("Output folder", path_row(self.output_edit, self._pick_output))
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton(STOP_TEXT)
        self.stop_button.setEnabled(False)
        self.load_button = QPushButton("Load into viewer")
        self.load_button.setEnabled(False)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.stop_button, self.load_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.live = TrainingLiveView()
        self.live.attach(self.process)
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addLayout(buttons)
        layout.addWidget(self.live, 1)
        self.last_error = ""
        self.model_path = ""
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.load_button.clicked.connect(lambda: self.model_ready.emit(self.model_path))
        self.process.done.connect(self._on_done)
        self.process.error.connect(self._on_error)
        self.process.finished.connect(self._on_finished)
        # Connected after the live view's own handlers: while stopping, the status keeps saying so.
        self.process.step.connect(self._keep_stopping_status)
        self.process.evaluated.connect(self._keep_stopping_status)
        self.process.checkpoint.connect(self._on_checkpoint)
        self._set_running(False)

    # -- form --------------------------------------------------------------------------------------------
    def _add_source_rows(self) -> None:
        self.form.addRow("Training data", path_row(self.dataset_edit, lambda: self._pick_file(self.dataset_edit)))
        self.form.addRow("Validation data", path_row(self.val_edit, lambda: self._pick_file(self.val_edit)))

    def _pick_file(self, edit: QLineEdit, caption: str = "Choose a dataset", filt: str = DATASET_FILTER) -> None:
        path, _ = QFileDialog.getOpenFileName(self, caption, edit.text(), filt)
        if path:
            edit.setText(path)

    def _pick_output(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Output folder", self.output_edit.text())
        if path:
            self.output_edit.setText(path)

    def output_dir(self) -> Path:
        return Path(self.output_edit.text().strip() or "runs/gui").resolve()

    def build_config(self) -> dict:
        """The run's TOML settings from the form; raises ValueError on a missing or malformed entry."""
        train = self.dataset_edit.text().strip()
        if not train:
            raise ValueError("choose the training data")
        val = self.val_edit.text().strip()
        steps = self.steps_spin.value()
        data: dict = {"train": [str(Path(train).resolve())]}
        if val:
            data["val"] = [str(Path(val).resolve())]
        else:
            data["val_split"] = 0.1
        every = max(1, min(10, steps // 50))
        return {
            "name": self.output_dir().name,
            "data": data,
            "model": {"preset": self.preset_combo.currentText(), "spec": parse_overrides(self.spec_edit.text())},
            "train": {"steps": steps, "batch": self.batch_spin.value(), "lr": self.lr_spin.value(),
                      "optimizer": self.optimizer_combo.currentText(), "log_every": every,
                      "eval_every": max(every, steps // 10), "checkpoint_every": max(every, steps // 10)},
        }

    # -- run ---------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        self.process.shutdown()

    def start(self) -> bool:
        if self.process.is_running():
            return False
        try:
            config = self.build_config()
            out = self.output_dir()
            path = write_run_config(out / "run.toml", config)
        except (ValueError, OSError) as exc:
            self._show_error(str(exc))
            return False
        self.last_error = ""
        self.model_path = ""
        self.load_button.setEnabled(False)
        self.live.reset()
        self._set_running(True)
        self.process.start([self.command, str(path), "--output", str(out)])
        return True

    def stop(self) -> None:
        """First press: ask for a clean stop and wait for it. Second press (the button now says "Kill now"):
        end the process at once."""
        if not self.process.is_running():
            return
        if self.process.stop_requested:
            self.process.kill()
            self.stop_button.setEnabled(False)
            return
        self.process.stop()
        self.live.status.setText(STOPPING_STATUS)
        self.stop_button.setText(KILL_TEXT)
        self.stop_button.setToolTip("The run is saving its checkpoint and model and will end by itself. Press to "
                                    "end it at once instead: it loses the steps since its last checkpoint and "
                                    "exports no model.")

    def _keep_stopping_status(self, _ev: dict) -> None:
        if self.process.stop_requested and self.process.is_running():
            self.live.status.setText(self._stopping_text)

    def _on_checkpoint(self, ev: dict) -> None:
        if self.process.stop_requested and ev.get("reason") == "stop":
            self._stopping_text = (f"stopping: checkpoint saved at step {ev.get('step')}; evaluating and "
                                   "exporting the model…")
            self.live.status.setText(self._stopping_text)

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.stop_button.setText(STOP_TEXT)
        self.stop_button.setToolTip("Stop cleanly: the run saves a checkpoint and exports its model")
        self._stopping_text = STOPPING_STATUS

    def _on_done(self, ev: dict) -> None:
        self.model_path = str(ev.get("model") or "")
        self.load_button.setEnabled(bool(self.model_path))

    def _on_error(self, message: str) -> None:
        self.last_error = message
        self._show_error(message)

    def _on_finished(self, code: int) -> None:
        self._set_running(False)

    def _show_error(self, message: str) -> None:
        self.live.status.setText(f"error: {message.splitlines()[0] if message else 'unknown'}")
        self.live.append_log(f"ERROR: {message}")
        if self.isVisible():
            box = QMessageBox(QMessageBox.Icon.Warning, "Run failed", message.splitlines()[0] if message else "",
                              parent=self)
            box.setDetailedText(message)
            box.setModal(False)  # never block the event loop: the app keeps running
            box.show()
