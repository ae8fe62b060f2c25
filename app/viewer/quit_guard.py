"""Closing the window while a training or distillation run is in progress.

Why: the window used to ask every run to stop and kill it 20 s later, so closing the app during the hand recipe
cut its checkpoint and export short ("the process crashed", no model), as Stop once did. Now closing asks first;
if the user goes on, every run gets its clean stop (checkpoint, evaluation, export) for as long as that takes,
with a progress dialog whose "Kill now" is the only way to cut it short. `cpm-studio --quit` (scripted runs)
does not come through here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QEventLoop, Qt
from PySide6.QtWidgets import QMessageBox, QProgressDialog, QWidget

QUESTION = ("A training run is in progress. Quit anyway? The run is stopped cleanly first: it saves a checkpoint "
            "and exports its model, which can take a minute; continue it later with Resume (cpm train --resume).")
STOP_AND_QUIT = "Stop the run and quit"
KEEP_WORKING = "Keep working"
STOPPING_TEXT = "Stopping the training run: saving its checkpoint and model…"
KILL_NOW = "Kill now"


def running_runs(panels: Sequence) -> list:
    """The panels (Train, Distill) whose process is running."""
    return [p for p in panels if p.process.is_running()]


def ask_to_quit(parent: QWidget) -> bool:
    """True when the user chooses to stop the runs and quit."""
    box = QMessageBox(QMessageBox.Icon.Question, "Quit CPM Studio", QUESTION, parent=parent)
    stop = box.addButton(STOP_AND_QUIT, QMessageBox.ButtonRole.AcceptRole)
    box.addButton(KEEP_WORKING, QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(stop)
    box.exec()
    return box.clickedButton() is stop


def stop_runs_cleanly(parent: QWidget, runs: Sequence) -> None:
    """Ask every run to stop and wait, with the event loop running, until each has ended; the dialog's
    "Kill now" kills whatever is left."""
    processes = [p.process for p in runs]
    for proc in processes:
        proc.stop()
    if not any(proc.is_running() for proc in processes):
        return
    dialog = QProgressDialog(STOPPING_TEXT, KILL_NOW, 0, 0, parent)
    dialog.setWindowTitle("Quit CPM Studio")
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(0)
    loop = QEventLoop()

    def check(*_args) -> None:
        if not any(proc.is_running() for proc in processes):
            loop.quit()

    def kill() -> None:
        for proc in processes:
            if proc.is_running():
                proc.kill()
        check()

    for proc in processes:
        proc.finished.connect(check)
    dialog.canceled.connect(kill)
    dialog.show()
    check()
    if any(proc.is_running() for proc in processes):
        loop.exec()
    dialog.close()
    for proc in processes:
        proc.finished.disconnect(check)


def confirm_quit(parent: QWidget, panels: Sequence, ask: Callable[[QWidget], bool] | None = None) -> bool:
    """Whether the window may close: True at once when no run is in progress; else the user is asked (`ask`),
    and on yes every run is stopped cleanly before this returns."""
    runs = running_runs(panels)
    if not runs:
        return True
    if not (ask or ask_to_quit)(parent):
        return False
    stop_runs_cleanly(parent, runs)
    return True
