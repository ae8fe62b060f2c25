"""TrainPanel: set up a `cpm train` run, start it as a process, watch it live, stop it, load the result.

Start builds a `training.config.RunConfig` from the form through training's own override parser (a setting or
value the trainer would refuse is refused in the form), writes it as `run.toml` into the output folder (so the
run can be repeated or resumed from a terminal with the same file) and runs `cpm train run.toml --output DIR`.

The training data is checked before a process starts: an image, a video or a file whose format cannot be told
gets one message naming the formats a run reads, and a "Data format" choice picks the matching file or folder
(a labels or CMU hand set is a folder, which a file dialog cannot pick).

An output folder that already holds a run (its model, checkpoints or metrics.csv) is never overwritten without
asking: a new folder beside it, resume from its checkpoints, or overwrite (its run outputs are deleted first, so
old checkpoints do not mix with new ones).

Stop asks the run to stop cleanly and waits for it however long its checkpoint, evaluation and export take (the
panel says "stopping: saving checkpoint…"); the button then becomes "Kill now", and only a second press ends the
process at once, losing what the clean stop would have saved.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractButton,
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
from app.panels.run_config import build_run_config, split_settings, toml_value, write_run_config
from app.panels.training_process import TrainingProcess
from cpm_core.dataset.formats import dataset_format, guess_format, open_filter, readable_formats
from cpm_core.dataset.issues import DatasetFormatError
from cpm_core.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from cpm_core.spec import PRESETS
from training.config import RunConfig
from training.events import CheckpointEvent, DoneEvent, Event

STOP_TEXT, KILL_TEXT = "Stop", "Kill now"
STOPPING_STATUS = "stopping: saving checkpoint…"
# The formats, whether each is a file or a folder and their dialog filters come from cpm_core's table of dataset
# formats (cpm_core/dataset/formats.py), which the CLI and the Annotate tab's export use too.
DATASET_FILTER = open_filter("Datasets and annotation projects")
AUTO_FORMAT = "auto"
FORMATS_READ = ("COCO .json, a labels folder (<person>/labels.txt), .tfrecord, a CMU hand folder or an annotation "
                "project (.cpmproj.json)")
# What a run leaves in its output folder (training/loop.py): starting another there must ask first.
RUN_OUTPUTS = ("model", "checkpoints", "metrics.csv")
NEW, RESUME, OVERWRITE, CANCEL = "new", "resume", "overwrite", "cancel"


def check_dataset(path: str, fmt: str = AUTO_FORMAT, what: str = "training data") -> str:
    """One message if `path` is not a dataset a run can read as `fmt` (AUTO_FORMAT: any), else "".

    With AUTO_FORMAT, `cpm train` tells the format from the name and contents, as `guess_format` does here, so
    the data must be one it can tell; a chosen format is passed to the run (`data.format`), which reads the
    data as that format, so only a file-or-folder mismatch is refused here."""
    p = Path(path)
    name = p.name or str(p)
    if not p.exists():
        return f"{what} not found: {path}"
    suffix = p.suffix.lower()
    kind = "an image" if suffix in IMAGE_SUFFIXES else "a video" if suffix in VIDEO_SUFFIXES else ""
    if kind and p.is_file():
        return (f"{what}: {name} is {kind}, not a labelled dataset. Training reads {FORMATS_READ}; to label "
                f"images or a video, make an annotation project in the Annotate tab")
    if fmt != AUTO_FORMAT:
        folder = dataset_format(fmt).folder
        if folder != p.is_dir():
            return (f"{what}: a {fmt} dataset is a {'folder' if folder else 'file'}, and {name} is "
                    f"{'a folder' if p.is_dir() else 'a file'}: choose the {fmt} dataset's "
                    f"{'folder' if folder else 'file'}, or another format")
        return ""
    try:
        guess_format(p)
    except DatasetFormatError as exc:
        reason = str(exc.issue.message).split(";")[0]
        return (f"{what}: {name} is not a dataset a run can tell ({reason}). Training reads {FORMATS_READ}; "
                f"if it is one of those, choose its Data format")
    return ""


def existing_run_outputs(out: Path) -> list[str]:
    """The outputs of an earlier run in folder `out` (model, non-empty checkpoints, metrics.csv)."""
    found = []
    for name in RUN_OUTPUTS:
        p = out / name
        if p.is_file() or (p.is_dir() and any(p.iterdir())):
            found.append(name)
    return found


def free_sibling(out: Path) -> Path:
    """`out` with the first free suffix -2, -3, ... (a folder that does not exist yet)."""
    k = 2
    while (out.parent / f"{out.name}-{k}").exists():
        k += 1
    return out.parent / f"{out.name}-{k}"


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
        self.format_combo = QComboBox()
        self.format_combo.addItem("auto (from the name and contents)", AUTO_FORMAT)
        for fmt in readable_formats():
            self.format_combo.addItem(fmt, fmt)
        self.format_combo.setToolTip("The training data's format: which file or folder '...' picks, and what the "
                                     "data is checked to be before a run starts")
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
        self.existing_box: QMessageBox | None = None  # the "folder holds a run" question while it is open
        self.start_button.clicked.connect(lambda: self.start())
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
        self.form.addRow("Training data", path_row(self.dataset_edit, lambda: self._pick_data(self.dataset_edit)))
        self.form.addRow("Data format", self.format_combo)
        self.form.addRow("Validation data", path_row(self.val_edit, lambda: self._pick_data(self.val_edit)))

    def data_format(self) -> str:
        return str(self.format_combo.currentData())

    def _pick_data(self, edit: QLineEdit) -> None:
        """Pick a dataset as the chosen format is stored: a folder (labels, CMU hand) or a file."""
        fmt = self.data_format()
        entry = None if fmt == AUTO_FORMAT else dataset_format(fmt)
        if entry is not None and entry.folder:
            path = QFileDialog.getExistingDirectory(self, f"Choose a {fmt} dataset folder", edit.text())
            if path:
                edit.setText(path)
        else:
            self._pick_file(edit, filt=DATASET_FILTER if entry is None else f"{entry.dialog_filter};;All files (*)")

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

    def config_overrides(self) -> list[str]:
        """The form as `section.key=value` overrides of training.config (what `cpm train --set` takes); raises
        ValueError on missing or unreadable data."""
        train = self.dataset_edit.text().strip()
        if not train:
            raise ValueError("choose the training data")
        problem = check_dataset(train, self.data_format())
        val = self.val_edit.text().strip()
        if not problem and val:
            problem = check_dataset(val, AUTO_FORMAT, "validation data")
        if problem:
            raise ValueError(problem)
        steps = self.steps_spin.value()
        every = max(1, min(10, steps // 50))
        items = {"name": self.output_dir().name, "output": str(self.output_dir()),
                 "data.train": [str(Path(train).resolve())],
                 **({"data.format": self.data_format()} if self.data_format() != AUTO_FORMAT else {}),
                 **({"data.val": [str(Path(val).resolve())]} if val else {"data.val_split": 0.1}),
                 "model.preset": self.preset_combo.currentText(),
                 "train.steps": steps, "train.batch": self.batch_spin.value(), "train.lr": self.lr_spin.value(),
                 "train.optimizer": self.optimizer_combo.currentText(), "train.log_every": every,
                 "train.eval_every": max(every, steps // 10), "train.checkpoint_every": max(every, steps // 10)}
        overrides = [f"{k}={toml_value(v)}" for k, v in items.items()]
        return overrides + [f"model.spec.{item.strip()}" for item in split_settings(self.spec_edit.text())]

    def build_config(self) -> RunConfig:
        """The run's settings from the form, built and validated by training.config; raises ValueError on a
        missing or malformed entry (with the trainer's own message for a setting it does not take)."""
        return build_run_config(self.config_overrides())

    # -- run ---------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        self.process.shutdown()

    def start(self, existing: str | None = None) -> bool:
        """Start a run from the form. If the output folder holds an earlier run, `existing` (NEW, RESUME or
        OVERWRITE) says what to do; None asks the user (`ask_existing`)."""
        if self.process.is_running():
            return False
        try:
            self.build_config()  # the form is valid before anything is asked or written
            out = self.output_dir()
            extra: list[str] = []
            found = existing_run_outputs(out)
            if found:
                choice = existing or self.ask_existing(out, found)
                if choice == CANCEL:
                    self.live.status.setText(f"not started: {out} holds a run ({', '.join(found)})")
                    return False
                if choice == NEW:
                    out = free_sibling(out)
                    self.output_edit.setText(str(out))
                elif choice == RESUME:
                    if "checkpoints" not in found:
                        raise ValueError(f"cannot resume: {out} has no checkpoints")
                    extra = ["--resume"]
                elif choice == OVERWRITE:
                    self._remove_run_outputs(out, found)
            config = self.build_config()  # again: a new folder changes the run's name and output
            path = write_run_config(out / "run.toml", config)
        except (ValueError, OSError) as exc:
            self._show_error(str(exc))
            return False
        self.last_error = ""
        self.model_path = ""
        self.load_button.setEnabled(False)
        self.live.reset()
        self._set_running(True)
        self.process.start([self.command, str(path), "--output", str(out), *extra])
        return True

    def ask_existing(self, out: Path, found: list[str]) -> str:
        """Ask what to do with an output folder that holds a run: NEW, RESUME (if it has checkpoints),
        OVERWRITE or CANCEL. A modal question: nothing has started yet, and nothing may until it is answered."""
        box = QMessageBox(QMessageBox.Icon.Question, "Output folder holds a run",
                          f"{out} already holds a run ({', '.join(found)}).\n\nStart in a new folder beside it "
                          f"({free_sibling(out).name}), resume from its checkpoints, or overwrite it (its model, "
                          "checkpoints and metrics.csv are deleted first)?", parent=self)
        buttons: dict[QAbstractButton, str] = {
            box.addButton("New folder", QMessageBox.ButtonRole.AcceptRole): NEW}
        if "checkpoints" in found:
            buttons[box.addButton("Resume", QMessageBox.ButtonRole.AcceptRole)] = RESUME
        buttons[box.addButton("Overwrite", QMessageBox.ButtonRole.DestructiveRole)] = OVERWRITE
        buttons[box.addButton(QMessageBox.StandardButton.Cancel)] = CANCEL
        box.setDefaultButton(next(iter(buttons)))
        self.existing_box = box
        try:
            box.exec()
        finally:
            self.existing_box = None
        return buttons.get(box.clickedButton(), CANCEL)

    def _remove_run_outputs(self, out: Path, found: list[str]) -> None:
        """Delete an earlier run's outputs (only those: other files in the folder stay)."""
        for name in found:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        self.live.append_log(f"removed the earlier run's {', '.join(found)} from {out}")

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

    def _keep_stopping_status(self, _ev: Event) -> None:
        if self.process.stop_requested and self.process.is_running():
            self.live.status.setText(self._stopping_text)

    def _on_checkpoint(self, ev: CheckpointEvent) -> None:
        if self.process.stop_requested and ev.reason == "stop":
            self._stopping_text = (f"stopping: checkpoint saved at step {ev.step}; evaluating and "
                                   "exporting the model…")
            self.live.status.setText(self._stopping_text)

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.stop_button.setText(STOP_TEXT)
        self.stop_button.setToolTip("Stop cleanly: the run saves a checkpoint and exports its model")
        self._stopping_text = STOPPING_STATUS

    def _on_done(self, ev: DoneEvent) -> None:
        self.model_path = ev.model or ""
        self.load_button.setEnabled(bool(self.model_path))

    def _on_error(self, message: str) -> None:
        self.last_error = message
        self._show_error(message, logged=True)  # the live view has logged the run's error already

    def _on_finished(self, code: int) -> None:
        self._set_running(False)

    def _show_error(self, message: str, logged: bool = False) -> None:
        self.last_error = message
        self.live.status.setText(f"error: {message.splitlines()[0] if message else 'unknown'}")
        if not logged:
            self.live.append_log(f"ERROR: {message}")
        if self.isVisible():
            box = QMessageBox(QMessageBox.Icon.Warning, "Run failed", message.splitlines()[0] if message else "",
                              parent=self)
            box.setDetailedText(message)
            box.setModal(False)  # never block the event loop: the app keeps running
            box.show()
