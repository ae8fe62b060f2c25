"""Regenerate docs/screenshots/labelling_suggest.png and labelling_check.png: the Annotate tab's labelling loop
(issue #23) in the real window, with the default embedded hand model.

1. "Suggest frames": a project of the three images of tests/fixtures/media/folder, then the Annotate tab's
   suggester scores every frame of the labels' 202-frame source video (tests/fixtures/media/hand_clip.mp4, 20
   frames, when the shared video is missing) with the default model (the same
   `FrameSuggester.start` the "Suggest frames…" button calls once its file and count dialogs are answered) and
   adds the 5 most uncertain, varied frames; the list shows them by score and the top one is clicked.
2. "Check labels": the 101 MediaPipe-labelled hands of tests/fixtures/labelling/hand_video_labels.json with a
   few labels deliberately broken (thumb and little finger swapped on frame 0, the middle fingertip moved one
   hand size away on frame 80, the box moved off its hand on frame 160), imported as a project; the real "Check
   labels" button is clicked, then the swap's row. (No duplicate hand: a project frame holds one hand, the import
   keeps the first, so duplicate flags come from `cpm dataset check` on a dataset only.)

The fixture commits the pixels of frames 0, 80 and 160 only; the other frames are cut from the shared source
video when it is there (else those labels are left out). Everything but the two PNGs is written to a temp folder.

    xvfb-run -a -s "-screen 0 1366x768x24" env QT_QPA_PLATFORM=xcb nice -n 15 \
        python docs/screenshots/labelling_screenshot.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractItemView, QApplication

from app.main_window import MainWindow
from cpm_core.dataset.formats import read_dataset, write_dataset

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
VIDEO = FIXTURES / "media" / "hand_clip.mp4"
FOLDER = FIXTURES / "media" / "folder"
LABELS = FIXTURES / "labelling" / "hand_video_labels.json"
SOURCE_VIDEO = Path("/work/shared/data/media/hand/mediapipe_hand_test_video.mp4")  # the labels' video
OUT_SUGGEST = Path(__file__).with_name("labelling_suggest.png")
OUT_CHECK = Path(__file__).with_name("labelling_check.png")
THUMB, LITTLE = [1, 2, 3, 4], [17, 18, 19, 20]
SIZE = (1366, 740)


def labelled_copy(tmp: Path) -> Path:
    """The fixture's labels with their pixels beside them in `tmp`, as a COCO file; returns its path."""
    doc = json.loads(LABELS.read_text())
    frames = tmp / "frames"
    frames.mkdir(parents=True)
    cap = cv2.VideoCapture(str(SOURCE_VIDEO)) if SOURCE_VIDEO.is_file() else None
    have: set[int] = set()
    for img in sorted(doc["images"], key=lambda i: i["frame"]):
        committed = (LABELS.parent / img["file_name"]).resolve()
        dst = frames / f"hand_{img['frame']:05d}.jpg"
        if committed.is_file():
            shutil.copy(committed, dst)
        elif cap is not None:
            cap.set(cv2.CAP_PROP_POS_FRAMES, img["frame"])
            ok, bgr = cap.read()
            if not ok:
                continue
            small = cv2.resize(bgr, (img["width"], img["height"]), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(dst), small, [cv2.IMWRITE_JPEG_QUALITY, 85])
        else:
            continue
        img["file_name"] = f"frames/{dst.name}"
        have.add(img["id"])
    doc["images"] = [i for i in doc["images"] if i["id"] in have]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] in have]
    clean = tmp / "clean.json"
    clean.write_text(json.dumps(doc))
    return clean


