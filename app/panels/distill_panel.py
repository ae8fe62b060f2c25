"""DistillPanel: a `cpm distill` run: a teacher (CPM model or .tflite keypoint model), a student preset and
data, with the same live view as training plus the teacher's validation PCK as a reference line."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QDoubleSpinBox, QLineEdit, QWidget

from app.panels.run_config import toml_value
from app.panels.train_panel import TrainPanel, path_row

TEACHER_FILTER = "Models (card.json *.tflite *.pkl *.index *.weights.h5);;All files (*)"


class DistillPanel(TrainPanel):
    command = "distill"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.output_edit.setText(str(Path("runs") / "distill"))

    def _add_source_rows(self) -> None:
        self.teacher_edit = QLineEdit()
        self.teacher_edit.setPlaceholderText("teacher: a CPM model folder / weights, or a .tflite keypoint model")
        self.alpha_spin = QDoubleSpinBox()
        self.alpha_spin.setRange(0.0, 10.0)
        self.alpha_spin.setSingleStep(0.1)
        self.alpha_spin.setToolTip("weight of the ground-truth loss (CPM teachers)")
        self.confidence_spin = QDoubleSpinBox()
        self.confidence_spin.setRange(0.0, 1.0)
        self.confidence_spin.setSingleStep(0.05)
        self.confidence_spin.setValue(0.5)
        self.confidence_spin.setToolTip("keypoint teachers: subjects with a lower presence score are skipped")
        self.form.addRow("Teacher", path_row(self.teacher_edit, lambda: self._pick_file(
            self.teacher_edit, "Choose a teacher model", TEACHER_FILTER)))
        self.form.addRow("Ground-truth weight", self.alpha_spin)
        self.form.addRow("Teacher confidence", self.confidence_spin)
        super()._add_source_rows()

    def config_overrides(self) -> list[str]:
        """The training form's overrides plus the teacher's [distill] settings."""
        teacher = self.teacher_edit.text().strip()
        if not teacher:
            raise ValueError("choose a teacher model")
        distill = {"teacher": str(Path(teacher).resolve()), "alpha": self.alpha_spin.value(),
                   "confidence": self.confidence_spin.value()}
        return super().config_overrides() + [f"distill.{k}={toml_value(v)}" for k, v in distill.items()]
