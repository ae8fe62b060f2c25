"""File > Analyse videos: `cpm infer --progress jsonl` (its events, a SIGTERM stop that leaves nothing), and the
dialog offscreen running real `cpm infer` processes on a tiny real model and short synthetic videos: progress to
each video's total with JSON/CSV/annotated outputs, a corrupt video failing alone, Cancel leaving no file, bad
choices refused with one message, and "Suggest frames to label" adding frames to an annotation project."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from app_support import FOLDER, TINY, tiny_estimator
from PySide6.QtCore import QItemSelectionModel
from PySide6.QtWidgets import QMainWindow, QMenu

from app.analyse.dialog import AnalyseDialog
from app.analyse.menu import add_analyse_action, current_model_path
from app.annotate.workspace import AnnotationWorkspace
from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.weights import default_model_path, save_model
from training.cli import main as cpm

ROOT = Path(__file__).resolve().parents[1]
HANG_GUARD_MS = 300_000  # only against a hang: real processes on a busy 2-core machine


def _video(path: Path, frames: int, size=(96, 64)) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(frames):
        img = np.full((size[1], size[0], 3), (i * 7) % 255, np.uint8)
        cv2.circle(img, (10 + i % (size[0] - 20), size[1] // 2), 6, (255, 255, 255), -1)
        w.write(img)
    w.release()
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyse")
    model = save_model(build_cpm(TINY), ModelCard.for_spec(TINY, name="tiny-test"), root / "tiny")
    a = _video(root / "a.mp4", 24)
    b = _video(root / "b.mp4", 13)
    bad = root / "bad.mp4"
    bad.write_bytes(b"this is not a video, only bytes " * 40)
    long = _video(root / "long.mp4", 3000, (160, 120))
    return SimpleNamespace(model=str(model), a=a, b=b, bad=bad, long=long)


def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_progress_jsonl_reports_each_video_its_failure_and_the_end(tmp_path, media, capsys):
    rc = cpm(["infer", str(media.a), str(media.bad), str(media.b), "--model", media.model,
              "--json", str(tmp_path / "k.json"), "--progress", "jsonl"])
    out = capsys.readouterr().out
    events = _events(out)  # every stdout line is one JSON object: nothing else is printed there
    assert rc == 2
    videos = [e for e in events if e["event"] == "video"]
    assert [(Path(e["source"]).name, e["frames"]) for e in videos] == [("a.mp4", 24), ("b.mp4", 13)]
    for src, n in ((media.a, 24), (media.b, 13)):
        counts = [e["frame"] for e in events if e["event"] == "frame" and e["source"] == str(src)]
        assert counts and counts == sorted(counts) and counts[-1] == n  # the last count is always sent
    errors = [e for e in events if e["event"] == "error"]
    assert len(errors) == 1 and errors[0]["source"] == str(media.bad) and "bad.mp4" in errors[0]["message"]
    assert events[-1]["event"] == "done" and events[-1]["frames"] == 37 and events[-1]["errors"] == 1
    assert not events[-1]["stopped"] and all("time" in e for e in events)


def test_sigterm_stops_infer_and_leaves_no_partial_file(tmp_path, media):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "training.cli", "infer", str(media.long), "--model", media.model,
                             "--json", str(out / "k.json"), "--out-dir", str(out), "--progress", "jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    lines = []
    for line in proc.stdout:  # wait until it is writing frames
        lines.append(line)
        if json.loads(line)["event"] == "frame":
            break
    assert any(p.name.endswith(".tmp") for p in out.iterdir())  # the JSON is being streamed under a temp name
    proc.send_signal(signal.SIGTERM)
    lines += proc.stdout.readlines()
    assert proc.wait(timeout=120) == 130
    last = json.loads(lines[-1])
    assert last["event"] == "done" and last["stopped"] is True
    assert sorted(p.name for p in out.iterdir()) == []  # neither the JSON's temp file nor the partial video


@pytest.fixture
def dialog(qtbot, media):
    d = AnalyseDialog(model=media.model)
    qtbot.addWidget(d)
    d.show()
    yield d
    d.close()
    assert not d.runner.is_running()


def _run(qtbot, d: AnalyseDialog, **kw) -> None:
    with qtbot.waitSignal(d.runner.finished, timeout=HANG_GUARD_MS):
        assert d.analyse(**kw), d.last_error


def test_two_videos_progress_to_their_totals_and_write_outputs(qtbot, tmp_path, media, dialog):
    out = tmp_path / "out"
    dialog.add_videos([media.a, media.b, media.a])  # the same video twice is listed once
    dialog.out_edit.setText(str(out))
    dialog.annotated_box.setChecked(True)
    seen: list[tuple[int, int, int]] = []
    dialog.runner.progressed.connect(lambda i, done, total: seen.append((i, done, total)))
    _run(qtbot, dialog)
    assert [j.state for j in dialog.runner.jobs] == ["done", "done"]
    for i, (video, n) in enumerate(((media.a, 24), (media.b, 13))):
        assert (dialog.bars[i].value(), dialog.bars[i].maximum()) == (n, n)
        assert max(done for k, done, _ in seen if k == i) == n and (i, n, n) in seen
        stem = video.stem
        doc = json.loads((out / f"{stem}.json").read_text())
        assert [r["frame"] for r in doc["results"]] == list(range(n))
        with open(out / f"{stem}.csv", newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0][:5] == ["source", "frame", "subject", "score", "wrist_x"] and len(rows[0]) == 4 + 21 * 3
        assert [int(r[1]) for r in rows[1:]] == list(range(n))
        assert float(rows[1][4]) == pytest.approx(doc["results"][0]["keypoints"][0][0])
        cap = cv2.VideoCapture(str(out / f"{stem}_pose.mp4"))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "a.json", "a_pose.mp4", "b.csv", "b.json",
                                                     "b_pose.mp4"]  # no work folder left
    assert "2 of 2 video(s) analysed" in dialog.status.text() and dialog.suggest.isVisible()
    # a second run into the same folder replaces nothing without being told to
    kept = (out / "a.json").read_bytes()
    assert not dialog.analyse(replace=False) and "6 output file(s) already in" in dialog.last_error
    assert (out / "a.json").read_bytes() == kept and not dialog.runner.is_running()


def test_a_corrupt_video_fails_alone_with_one_message(qtbot, tmp_path, media, dialog):
    out = tmp_path / "out"
    dialog.add_videos([media.bad, media.b])
    dialog.out_edit.setText(str(out))
    _run(qtbot, dialog)
    bad, good = dialog.runner.jobs
    assert bad.state == "failed" and "bad.mp4" in bad.message and "cannot open as a video" in bad.message
    assert good.state == "done" and dialog.bars[1].value() == 13
    assert dialog.table.item(0, 2).text().startswith("FAILED: ") and "bad.mp4" in dialog.table.item(0, 2).text()
    assert sorted(p.name for p in out.iterdir()) == ["b.csv", "b.json"]
    assert "1 of 2 video(s) analysed" in dialog.last_error and "bad.mp4: " in dialog.last_error


def test_cancel_stops_the_process_and_leaves_no_file(qtbot, tmp_path, media, dialog):
    out = tmp_path / "out"
    dialog.add_videos([media.long, media.a])
    dialog.out_edit.setText(str(out))
    dialog.annotated_box.setChecked(True)
    started = []
    dialog.runner.progressed.connect(lambda i, done, total: started.append(done) if done > 0 else None)
    assert dialog.analyse(), dialog.last_error
    qtbot.waitUntil(lambda: bool(started), timeout=HANG_GUARD_MS)  # the first video is writing its outputs
    assert any(p.name.startswith(".analyse-long") for p in out.iterdir())
    with qtbot.waitSignal(dialog.runner.finished, timeout=HANG_GUARD_MS):
        dialog.cancel()
        assert dialog.cancel_button.text() == "Kill now"
    assert [j.state for j in dialog.runner.jobs] == ["cancelled", "cancelled"]
    assert dialog.runner.jobs[0].done < 3000
    assert list(out.iterdir()) == []  # no keypoints, no partial video, no work folder
    assert "cancelled" in dialog.status.text() and dialog.analyse_button.isEnabled()


def test_bad_choices_get_one_message_and_start_nothing(qtbot, tmp_path, media, dialog):
    assert not dialog.analyse() and dialog.last_error == "add at least one video to analyse"
    dialog.add_videos([tmp_path / "gone.mp4"])
    assert not dialog.analyse() and dialog.last_error.endswith("gone.mp4: no such file")
    # Select row 0 through the selection model: QTableView.selectRow in extended-selection mode reads the
    # application's keyboard modifiers, and a Ctrl left held by an earlier test made it toggle the row off (seen
    # once in a full run: the missing video stayed listed).
    table = dialog.table
    table.selectionModel().select(table.model().index(0, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect
                                  | QItemSelectionModel.SelectionFlag.Rows)
    dialog.remove_selected()
    assert table.rowCount() == 0
    dialog.add_videos([media.a])
    assert not dialog.analyse() and "choose an output folder" in dialog.last_error
    (tmp_path / "file").write_text("mine")
    dialog.out_edit.setText(str(tmp_path / "file"))
    assert not dialog.analyse() and "is a file, not a folder" in dialog.last_error
    dialog.out_edit.setText(str(tmp_path / "out"))
    dialog.model_edit.setText(str(tmp_path / "no-model"))
    assert not dialog.analyse() and "no such model" in dialog.last_error
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.csv").write_text("the user's own table")
    dialog.model_edit.setText(media.model)
    assert not dialog.analyse(replace=False) and "1 output file(s) already in" in dialog.last_error
    assert (tmp_path / "out" / "a.csv").read_text() == "the user's own table"
    assert not dialog.runner.is_running()


def test_suggest_frames_of_the_analysed_videos_adds_them_to_a_project(qtbot, tmp_path, media, dialog):
    estimator = tiny_estimator()
    ws = AnnotationWorkspace(lambda: estimator)
    qtbot.addWidget(ws)
    shutil.copytree(FOLDER, tmp_path / "imgs")
    assert ws.new_from_folder(tmp_path / "imgs", tmp_path / "p.cpmproj.json"), ws.last_error
    before = len(ws.project)
    box = dialog.suggest
    box.offer(media.model, [media.a, media.b], tmp_path, ws)
    box.count.setValue(3)
    assert box.isVisible() and not box.add_button.isEnabled()
    with qtbot.waitSignal(box.step.suggested, timeout=HANG_GUARD_MS):
        box.run_button.click()
    assert box.picks.count() == 3 and box.add_button.isEnabled()
    doc = json.loads((tmp_path / "suggestions.json").read_text())
    assert len(doc["frames"]) == 3
    with qtbot.waitSignal(box.step.added, timeout=HANG_GUARD_MS) as added:
        box.add_button.click()
    assert added.args == [3] and len(ws.project) == before + 3
    new = ws.project.frames[before:]
    assert {f.extras["source"] for f in new} <= {"a.mp4", "b.mp4"}
    assert all(0.0 <= f.extras["suggested_score"] <= 1.0 for f in new)
    assert all((ws.project.folder / f.image).is_file() for f in new)  # the JPEGs beside the project
    assert ws.panel.suggestions.count() == 3 and "3 frame(s) added" in box.message.text()
    # suggesting again never replaces the earlier list
    with qtbot.waitSignal(box.step.suggested, timeout=HANG_GUARD_MS):
        box.run_button.click()
    assert (tmp_path / "suggestions-2.json").is_file()
    assert json.loads((tmp_path / "suggestions.json").read_text()) == doc
    ws.shutdown()


def test_menu_action_opens_the_dialog_with_the_current_model(qtbot):
    window = QMainWindow()
    qtbot.addWidget(window)
    menu = QMenu("File", window)
    action = add_analyse_action(menu, window)
    assert action.text() == "Analyse videos…" and action in menu.actions()
    action.trigger()
    dialogs = window.findChildren(AnalyseDialog)
    assert len(dialogs) == 1 and dialogs[0].isVisible() and dialogs[0].model_edit.text() == ""
    action.trigger()
    assert len(window.findChildren(AnalyseDialog)) == 1  # one dialog per window
    hand = json.loads((default_model_path("hand") / "card.json").read_text())["name"]
    as_window = SimpleNamespace(pipeline=SimpleNamespace(estimator=SimpleNamespace(
        card=SimpleNamespace(name=hand, provenance={}))))
    assert current_model_path(as_window) == str(default_model_path("hand"))
    assert current_model_path(SimpleNamespace(model_path="/m/x")) == "/m/x"