def corrupt(clean: Path, out: Path) -> list[str]:
    """Break a few labels of `clean` as a person might, write the result to `out`; returns what was done."""
    ds = read_dataset(clean)
    by_frame = {s.extras.get("frame"): s for s in ds.samples}
    done = []
    if (s := by_frame.get(0)) is not None:
        inst = s.instances[0]
        inst.keypoints[THUMB + LITTLE] = inst.keypoints[LITTLE + THUMB]
        done.append("frame 0: thumb and little finger swapped")
    if (s := by_frame.get(80)) is not None:
        inst = s.instances[0]
        inst.keypoints[12] += max(inst.bbox[2:]) * np.array([0.8, -0.6])
        done.append("frame 80: joint 12 (middle tip) moved one hand size away")
    if (s := by_frame.get(160)) is not None:
        inst = s.instances[0]
        x, y, w, h = inst.bbox
        inst.bbox = (x + 1.5 * w, y, w, h)
        done.append("frame 160: box 1.5 widths right of its hand")
    write_dataset(ds, out, "coco", write_missing_images=False)
    return done


def click_row(lst, row: int) -> None:
    lst.setCurrentRow(row)
    rect = lst.visualItemRect(lst.item(row))
    QTest.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(rect.center()))


def main() -> int:
    app = QApplication(sys.argv[:1])
    tmp = Path(tempfile.mkdtemp(prefix="labelling_shots_"))
    window = MainWindow()
    window.resize(*SIZE)
    window.move(0, 0)
    ws = window.annotate
    window.show()
    steps: list = []
    errors: list[str] = []
    ws.errorOccurred.connect(errors.append)

    def advance() -> None:
        QTimer.singleShot(300, steps.pop(0))

    def wait_model() -> None:
        if window.worker.estimator is None:
            QTimer.singleShot(500, wait_model)
            return
        advance()

    def suggest() -> None:
        shutil.copytree(FOLDER, tmp / "suggest")
        assert ws.new_from_folder(tmp / "suggest", tmp / "suggest" / "hands.cpmproj.json"), ws.last_error
        worker = ws.suggester.start(SOURCE_VIDEO if SOURCE_VIDEO.is_file() else VIDEO, count=5)
        assert worker is not None, ws.last_error

        def done() -> None:
            if worker.isRunning() or ws.suggester.progress is not None:
                QTimer.singleShot(300, done)
                return
            lst = ws.panel.suggestions
            for r in range(lst.count()):
                print("suggested:", lst.item(r).text(), "|", lst.item(r).toolTip().replace("\n", ", "))
            if lst.count():
                click_row(lst, 0)
            advance()
        QTimer.singleShot(500, done)

    def shoot(path: Path) -> None:
        app.processEvents()
        window.grab().save(str(path), "PNG")
        print(f"saved {path}")
        advance()

    def check() -> None:
        data = tmp / "check"
        clean = labelled_copy(data)
        for what in corrupt(clean, data / "broken.json"):
            print("corrupted:", what)
        assert ws.new_from_dataset(data / "broken.json", data / "broken.cpmproj.json"), ws.last_error
        QTest.mouseClick(ws.panel.check_button, Qt.MouseButton.LeftButton)
        lst = ws.panel.checks
        for r in range(lst.count()):
            print("flag:", lst.item(r).text())
        swaps = [r for r, f in enumerate(ws.checker.flags) if f.kind == "swap"]
        if ws.checker.flags:
            row = swaps[0] if swaps else 0
            click_row(lst, row)  # shows the flag's frame and selects its first joint
            lst.scrollToItem(lst.item(row), QAbstractItemView.ScrollHint.PositionAtBottom)
            x, y, w, h = ws.project.state(ws.index).bbox  # zoom on the hand, as one does to check it
            m = 1.2 * max(w, h)
            ws.canvas.view.setRange(xRange=(x - m, x + w + m), yRange=(y - m, y + h + m), padding=0)
        advance()

    def finish() -> None:
        if errors:
            print("errors shown:", *errors, sep="\n  ")
        window.close()
        app.quit()

    steps += [suggest, lambda: shoot(OUT_SUGGEST), check, lambda: shoot(OUT_CHECK), finish]
    QTimer.singleShot(1000, wait_model)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
