"""Closing the window during a training run (issue #22, the case beside item 6's Stop): the window asks first,
"keep working" leaves the run going, and "stop and quit" waits for the run's own clean stop (checkpoint, model)
instead of killing it after a grace period. The run is a stand-in process speaking the real protocol (see
tests/test_reliability_app.py) whose clean stop lasts until the test opens its gate."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QSettings, QTimer
from test_reliability_app import HANG_GUARD_MS, SLOW_STOPPER, TINY_COCO

from app.main_window import MainWindow
from app.viewer import quit_guard


@pytest.fixture
def window_with_run(qtbot, tmp_path, estimator):
    w = MainWindow(estimator, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    script = tmp_path / "slow_stopper.py"
    script.write_text(SLOW_STOPPER)
    gate = tmp_path / "run" / "checkpoint-written"
    gate.parent.mkdir()
    panel = w.train_panel
    panel.process.program = [sys.executable, str(script), str(gate)]
    panel.dataset_edit.setText(str(TINY_COCO))
    panel.output_edit.setText(str(tmp_path / "run"))
    with qtbot.waitSignal(panel.process.step, timeout=HANG_GUARD_MS):
        assert panel.start()
    yield w, panel, gate
    if panel.process.is_running():
        panel.process.kill()
        panel.process.wait_for_finished(10000)
    w.shutdown()  # the threads of a window whose close was refused


def test_closing_during_a_run_asks_and_keep_working_leaves_it_running(qtbot, window_with_run, monkeypatch):
    w, panel, _gate = window_with_run
    asked = []
    monkeypatch.setattr(quit_guard, "ask_to_quit", lambda parent: asked.append(parent) or False)
    w.show()
    w.close()
    assert asked == [w] and w.isVisible() and panel.process.is_running()


def test_stop_and_quit_waits_for_the_runs_clean_stop(qtbot, window_with_run, monkeypatch):
    w, panel, gate = window_with_run
    monkeypatch.setattr(quit_guard, "ask_to_quit", lambda parent: True)
    codes: list[int] = []
    panel.process.finished.connect(codes.append)
    seen_stopping = []

    def open_gate() -> None:  # the run "saves its checkpoint" only once the window is seen waiting for it
        seen_stopping.append(panel.process.is_running())
        gate.touch()

    QTimer.singleShot(500, open_gate)
    w.show()
    w.close()
    assert seen_stopping == [True]  # the close was still waiting for the run, not killing it
    assert codes == [0] and (gate.parent / "model").is_dir()  # done event, exit 0: a clean stop
    assert not w.isVisible()


def test_file_menu_offers_analyse_videos_with_the_model_the_window_loaded(qtbot, tmp_path, estimator):
    """The real window's File menu has Analyse videos…, and the dialog starts on the model folder the window
    loaded last (the window remembers where its model came from)."""
    from app.analyse.dialog import AnalyseDialog
    from cpm_core.weights import save_model

    w = MainWindow(estimator, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    folder = tmp_path / "my_model"
    save_model(estimator.model, estimator.card, folder)
    with qtbot.waitSignal(w.models.modelShown, timeout=HANG_GUARD_MS):
        assert w.load_model(folder)
    assert w.model_path == str(folder)
    file_menu = w.menuBar().actions()[0].menu()
    action = next(a for a in file_menu.actions() if a.text() == "Analyse videos…")
    action.trigger()
    dialog = w.findChild(AnalyseDialog)
    assert dialog is not None and dialog.model_edit.text() == str(folder)
    dialog.close()
    w.shutdown()
