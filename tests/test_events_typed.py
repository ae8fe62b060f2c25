"""The training protocol's typed events (training/events.py): one class per event shared by writer and reader.

What must hold: the JSON on the wire is what the hand-built dicts wrote (same keys, same order; checked on a
real tiny `cpm train` run against the keys recorded from the dict-writing code), a line round-trips to an equal
event, fields a newer writer adds survive in `extra`, fields an older writer leaves out read as defaults, and
anything that is not an event reads as None.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from run_configs import write_tiny_config

from training.events import (
    EVENT_TYPES,
    CheckpointEvent,
    DoneEvent,
    EpochEvent,
    ErrorEvent,
    EvalEvent,
    EventWriter,
    StartEvent,
    StepEvent,
    parse_line,
)

ROOT = Path(__file__).resolve().parents[1]

# The keys, in order, of each event of a tiny `cpm train` run as written before the typed classes existed
# (training/loop.py's EventWriter.emit(name, **fields) at commit fd99ced).
WIRE_KEYS = {
    "start": ["event", "time", "kind", "output", "steps", "start_step", "resumed_from", "skipped_checkpoints",
              "removed_temp", "data_notes", "batch", "precision", "strategy", "replicas", "worker", "workers",
              "chief", "spec", "train_subjects", "val_subjects", "machine"],
    "epoch": ["event", "time", "epoch", "step"],
    "step": ["event", "time", "step", "steps", "loss", "loss_per_stage", "lr", "images_per_s", "elapsed_s"],
    "eval": ["event", "time", "step", "pck", "epe", "pck_per_joint", "joints"],
    "checkpoint": ["event", "time", "step", "path", "reason"],
    "done": ["event", "time", "step", "model", "stopped", "reason", "wall_time_s", "leg_wall_time_s", "metrics"],
}
# `cpm distill`'s eval event (a tiny run with the .tflite keypoint teacher, same commit)
DISTILL_EVAL_KEYS = WIRE_KEYS["eval"] + ["student_pck", "teacher_kind", "teacher_pck", "teacher_epe_crop_px",
                                         "teacher_fps", "student_fps"]

SAMPLES = [
    StartEvent(kind="train", output="out", steps=40, start_step=10, resumed_from="out/checkpoints/ckpt-10",
               skipped_checkpoints=[{"path": "ckpt-12", "error": "truncated"}], removed_temp=["ckpt-14_temp"],
               data_notes=["a.json: dropped 1 record"], batch=4, precision="float32", strategy="default",
               replicas=1, worker=0, workers=1, chief=True, spec={"input_size": 64}, train_subjects=3,
               val_subjects=3, machine="x86_64, 2 cores"),
    StepEvent(step=2, steps=6, loss=1.5, loss_per_stage=[0.75, 0.75], lr=0.003, images_per_s=9.8, elapsed_s=1.2),
    EpochEvent(epoch=1, step=1),
    EvalEvent(step=3, pck=0.5, epe=2.0, pck_per_joint=[0.5, None], joints=["a", "b"]),
    EvalEvent(step=3, pck=0.5, epe=2.0, pck_per_joint=[0.5], joints=["a"], student_pck=0.5, teacher_kind="cpm",
              teacher_pck=0.7, teacher_epe_crop_px=1.0, teacher_fps=100.0, student_fps=200.0),
    CheckpointEvent(step=3, path="out/checkpoints/ckpt-3", reason="periodic"),
    DoneEvent(step=6, model="out/model", stopped=False, reason="finished", wall_time_s=2.5, leg_wall_time_s=1.0,
              metrics={"pck@0.2": 0.5}),
    DoneEvent(step=6, model=None, stopped=True, reason="SIGTERM", wall_time_s=2.5, leg_wall_time_s=1.0, worker=1,
              chief=False),
    ErrorEvent(message="ValueError: no teacher"),
]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.NAME)
def test_a_written_event_reads_back_equal(event):
    stream = io.StringIO()
    written = EventWriter(stream).write(event)
    line = stream.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    back = parse_line(line)
    assert type(back) is type(event) and back == written and back.extra == {}
    record = json.loads(line)
    assert record["event"] == event.NAME and isinstance(record["time"], float)
    assert back["event"] == event.NAME  # indexing by wire key, for scripts that treat events as JSON


def test_every_event_has_a_class_and_the_documented_names():
    assert set(EVENT_TYPES) == {"start", "step", "epoch", "eval", "checkpoint", "done", "error"}
    for name, cls in EVENT_TYPES.items():
        assert cls.NAME == name
        cls()  # every field has a default: a line missing fields still reads


def test_optional_fields_are_left_off_when_unset_and_nan_is_null():
    train_eval = json.loads(EvalEvent(step=1, pck=float("nan"), epe=1.0).to_json())
    assert list(train_eval) == WIRE_KEYS["eval"] and train_eval["pck"] is None
    distill_eval = json.loads(SAMPLES[4].to_json())
    assert list(distill_eval) == DISTILL_EVAL_KEYS
    chief_done = json.loads(SAMPLES[6].to_json())
    assert list(chief_done) == WIRE_KEYS["done"]
    worker_done = json.loads(SAMPLES[7].to_json())
    assert list(worker_done) == WIRE_KEYS["done"] + ["worker", "chief"] and worker_done["model"] is None


def test_unknown_fields_are_kept_and_written_back():
    line = json.dumps({"event": "step", "time": 1.0, "step": 4, "loss": 2.0, "grad_norm": 0.3, "gpu": {"mem": 1}})
    ev = parse_line(line)
    assert isinstance(ev, StepEvent) and ev.step == 4 and ev.loss == 2.0
    assert ev.extra == {"grad_norm": 0.3, "gpu": {"mem": 1}}
    again = json.loads(ev.to_json())
    assert again["grad_norm"] == 0.3 and again["gpu"] == {"mem": 1} and again["time"] == 1.0


def test_missing_fields_and_nulls_read_as_defaults():
    ev = parse_line('{"event": "start", "time": 5, "kind": "train", "steps": null}')
    assert isinstance(ev, StartEvent)
    assert ev.steps == 0 and ev.start_step == 0 and ev.data_notes == [] and ev.train_subjects is None
    assert ev.time == 5.0
    done = parse_line('{"event": "done", "step": 3, "metrics": null, "model": null}')
    assert done.metrics == {} and done.model is None and done.stopped is False and done.time is None


@pytest.mark.parametrize("line", ["", "hello", "{not json", "[1, 2]", '{"no": "event"}', '{"event": "lunch"}',
                                  '{"event": ["step"]}', '"step"'])
def test_anything_else_is_not_an_event(line):
    assert parse_line(line) is None


def test_emit_by_name_checks_names_and_fields():
    stream = io.StringIO()
    writer = EventWriter(stream)
    ev = writer.emit("checkpoint", step=3, path="p", reason="stop")
    assert isinstance(ev, CheckpointEvent) and parse_line(stream.getvalue()) == ev
    with pytest.raises(ValueError, match="unknown event"):
        writer.emit("lunch")
    with pytest.raises(TypeError):
        writer.emit("step", stepz=3)


def test_distill_writer_adds_the_teacher_comparison_to_eval():
    from training.distill import DistillEvents

    stream = io.StringIO()
    summary = {"teacher_kind": "keypoints", "teacher_fps": 50.0, "student_fps": 80.0}
    DistillEvents(summary, stream).write(EvalEvent(step=2, pck=0.25, epe=3.0, pck_per_joint=[0.25], joints=["a"]))
    ev = parse_line(stream.getvalue())
    assert isinstance(ev, EvalEvent) and ev.student_pck == 0.25 and ev.teacher_kind == "keypoints"
    assert ev.teacher_pck is None and ev.extra == {}
    assert list(json.loads(stream.getvalue())) == [k for k in DISTILL_EVAL_KEYS if k not in
                                                   ("teacher_pck", "teacher_epe_crop_px")]


def test_a_real_tiny_run_writes_the_same_keys_as_before(tmp_path):
    cfg = write_tiny_config(tmp_path / "run.toml", 6, {"eval_every": 3, "checkpoint_every": 3})
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run([sys.executable, "-m", "training.cli", "train", str(cfg)], cwd=ROOT, env=env, text=True,
                         capture_output=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    seen: dict[str, list[str]] = {}
    for line in lines:
        ev = parse_line(line)
        assert ev is not None, line
        keys = list(json.loads(line))
        assert keys == WIRE_KEYS[ev.NAME], (ev.NAME, keys)
        assert json.loads(ev.to_json()) == json.loads(line)  # read then written back: the same object
        seen[ev.NAME] = keys
    assert set(seen) == set(WIRE_KEYS)
