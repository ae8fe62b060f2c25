"""Regenerate docs/screenshots/annotate.png: the Annotate tab on a shared hand frame, some joints placed by
clicks, one occluded, the rest shown as unconfirmed predictions (the pseudo-labels stand in for a model).

    xvfb-run -a -s "-screen 0 1400x900x24" env QT_QPA_PLATFORM=xcb python docs/screenshots/annotate_screenshot.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.main_window import MainWindow
from cpm_core.dataset.formats import read_dataset
from cpm_core.dataset.project import AnnotationProject, FrameState

DATA = Path("/work/shared/data/hand_pseudo/val.json")
OUT = Path(__file__).with_name("annotate.png")


def main() -> int:
    app = QApplication(sys.argv[:1])
    ds = read_dataset(DATA)
    ds.samples = sorted(ds.samples, key=lambda s: -s.instances[0].bbox[3] if s.instances else 0)[:12]
    gt = [s.instances[0].keypoints.copy() for s in ds.samples]
    tmp = Path(tempfile.mkdtemp())
    project = AnnotationProject.from_dataset(tmp / "hands.cpmproj.json", ds)
    for i in range(len(project)):  # start unlabelled, except two frames done earlier
        if i not in (3, 4):
            project.set_state(i, FrameState.empty(project.num_joints))
    window = MainWindow()
    window.resize(1400, 900)
    ws = window.annotate
    ws.set_project(project)
    window.show()
    kp = gt[0]
    for j in range(9):
        ws.place_at(*kp[j])
    ws.select_joint(6)
    ws.cycle_selected()  # joint 6 occluded
    ws._push(project.predicted_state(0, kp), "predict joints")  # joints 9..20 predicted, unconfirmed
    ws.select_joint(8)

    def shoot() -> None:
        if window.worker.estimator is None:
            QTimer.singleShot(500, shoot)
            return
        x, y, w, h = project.state(0).bbox
        ws.canvas.view.setRange(xRange=(x - 0.15 * w, x + 1.15 * w), yRange=(y - 0.05 * h, y + 1.05 * h), padding=0)
        app.processEvents()
        window.grab().save(str(OUT), "PNG")
        print(f"saved {OUT}")
        window.close()
        app.quit()

    QTimer.singleShot(1500, shoot)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
