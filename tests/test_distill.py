"""`cpm distill`: online distillation from a tiny CPM teacher and offline distillation from the real TFLite
hand landmark model, both as processes that stream the protocol to `done` and leave a card with the
student-vs-teacher comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from run_configs import TINY_COCO, write_tiny_config

from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.skeleton import HAND_21
from cpm_core.spec import ModelSpec
from cpm_core.weights import save_model
from training.events import parse_line
from training.teachers import CpmTeacher, KeypointTeacher, check_stage_map, default_stage_map

ROOT = Path(__file__).resolve().parents[1]
LITE_TEACHER = ROOT / "tests" / "fixtures" / "teachers" / "hand_landmark_lite.tflite"
TEACHER_SPEC = ModelSpec(name="teacher", input_size=96, stages=3, num_joints=21, stride=8, width=0.125)


def write_config(tmp_path: Path, teacher: Path, steps: int = 6, **distill) -> Path:
    return write_tiny_config(tmp_path / "distill.toml", steps, {"eval_every": 4, "checkpoint_every": 100},
                             distill={"teacher": str(teacher), **distill})


def run_cpm(args: list[str]) -> tuple[int, list[dict], str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run([sys.executable, "-m", "training.cli", *args], cwd=ROOT, env=env, text=True,
                         capture_output=True, timeout=180, stdin=subprocess.DEVNULL)
    events = [parse_line(line) for line in res.stdout.splitlines()]
    assert all(e is not None for e in events), res.stdout
    return res.returncode, events, res.stderr


@pytest.fixture(scope="module")
def cpm_teacher(tmp_path_factory) -> Path:
    model = build_cpm(TEACHER_SPEC)
    return save_model(model, ModelCard(spec=TEACHER_SPEC, skeleton=HAND_21, name="tiny teacher"),
                      tmp_path_factory.mktemp("teacher") / "model")


def test_default_stage_map_is_the_ports():
    assert default_stage_map(3, 6) == [2, 4, 6]
    assert default_stage_map(2, 3) == [2, 3]
    assert check_stage_map([], 3, 6) == [2, 4, 6]
    with pytest.raises(ValueError, match="2 entries"):
        check_stage_map([1, 2], 3, 6)
    with pytest.raises(ValueError, match="out of range"):
        check_stage_map([1, 7], 2, 6)


def test_teacher_heatmaps_are_resized_stage_outputs(cpm_teacher):
    """The online target for student stage s is the teacher's mapped stage on the crop resized to the teacher's
    input, resized to the student's grid."""
    teacher = CpmTeacher(cpm_teacher)
    rng = np.random.default_rng(0)
    student = rng.uniform(-0.5, 0.5, (2, 64, 64, 3)).astype(np.float32)
    got = teacher.stage_heatmaps(tf.constant(student), [1, 3], 16).numpy()
    assert got.shape == (2, 2, 16, 16, 22)
    pixels = tf.image.resize((student + 0.5) * 256.0, [96, 96])
    full = teacher.model(pixels / 256.0 - 0.5).numpy()
    want = tf.image.resize(full[:, 2], [16, 16]).numpy()
    np.testing.assert_allclose(got[:, 1], want, atol=1e-5)


def test_distill_from_cpm_teacher(tmp_path, cpm_teacher):
    code, events, err = run_cpm(["distill", str(write_config(tmp_path, cpm_teacher, alpha=0.5))])
    assert code == 0, err[-3000:]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and events[0]["kind"] == "distill" and kinds[-1] == "done"
    steps = [e for e in events if e["event"] == "step"]
    assert len(steps) == 3 and len(steps[0]["loss_per_stage"]) == 2 and np.isfinite(steps[-1]["loss"])
    evals = [e for e in events if e["event"] == "eval"]
    assert evals and {"student_pck", "teacher_pck", "teacher_fps", "student_fps"} <= set(evals[-1])
    card = json.loads((Path(events[-1]["model"]) / "card.json").read_text())
    m = card["metrics"]
    assert 0 <= m["teacher_pck"] <= 1 and m["student_pck@0.2"] == m["pck@0.2"]
    assert m["teacher_fps"] > 0 and m["student_fps"] > 0
    assert card["provenance"]["kind"] == "distill" and card["provenance"]["stage_map"] == [2, 3]


def test_keypoint_teacher_finds_the_hand():
    """The real landmark model on the fixture's labelled crops: its joints land near the labels."""
    from cpm_core.metrics import pck
    from training.data import build_cache, eval_arrays, load_datasets

    teacher = KeypointTeacher(LITE_TEACHER)
    cache = build_cache(load_datasets([str(TINY_COCO)]), 224, 1.5, 1.6)
    images, kps = eval_arrays(cache, 224, 1.6)
    pred, presence = teacher.keypoints(images)
    assert pred.shape == (len(images), 21, 2) and ((presence >= 0) & (presence <= 1)).all()
    _, mean = pck(pred, kps, cache.visibility > 0, np.full(len(images), 224 / 1.5), 0.2)
    assert presence.max() > 0.5 and mean > 0.5


def test_distill_from_tflite_teacher(tmp_path):
    code, events, err = run_cpm(["distill", str(write_config(tmp_path, LITE_TEACHER, confidence=0.5))])
    assert code == 0, err[-3000:]
    assert events[-1]["event"] == "done"
    evals = [e for e in events if e["event"] == "eval"]
    assert evals[-1]["teacher_kind"] == "keypoints" and evals[-1]["teacher_pck"] > 0.5
    card = json.loads((Path(events[-1]["model"]) / "card.json").read_text())
    prov, m = card["provenance"], card["metrics"]
    assert prov["teacher_kind"] == "keypoints" and prov["teacher_labelled"] >= 1
    assert prov["teacher_labelled"] + prov["teacher_skipped"] == 4
    assert m["teacher_fps"] > 0 and m["student_fps"] > 0 and "student_pck@0.2" in m


def test_missing_teacher_is_an_error_event(tmp_path, capsys):
    from training.cli import main

    assert main(["distill", str(write_config(tmp_path, tmp_path / "nope.tflite"))]) == 1
    events = [parse_line(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["event"] == "error" and "nope.tflite" in events[-1]["message"]
