"""Train / Evaluate defects found in a real window (issue #21 items 15-19) and the panels' run configuration
built by training.config (issue #20 item 4), on the real widgets.

Runs are real processes: a small protocol speaker (a Python script written here that talks docs/protocol.md on
stdout and records its command line) stands in for `cpm train` where the panel's handling of the protocol is
under test, so the checks are exact and need no TensorFlow training.
"""

from __future__ import annotations

import json
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest
from app_support import IMAGE
from PySide6.QtCore import QTimer
from PySide6.QtGui import QImage, QPainter

from app.panels import EvaluatePanel, TrainPanel
from cpm_core.skeleton import HAND_21
from training.config import RunConfig, load_config
from training.events import StartEvent, StepEvent

ROOT = Path(__file__).resolve().parents[1]
TINY_COCO = ROOT / "tests" / "fixtures" / "dataset" / "tiny_coco" / "tiny.json"
RUN_MS = 60_000

SPEAKER = textwrap.dedent('''
    """A stand-in for `cpm train`: records its arguments, speaks the protocol, stops at step 23 when asked."""
    import json, sys, time

    def emit(event, **fields):
        print(json.dumps({"event": event, "time": time.time(), **fields}), flush=True)

    mode, args = sys.argv[1], sys.argv[2:]
    out = args[args.index("--output") + 1]
    with open(out + "/argv.json", "w") as fh:
        json.dump(args, fh)
    if mode == "error":
        print("cpm train: the data is bad", file=sys.stderr, flush=True)
        emit("error", message="the data is bad")
        sys.exit(1)
    emit("start", kind="train", steps=1000, start_step=0, train_subjects=3, val_subjects=1)
    for step in (10, 20):
        emit("step", step=step, steps=1000, loss=1.0 / step, loss_per_stage=[0.6 / step, 0.4 / step])
    if mode == "quick":
        emit("done", step=20, model=out + "/model", stopped=False)
        sys.exit(0)
    sys.stdin.readline()  # "stop"
    emit("checkpoint", step=23, path=out + "/checkpoints/ckpt-23", reason="stop")
    emit("done", step=23, model=out + "/model", stopped=True)
''')


@pytest.fixture
def speaker(tmp_path) -> Path:
    path = tmp_path / "speaker.py"
    path.write_text(SPEAKER)
    return path


def make_panel(qtbot, tmp_path: Path, speaker: Path | None = None, mode: str = "quick") -> TrainPanel:
    panel = TrainPanel()
    qtbot.addWidget(panel)
    panel.dataset_edit.setText(str(TINY_COCO))
    panel.val_edit.setText(str(TINY_COCO))
    panel.spec_edit.setText("input_size=64, stages=2, width=0.125")
    panel.steps_spin.setValue(1000)
    panel.output_edit.setText(str(tmp_path / "run"))
    if speaker is not None:
        panel.process.program = [sys.executable, str(speaker), mode]
    return panel


