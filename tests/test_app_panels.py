"""The training panels drive real `cpm` processes through QProcess: a tiny run streams to `done` into the
plots, Stop ends a run with a checkpoint, a crashing run shows its error and the panel stays usable, and the
evaluation panel shows `cpm eval`'s results."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.panels import DistillPanel, EvaluatePanel, TrainingProcess, TrainPanel
from app.panels.run_config import build_run_config, split_settings, to_toml

ROOT = Path(__file__).resolve().parents[1]
TINY_COCO = ROOT / "tests" / "fixtures" / "dataset" / "tiny_coco" / "tiny.json"
RUN_MS = 120_000


def tiny_panel(qtbot, tmp_path: Path, steps: int, cls=TrainPanel) -> TrainPanel:
    panel = cls()
    qtbot.addWidget(panel)
    panel.dataset_edit.setText(str(TINY_COCO))
    panel.val_edit.setText(str(TINY_COCO))
    panel.spec_edit.setText("input_size=64, stages=2, width=0.125")
    panel.steps_spin.setValue(steps)
    panel.batch_spin.setValue(4)
    panel.output_edit.setText(str(tmp_path / "run"))
    return panel


def test_config_is_valid_toml():
    import tomllib

    cfg = {"name": "x", "data": {"train": ["a b.json"], "val_split": 0.1}, "model": {"spec": {"stages": 2}}}
    assert tomllib.loads(to_toml(cfg)) == cfg
    items = split_settings("input_size=64, width=0.125; trunk=body")
    assert items == ["input_size=64", "width=0.125", "trunk=body"]
    run = build_run_config([f"model.spec.{i}" for i in items])  # values parsed by training.config
    assert run.model.spec == {"input_size": 64, "width": 0.125, "trunk": "body"}


def test_tiny_training_streams_into_the_plots(qtbot, tmp_path):
    panel = tiny_panel(qtbot, tmp_path, steps=6)
    steps: list = []
    panel.process.step.connect(steps.append)
    with qtbot.waitSignal(panel.process.finished, timeout=RUN_MS) as finished:
        assert panel.start()
        assert not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
    assert finished.args == [0], panel.process.stderr_tail()
    assert panel.last_error == ""
    curve = panel.live.loss_curve  # xData/yData: the points as given (getData() is log10 in log mode)
    xs, ys = curve.xData, curve.yData
    assert list(xs) == [e.step for e in steps] == list(range(1, 7))
    assert list(ys) == pytest.approx([e.loss for e in steps])
    assert len(panel.live.stage_curves) == 2
    assert len(panel.live.pcks) >= 1 and 0 <= panel.live.pcks[-1] <= 1
    assert panel.live.progress.value() == 6
    assert (tmp_path / "run" / "run.toml").exists()
    assert panel.load_button.isEnabled() and panel.start_button.isEnabled()
    with qtbot.waitSignal(panel.model_ready) as ready:
        panel.load_button.click()
    assert Path(ready.args[0], "card.json").exists()


def test_stop_ends_the_run_with_a_checkpoint(qtbot, tmp_path):
    panel = tiny_panel(qtbot, tmp_path, steps=1_000_000)
    checkpoints: list = []
    done: list = []
    panel.process.checkpoint.connect(checkpoints.append)
    panel.process.done.connect(done.append)
    with qtbot.waitSignal(panel.process.step, timeout=RUN_MS):
        panel.start()
    with qtbot.waitSignal(panel.process.finished, timeout=60_000):
        panel.stop_button.click()
    assert checkpoints and checkpoints[-1].reason == "stop"
    assert done and done[-1].stopped is True
    assert panel.start_button.isEnabled() and not panel.stop_button.isEnabled()


def test_crashing_run_shows_error_and_panel_lives_on(qtbot, tmp_path):
    panel = tiny_panel(qtbot, tmp_path, steps=3)
    panel.dataset_edit.setText(str(tmp_path / "missing.json"))
    assert panel.start() is False  # the form checks the data before a process starts
    assert "missing.json" in panel.last_error and not panel.process.is_running()
    # a run that fails by itself (a .json that is not JSON: the form cannot tell) reports through the protocol
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    panel.dataset_edit.setText(str(broken))
    with qtbot.waitSignal(panel.process.finished, timeout=RUN_MS):
        assert panel.start(), panel.last_error
    assert "broken.json" in panel.last_error and "error" in panel.live.status.text()
    assert "error" in panel.live.status.text() and panel.start_button.isEnabled()
    # A process that dies without the protocol's error event (here: a bad command line) is reported with
    # the tail of its stderr.
    proc = TrainingProcess()
    errors: list[str] = []
    proc.error.connect(errors.append)
    with qtbot.waitSignal(proc.finished, timeout=RUN_MS) as finished:
        proc.start(["no-such-command"])
    assert finished.args[0] != 0 and errors and "invalid choice" in errors[-1]
    # The form still validates and the panel can be set up again.
    panel.dataset_edit.setText("")
    assert panel.start() is False and "training data" in panel.live.status.text()


def test_distill_panel_builds_a_distill_config(qtbot, tmp_path):
    panel = tiny_panel(qtbot, tmp_path, steps=3, cls=DistillPanel)
    with pytest.raises(ValueError, match="teacher"):
        panel.build_config()
    panel.teacher_edit.setText(str(tmp_path / "teacher.tflite"))
    panel.alpha_spin.setValue(0.5)
    cfg = panel.build_config()
    assert (cfg.distill.teacher, cfg.distill.alpha, cfg.distill.confidence) == (str(tmp_path / "teacher.tflite"),
                                                                               0.5, 0.5)
    assert cfg.data.train == [str(TINY_COCO)] and cfg.train.steps == 3
    assert panel.command == "distill" and panel.live is not None  # the same live view as training


def test_evaluate_panel_shows_results(qtbot, tmp_path):
    from cpm_core.model_card import ModelCard
    from cpm_core.network import build_cpm
    from cpm_core.skeleton import HAND_21
    from cpm_core.spec import ModelSpec
    from cpm_core.weights import save_model

    spec = ModelSpec(name="u", input_size=64, stages=2, num_joints=21, stride=8, width=0.125)
    model = save_model(build_cpm(spec), ModelCard(spec=spec, skeleton=HAND_21), tmp_path / "m")
    panel = EvaluatePanel()
    qtbot.addWidget(panel)
    panel.model_edit.setText(str(model))
    panel.dataset_edit.setText(str(TINY_COCO))
    panel.out_edit.setText(str(tmp_path / "ev"))
    with qtbot.waitSignal(panel.evaluated, timeout=RUN_MS) as got:
        assert panel.start()
    result = got.args[0]
    assert result["subjects"] == 4 and len(result["per_joint"]) == 21
    assert len(panel.bars.opts["width"]) == 21  # horizontal bars: one row per joint
    xs, _ = panel.curve.getData()
    assert len(xs) == 51 and "PCK@0.2" in panel.summary.text() and "95% interval" in panel.summary.text()


def test_evaluate_runs_the_viewers_model_when_no_model_is_given(window, qtbot, tmp_path, estimator):
    """A user who has a model open in the viewer and picks only a dataset evaluates that model; the field says
    so. A model loaded from a file replaces it; a model handed over in memory has no file and asks for one."""
    from cpm_core.weights import save_model

    panel = window.evaluate_panel
    panel.dataset_edit.setText(str(TINY_COCO))
    assert panel.viewer_model is None and not panel.start()  # the fixture's window got its model in memory
    assert "choose a model" in panel.summary.text()
    folder = save_model(estimator.model, estimator.card, tmp_path / "shown")
    with qtbot.waitSignal(window.models.modelShown, timeout=RUN_MS):
        assert window.load_model(folder)
    assert panel.viewer_model == str(folder)
    assert estimator.card.name in panel.model_edit.placeholderText()
    panel.out_edit.setText(str(tmp_path / "ev"))
    with qtbot.waitSignal(panel.evaluated, timeout=RUN_MS) as got:
        assert panel.start()
    assert got.args[0]["subjects"] == 4
    assert got.args[0]["model"] == str(folder)
