"""File > Analyse videos…: pose keypoints for a list of videos, written by `cpm infer` in background processes.

The dialog only collects the choices and shows progress: a bar per video (frames done of the header's count), its
status, one message per failed video, Cancel (SIGTERM: the video being analysed leaves nothing behind; a second
press kills it) and, when the run is over, "Suggest frames to label" on the analysed videos
(`app/analyse/suggest_step.py`). The work itself is `AnalyseRunner` (`app/analyse/runner.py`).
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.analyse.runner import AnalyseRunner, existing_outputs
from app.analyse.suggest_step import SuggestBox
from cpm_core.sources import VIDEO_SUFFIXES

VIDEO_FILTER = "Videos (" + " ".join(f"*{s}" for s in sorted(VIDEO_SUFFIXES)) + ");;All files (*)"
STATE_TEXT = {"queued": "waiting", "running": "analysing…", "done": "done", "failed": "FAILED",
              "cancelled": "cancelled"}


class AnalyseDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, model: str = "", workspace=None, out_dir: str = ""):
        """`workspace`: the Annotate tab's `AnnotationWorkspace`, whose open project receives suggested frames."""
        super().__init__(parent)
        self.setWindowTitle("Analyse videos")
        self.workspace = workspace
        self.runner = AnalyseRunner(self)
        self.bars: list[QProgressBar] = []
        self.last_error = ""

        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Video", "Frames", "Status"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        head.setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        head.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(1, 200)
        self.table.setMinimumHeight(150)  # four rows stay in view when the suggestion box opens below
        self.add_button = QPushButton("Add videos…")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(self._add_dialog)
        self.remove_button.clicked.connect(self.remove_selected)

        self.out_edit = QLineEdit(out_dir)
        self.out_edit.setPlaceholderText("folder for the keypoints and annotated videos")
        self.model_edit = QLineEdit(model)
        self.model_edit.setPlaceholderText("model folder, port .pkl or checkpoint")
        self.annotated_box = QCheckBox("Annotated videos (NAME_pose.mp4)")
        self.detect_box = QCheckBox("Detect subjects (several per frame, each tracked)")
        self.status = QLabel("Add videos, choose an output folder, then Analyse.")
        self.status.setWordWrap(True)
        self.analyse_button = QPushButton("Analyse")
        self.cancel_button = QPushButton("Cancel")
        self.close_button = QPushButton("Close")
        self.analyse_button.setDefault(True)
        self.analyse_button.clicked.connect(lambda: self.analyse())
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        self.suggest = SuggestBox(self)
        self.suggest.setVisible(False)

        form = QFormLayout()
        form.addRow("Output folder", self._with_browse(self.out_edit, self._out_dialog))
        form.addRow("Model", self._with_browse(self.model_edit, self._model_dialog))
        form.addRow("Keypoints", QLabel("always: NAME.json and NAME.csv for each video"))
        form.addRow("", self.annotated_box)
        form.addRow("", self.detect_box)
        edit_row = QHBoxLayout()
        edit_row.addWidget(self.add_button)
        edit_row.addWidget(self.remove_button)
        edit_row.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.analyse_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(edit_row)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(self.suggest)
        layout.addLayout(buttons)
        self.runner.videoStarted.connect(lambda i: self._show_row(i))
        self.runner.progressed.connect(self._on_progress)
        self.runner.videoFinished.connect(self._on_video_finished)
        self.runner.finished.connect(self._on_finished)
        self.resize(760, 480)
        self._set_running(False)

    def _with_browse(self, edit: QLineEdit, slot) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        button = QPushButton("Browse…")
        button.clicked.connect(slot)
        row.addWidget(button)
        return box

    # -- the list of videos -----------------------------------------------------------------------------------
    def videos(self) -> list[Path]:
        return [Path(self.table.item(r, 0).data(Qt.ItemDataRole.UserRole)) for r in range(self.table.rowCount())]

    def add_videos(self, paths: list[str | os.PathLike]) -> None:
        """Append `paths` (a video already listed is not added twice)."""
        known = {os.path.abspath(v) for v in self.videos()}
        for p in paths:
            if os.path.abspath(p) in known:
                continue
            known.add(os.path.abspath(p))
            row = self.table.rowCount()
            self.table.insertRow(row)
            item = QTableWidgetItem(Path(p).name)
            item.setData(Qt.ItemDataRole.UserRole, str(p))
            item.setToolTip(str(p))
            self.table.setItem(row, 0, item)
            bar = QProgressBar()
            bar.setRange(0, 1)
            bar.setValue(0)
            bar.setFormat("%v / %m")
            self.table.setCellWidget(row, 1, bar)
            self.table.setItem(row, 2, QTableWidgetItem(""))
        self.bars = [self.table.cellWidget(r, 1) for r in range(self.table.rowCount())]
        self._set_running(False)

    def remove_selected(self) -> None:
        for row in sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True):
            self.table.removeRow(row)
        self.bars = [self.table.cellWidget(r, 1) for r in range(self.table.rowCount())]
        self._set_running(False)

    def _add_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Videos to analyse", "", VIDEO_FILTER)
        self.add_videos(files)

    def _out_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.out_edit.text())
        if folder:
            self.out_edit.setText(folder)

    def _model_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder (with card.json)", self.model_edit.text())
        if folder:
            self.model_edit.setText(folder)

    # -- running ------------------------------------------------------------------------------------------
    def problem(self) -> str | None:
        """Why the run cannot start, in one line, or None."""
        videos, out, model = self.videos(), self.out_edit.text().strip(), self.model_edit.text().strip()
        if not videos:
            return "add at least one video to analyse"
        missing = [v for v in videos if not v.is_file()]
        if missing:
            return f"{missing[0]}: no such file"
        if not out:
            return "choose an output folder for the keypoints"
        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            return f"{out}: is a file, not a folder"
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"{out}: {folder} is not writable"
        if not model:
            return "choose the model to analyse with (a model folder with card.json, a .pkl or a checkpoint)"
        if not Path(model).exists():
            return f"{model}: no such model"
        return None

    def analyse(self, replace: bool | None = None) -> bool:
        """Start the run; False with a message when it cannot. Outputs already in the folder are replaced only
        when `replace` is True or the user says so (None: ask)."""
        if self.runner.is_running():
            return False
        why = self.problem()
        if why:
            self._error(why)
            return False
        videos, out = self.videos(), Path(self.out_edit.text().strip())
        there = existing_outputs(videos, out, self.annotated_box.isChecked())
        if there and replace is None:
            replace = QMessageBox.question(
                self, "Replace files?", f"{len(there)} file(s) in {out} would be replaced, e.g. {there[0].name}. "
                "Replace them?") == QMessageBox.StandardButton.Yes
        if there and not replace:
            self._error(f"{len(there)} output file(s) already in {out} (e.g. {there[0].name}); nothing was started: "
                        "choose another folder or agree to replace them")
            return False
        for r in range(self.table.rowCount()):
            self.bars[r].setRange(0, 1)
            self.bars[r].setValue(0)
            self.bars[r].setFormat("%v / %m")
            self.table.item(r, 2).setText(STATE_TEXT["queued"])
        self.suggest.reset()
        self.suggest.setVisible(False)
        self.last_error = ""
        try:
            self.runner.start(videos, out, self.model_edit.text().strip(), self.annotated_box.isChecked(),
                              self.detect_box.isChecked())
        except OSError as exc:
            self._error(f"cannot create {out}: {exc}")
            return False
        self._set_running(True)
        self._info(f"Analysing {len(videos)} video(s) into {out}…")
        return True

    def cancel(self) -> None:
        """First press: stop cleanly (the current video's partial files are removed). Second press: kill."""
        if not self.runner.is_running():
            return
        if self.runner.cancelled:
            self.runner.kill()
            return
        self.runner.cancel()
        self.cancel_button.setText("Kill now")
        self._info("Cancelling: the video being analysed is stopped and its unfinished files removed…")

    def _show_row(self, index: int) -> None:
        self.table.item(index, 2).setText(STATE_TEXT["running"])
        self.table.scrollToItem(self.table.item(index, 0))

    def _on_progress(self, index: int, done: int, total: int) -> None:
        bar = self.bars[index]
        bar.setRange(0, max(total, done, 1))
        bar.setValue(done)

    def _on_video_finished(self, index: int) -> None:
        job = self.runner.jobs[index]
        text = STATE_TEXT[job.state]
        if job.message and job.state in ("done", "failed"):
            text += f": {job.message.splitlines()[0]}"
        cell = self.table.item(index, 2)
        cell.setText(text)
        cell.setToolTip(job.message or "\n".join(map(str, job.outputs)))
        if job.state == "failed":
            cell.setForeground(Qt.GlobalColor.red)
            self.bars[index].setFormat("failed")  # not "0 / 1": nothing was analysed
        elif job.state == "cancelled":
            self.bars[index].setFormat("cancelled")
        self.table.resizeRowToContents(index)

    def _on_finished(self) -> None:
        jobs = self.runner.jobs
        ok = [j for j in jobs if j.state == "done"]
        failed = [j for j in jobs if j.state == "failed"]
        text = f"{len(ok)} of {len(jobs)} video(s) analysed into {self.runner.out_dir}"
        if self.runner.cancelled:
            text += "; cancelled (the unfinished video left no files)"
        if failed:
            self._error(text + "; failed: " + "; ".join(j.message.splitlines()[0] for j in failed))
        else:
            self._info(text + ".")
        self._set_running(False)
        if ok:
            self.suggest.offer(self.runner.model, [j.video for j in ok], self.runner.out_dir, self.workspace)
            self.resize(self.width(), max(self.height(), self.sizeHint().height()))

    def _set_running(self, running: bool) -> None:
        for w in (self.add_button, self.remove_button, self.out_edit, self.model_edit, self.annotated_box,
                  self.detect_box, self.close_button):
            w.setEnabled(not running)
        self.analyse_button.setEnabled(not running and self.table.rowCount() > 0)
        self.cancel_button.setEnabled(running)
        self.cancel_button.setText("Cancel")

    def _info(self, text: str) -> None:
        self.status.setStyleSheet("")
        self.status.setText(text)

    def _error(self, text: str) -> None:
        self.last_error = text
        self.status.setStyleSheet("color: #e05050;")
        self.status.setText(text)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Closing while a run is going cancels it (cleanly, waiting for the process) rather than orphaning it."""
        self.runner.shutdown()
        self.suggest.shutdown()
        super().closeEvent(event)