def drawn_labels(axis) -> list[tuple[object, str]]:
    """(rect, text) of every tick label the pyqtgraph axis draws at its current size."""
    image = QImage(4, 4, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [(rect, text) for rect, _, text in specs[2]]


def settle(widget) -> None:
    """Render the widget twice, as two repaints would: a pyqtgraph axis sizes itself to its labels while painting,
    and lays its labels out in that size on the next paint."""
    from PySide6.QtWidgets import QApplication

    for _ in range(2):
        widget.grab()
        QApplication.processEvents()


def overlapping(labels) -> list[tuple[str, str]]:
    return [(a[1], b[1]) for k, a in enumerate(labels) for b in labels[k + 1:] if a[0].intersects(b[0])]


# ---------------------------------------------------------------------------------------------- issue #20 item 4
def test_the_form_becomes_a_run_config_that_cpm_train_reads_back(qtbot, tmp_path):
    panel = make_panel(qtbot, tmp_path)
    panel.spec_edit.setText("input_size=64; stages=2, width=0.125")
    cfg = panel.build_config()
    assert isinstance(cfg, RunConfig)
    assert cfg.data.train == [str(TINY_COCO)] and cfg.data.val == [str(TINY_COCO)]
    assert cfg.model.spec == {"input_size": 64, "stages": 2, "width": 0.125}
    assert cfg.model_spec().input_size == 64 and cfg.train.steps == 1000
    from app.panels.run_config import write_run_config

    path = write_run_config(tmp_path / "run" / "run.toml", cfg)
    again = load_config(path)
    mine, theirs = cfg.to_dict(), again.to_dict()
    mine.pop("base_dir"), theirs.pop("base_dir")
    assert mine == theirs
    assert "augment" not in tomllib.loads(path.read_text())  # only what differs from the defaults is written
    # the trainer's own checks refuse what it would refuse
    panel.spec_edit.setText("stagez=2")
    with pytest.raises(ValueError, match="stagez"):
        panel.build_config()
    panel.spec_edit.setText("stages")
    with pytest.raises(ValueError, match="key=value"):
        panel.build_config()


# ---------------------------------------------------------------------------------------------- item 15
def answer(panel: TrainPanel, button: str) -> None:
    """Click `button` in the panel's question once it is shown (polled from the question's own event loop)."""
    def click() -> None:
        box = panel.existing_box
        if box is None or not box.isVisible():
            QTimer.singleShot(10, click)
            return
        next(b for b in box.buttons() if b.text().replace("&", "") == button).click()
    QTimer.singleShot(0, click)


def earlier_run(out: Path) -> dict[Path, bytes]:
    """An output folder as a finished run leaves it, plus a file of the user's; returns every file's bytes."""
    (out / "model").mkdir(parents=True)
    (out / "model" / "card.json").write_text('{"name": "old"}')
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-100"')
    (out / "checkpoints" / "ckpt-100.index").write_bytes(b"old")
    (out / "metrics.csv").write_text("step,loss\n100,0.5\n")
    (out / "notes.txt").write_text("mine")
    return {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_output_folder_holding_a_run_asks_first(qtbot, tmp_path, speaker):
    out = tmp_path / "run"
    before = earlier_run(out)
    panel = make_panel(qtbot, tmp_path, speaker)

    answer(panel, "Cancel")
    assert panel.start() is False and not panel.process.is_running()
    assert {p: p.read_bytes() for p in before} == before and "holds a run" in panel.live.status.text()

    answer(panel, "New folder")
    with qtbot.waitSignal(panel.process.finished, timeout=RUN_MS):
        assert panel.start()
    fresh = tmp_path / "run-2"
    assert panel.output_edit.text() == str(fresh)
    args = json.loads((fresh / "argv.json").read_text())
    assert args[args.index("--output") + 1] == str(fresh) and "--resume" not in args
    assert load_config(fresh / "run.toml").name == "run-2"
    assert {p: p.read_bytes() for p in before} == before  # the earlier run is untouched

    panel.output_edit.setText(str(out))
    answer(panel, "Resume")
    with qtbot.waitSignal(panel.process.finished, timeout=RUN_MS):
        assert panel.start()
    assert "--resume" in json.loads((out / "argv.json").read_text())
    assert all(p.read_bytes() == b for p, b in before.items())

    answer(panel, "Overwrite")
    with qtbot.waitSignal(panel.process.finished, timeout=RUN_MS):
        assert panel.start()
    assert "--resume" not in json.loads((out / "argv.json").read_text())
    assert not (out / "model").exists() and not (out / "checkpoints").exists() and not (out / "metrics.csv").exists()
    assert (out / "notes.txt").read_text() == "mine"  # only the run's outputs go

    # a folder without a run starts at once, no question
    panel.output_edit.setText(str(tmp_path / "empty"))
    with qtbot.waitSignal(panel.process.finished, timeout=RUN_MS):
        assert panel.start()
    assert panel.existing_box is None and (tmp_path / "empty" / "argv.json").exists()


# ---------------------------------------------------------------------------------------------- item 16
def test_progress_says_no_run_when_idle_and_ends_on_the_stop_step(qtbot, tmp_path, speaker):
    panel = make_panel(qtbot, tmp_path, speaker, mode="slow")
    assert "0 / 1" not in panel.live.progress.text() and panel.live.progress.text() == "no run"
    steps: list[dict] = []
    panel.process.step.connect(steps.append)
    panel.start()
    qtbot.waitUntil(lambda: len(steps) == 2, timeout=RUN_MS)
    assert panel.live.progress.text() == "20 / 1000 steps"
    with qtbot.waitSignal(panel.process.finished, timeout=RUN_MS):
        panel.stop_button.click()
    assert panel.live.progress.value() == 23  # the step the run stopped at, not the last step event's 20
    assert panel.live.progress.text() == "stopped at step 23 of 1000"
    panel.live.reset()
    assert panel.live.progress.text() == "no run"


# ---------------------------------------------------------------------------------------------- item 17
def test_loss_plot_labels_do_not_stack_and_the_legend_is_beside_the_curves(qtbot):
    from app.panels import TrainingLiveView

    live = TrainingLiveView()
    qtbot.addWidget(live)
    live.resize(900, 360)
    live.show()
    qtbot.waitExposed(live)
    live.on_start(StartEvent(steps=100, start_step=0))
    for k, loss in enumerate(np.geomspace(0.6, 0.05, 40)):
        live.on_step(StepEvent(step=k + 1, loss=float(loss), loss_per_stage=[0.6 * loss, 0.4 * loss]))
    live.redraw()
    plot = live.loss_plot.getPlotItem()
    plot.vb.autoRange()
    qtbot.waitUntil(lambda: plot.vb.height() > 50)
    settle(live)
    labels = drawn_labels(plot.getAxis("left"))
    assert len(labels) >= 2 and not overlapping(labels), labels
    view = plot.vb.sceneBoundingRect()
    for p in (live.loss_plot, live.pck_plot):
        legend = p.getPlotItem().legend
        assert len(legend.items) >= 1
        assert legend.sceneBoundingRect().left() >= p.getPlotItem().vb.sceneBoundingRect().right() - 1
    assert [item[1].text for item in plot.legend.items] == ["total", "stage 1", "stage 2"]
    assert view.width() > 300  # the legend's column leaves the curves their room


# ---------------------------------------------------------------------------------------------- item 18
def eval_result() -> dict:
    joints = HAND_21.joints
    thresholds = [round(0.01 * k, 2) for k in range(51)]
    return {"per_joint": [{"joint": j, "pck": 0.3 + 0.03 * k} for k, j in enumerate(joints)],
            "curve": {"thresholds": thresholds, "pck": [min(1.0, 2 * t) for t in thresholds]},
            "pck": 0.61, "epe_px": 4.2, "pck_ci95": [0.5, 0.7], "threshold": 0.2, "subjects": 4, "margin": 1.6}


def test_evaluate_joint_names_readable_and_threshold_axis_unscaled(qtbot):
    panel = EvaluatePanel()
    qtbot.addWidget(panel)
    panel.resize(1000, 760)
    panel.show()
    qtbot.waitExposed(panel)
    panel.show_result(eval_result())
    qtbot.waitUntil(lambda: panel.bar_plot.getPlotItem().vb.height() > 100)
    settle(panel)
    names = set(HAND_21.joints)
    labels = drawn_labels(panel.bar_plot.getPlotItem().getAxis("left"))
    assert len(labels) >= 8 and not overlapping(labels), labels
    assert all(text in names for _, text in labels), labels  # each label one joint's name
    axis = panel.curve_plot.getPlotItem().getAxis("bottom")
    assert "x0.001" not in axis.labelString() and axis.autoSIPrefixScale == 1.0
    lo, hi = panel.curve_plot.getPlotItem().vb.viewRange()[0]
    assert -0.02 <= lo <= 0.0 and 0.5 <= hi <= 0.52
    texts = [t for _, t in drawn_labels(axis)]
    values = [float(t) for t in texts]
    assert len(values) >= 3 and max(values) >= 0.3 and all(0 <= v <= 0.5 for v in values), texts  # not 0-500
    assert not overlapping(drawn_labels(axis))


# ---------------------------------------------------------------------------------------------- item 19
def test_bad_training_data_gets_one_clear_message_and_a_format_choice(qtbot, tmp_path, speaker):
    panel = make_panel(qtbot, tmp_path, speaker, mode="error")
    panel.dataset_edit.setText(str(IMAGE))
    assert panel.start() is False and not panel.process.is_running()
    log = panel.live.log_view.toPlainText()
    assert log.count("ERROR") == 1 and "Traceback" not in log
    status = panel.live.status.text()
    assert "hand.jpg is an image, not a labelled dataset" in status and "COCO .json" in status
    assert "give the format explicitly" not in log + status
    # a format choice: the formats a run reads, and a check that the data is that format
    formats = [panel.format_combo.itemData(i) for i in range(panel.format_combo.count())]
    assert formats[0] == "auto" and {"coco", "labels", "tfrecord", "cmu-hand", "project"} <= set(formats)
    unknown = tmp_path / "points.txt"
    unknown.write_text("1 2 3\n")
    panel.dataset_edit.setText(str(unknown))
    assert panel.start() is False
    assert "points.txt is not a dataset a run can tell" in panel.live.status.text()
    assert "choose its Data format" in panel.live.status.text()
    assert "give the format explicitly" not in panel.live.log_view.toPlainText()
    panel.dataset_edit.setText(str(TINY_COCO))
    panel.format_combo.setCurrentIndex(formats.index("labels"))  # a folder format for a file
    assert panel.start() is False and "a labels dataset is a folder" in panel.live.status.text()
    # a chosen format reaches the run: `cpm train` reads the data as that format (data.format)
    oddly_named = tmp_path / "hands.data"
    oddly_named.write_bytes(TINY_COCO.read_bytes())
    panel.dataset_edit.setText(str(oddly_named))
    panel.format_combo.setCurrentIndex(formats.index("coco"))
    cfg = panel.build_config()
    assert isinstance(cfg, RunConfig) and cfg.data.format == "coco"
    from training.data import load_datasets

    assert len(load_datasets([str(oddly_named)], fmt=cfg.data.format).samples) > 0
    panel.dataset_edit.setText(str(TINY_COCO))
    panel.format_combo.setCurrentIndex(0)
    assert isinstance(panel.build_config(), RunConfig) and panel.build_config().data.format == ""
    # an error the run itself reports is logged once too (the live view logs it; the panel no longer repeats it)
    panel.live.log_view.clear()
    with qtbot.waitSignal(panel.process.finished, timeout=RUN_MS):
        assert panel.start()
    log = panel.live.log_view.toPlainText()
    assert log.count("ERROR: the data is bad") == 1 and panel.last_error == "the data is bad"


def test_run_config_refuses_an_unknown_data_format():
    """`data.format` takes the dataset formats' names (or "" to tell them from the files); a typo is one clear
    error before any data is read."""
    from training.config import load_config

    assert load_config(None, ['data.format="cmu-hand"']).data.format == "cmu-hand"
    with pytest.raises(ValueError, match="data.format 'cocoo' is not a dataset format"):
        load_config(None, ['data.format="cocoo"'])
