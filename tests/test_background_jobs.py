"""No blocking work on the GUI thread (issue #20 item 5): `run_in_worker` runs a function in a worker thread and
calls back on the GUI thread; project creation from a video and export run through it from the menus."""

from __future__ import annotations

import threading

from app_support import VIDEO
from PySide6.QtCore import QThread, QTimer

from app.background import run_in_worker
from cpm_core.dataset.formats import read_dataset
from cpm_core.dataset.project import AnnotationProject

WAIT_MS = 20000


def test_result_progress_and_error_arrive_on_the_gui_thread(qtbot):
    gui = QThread.currentThread()
    seen = []

    def work(control):
        assert QThread.currentThread() is not gui
        for i in range(3):
            control.progress(i, 3)
        return "done"

    job = run_in_worker(work, on_done=lambda r: seen.append(("done", r, QThread.currentThread() is gui)),
                        progress=lambda i, n: seen.append(("progress", i, QThread.currentThread() is gui)))
    qtbot.waitUntil(lambda: any(s[0] == "done" for s in seen), timeout=WAIT_MS)
    assert seen == [("progress", 0, True), ("progress", 1, True), ("progress", 2, True), ("done", "done", True)]
    job.wait()

    errors = []
    job = run_in_worker(lambda _c: 1 / 0, on_done=lambda r: errors.append(r), on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=WAIT_MS)
    assert isinstance(errors[0], ZeroDivisionError) and isinstance(job.error, ZeroDivisionError)
    job.wait()


def test_the_event_loop_keeps_running_while_a_project_is_made_from_a_video(qtbot, tmp_path, monkeypatch,
                                                                          estimator):
    """The extraction waits (in its worker thread) until a GUI-thread QTimer has ticked three times: were the GUI
    thread blocked by it, the timer could never tick and the project would never open."""
    from app.annotate.workspace import AnnotationWorkspace

    ticks = {"while_running": 0}
    ticked = threading.Event()
    real = AnnotationProject.from_video

    def gated(*args, **kwargs):
        assert ticked.wait(WAIT_MS / 1000), "the GUI's timer never ticked during the extraction"
        return real(*args, **kwargs)

    monkeypatch.setattr(AnnotationProject, "from_video", staticmethod(gated))
    ws = AnnotationWorkspace(lambda: estimator)
    qtbot.addWidget(ws)

    def tick() -> None:
        job = ws.background_job
        if job is not None and job.isRunning():
            ticks["while_running"] += 1
            if ticks["while_running"] >= 3:
                ticked.set()

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)
    assert ws.new_from_video(VIDEO, tmp_path / "clip.cpmproj.json", 5, "uniform", background=True)
    assert ws.project is None  # returned at once; the project opens when the worker is done
    qtbot.waitUntil(lambda: ws.project is not None, timeout=WAIT_MS)
    timer.stop()
    assert ticks["while_running"] >= 3
    assert len(ws.project) == 5 and ws.project.path.exists()
    assert "5 frames from hand_clip.mp4" in ws.last_message
    ws.shutdown()


def test_export_from_the_dialog_path_writes_in_the_background(qtbot, tmp_path, estimator):
    from app.annotate.workspace import AnnotationWorkspace

    ws = AnnotationWorkspace(lambda: estimator)
    qtbot.addWidget(ws)
    assert ws.new_from_video(VIDEO, tmp_path / "clip.cpmproj.json", 3, "uniform")
    for j in range(ws.project.num_joints):  # label frame 0 as a user would: place every joint, confirm
        ws.place_at(10.0 + 3 * j, 20.0 + 2 * j)
    ws.confirm()
    assert ws.export(tmp_path / "out.json", "coco", background=True)
    qtbot.waitUntil(lambda: "Exported 1 labelled frames" in ws.last_message, timeout=WAIT_MS)
    assert read_dataset(tmp_path / "out.json").num_images == 1
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert ws.export(blocker / "sub" / "x.json", "coco", background=True)  # started; fails in the worker
    qtbot.waitUntil(lambda: ws.last_error.startswith("export to coco failed:"), timeout=WAIT_MS)
    ws.shutdown()
