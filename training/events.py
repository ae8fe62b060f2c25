"""The JSON-lines protocol between a training process and whoever started it (the GUI, a shell, a cluster).

One JSON object per line on stdout, each with an "event" and a "time" field; docs/protocol.md explains when each
event is sent. stdout carries nothing else (TensorFlow's chatter goes to stderr), so a reader can parse every
line it gets.

The classes below are the contract: one dataclass per event, written by `EventWriter.write` (the training loop,
`cpm train` / `cpm distill`'s error handlers) and read back by `parse_line` (the app's `TrainingProcess`, the
tests). Writer and reader share them so a field is named, typed and documented once; before, the writers built
dicts by hand and every reader guessed at keys with `.get()` defaults.

Compatibility rules, both ways:
- every field has a default, so a line from an older writer (or a stand-in speaker that sends only some fields)
  still reads; a `null` where the field has a non-null default reads as that default;
- fields this version does not know are kept, in order, in `extra` (a newer writer's additions survive a
  read and are written back as they came);
- the JSON on the wire is what the hand-built dicts wrote: the same keys in the same order. Fields listed in a
  class's `OMIT_WHEN_NONE` are left off the line when unset (the distillation comparison on `eval`, a non-chief
  worker's `worker` / `chief` on `done`); every other field is always written, `null` included.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TextIO


def _clean(value: Any) -> Any:
    """JSON has no NaN or inf; report them as null rather than emit invalid JSON. numpy scalars and arrays
    become plain numbers and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return _clean(value.item())
    if hasattr(value, "tolist"):
        return _clean(value.tolist())
    return value


@dataclass(kw_only=True)
class Event:
    """What every event carries: `time` (Unix seconds, 3 decimals; stamped by `EventWriter.write`) and `extra`
    (fields a newer writer sent that this class does not name, kept for forward compatibility)."""

    NAME: ClassVar[str] = ""
    OMIT_WHEN_NONE: ClassVar[frozenset[str]] = frozenset()

    time: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The event as the JSON object on the wire: "event", "time", the named fields in declaration order,
        then `extra`; NaN and inf as None."""
        record: dict[str, Any] = {"event": self.NAME, "time": self.time}
        for f in dataclasses.fields(self):
            if f.name in ("time", "extra"):
                continue
            value = getattr(self, f.name)
            if value is None and f.name in self.OMIT_WHEN_NONE:
                continue
            record[f.name] = _clean(value)
        for key, value in self.extra.items():
            record.setdefault(key, _clean(value))
        return record

    def to_json(self) -> str:
        """One protocol line, without the newline."""
        return json.dumps(self.to_record())

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Event:
        """Build the event from its JSON object: unknown keys go to `extra`, missing keys (and nulls where the
        field's default is not null) take the field's default."""
        known = {f.name: f for f in dataclasses.fields(cls) if f.name not in ("time", "extra")}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in record.items():
            if key in ("event", "time"):
                continue
            if key not in known:
                extra[key] = value
            elif value is not None or _default_is_none(known[key]):
                values[key] = value
        moment = record.get("time")
        return cls(time=float(moment) if isinstance(moment, (int, float)) else None, extra=extra, **values)

    # Reading an event as the JSON object it is (`ev["step"]`, `"teacher_pck" in ev`, `set(ev)`): for scripts
    # and tests written against the dicts parse_line used to return. Code in the app reads the attributes; there
    # is deliberately no `.get()`, whose silent defaults the classes replace.
    def __getitem__(self, key: str) -> Any:
        """The wire value of `key`; KeyError when the line would not carry it."""
        return self.to_record()[key]

    def __iter__(self) -> Iterator[str]:
        """The wire keys, in order."""
        return iter(self.to_record())

    def __contains__(self, key: object) -> bool:
        return key in self.to_record()


def _default_is_none(f: dataclasses.Field) -> bool:
    return f.default is None


@dataclass(kw_only=True)
class StartEvent(Event):
    """Once, after the data are cached and the model is built."""

    NAME: ClassVar[str] = "start"

    kind: str = ""  # "train" / "distill"
    output: str = ""  # the run folder
    steps: int = 0  # total steps of the run
    start_step: int = 0  # > 0 when resumed
    resumed_from: str | None = None  # the checkpoint restored on --resume
    skipped_checkpoints: list[dict[str, Any]] = field(default_factory=list)  # broken ones passed over, and why
    removed_temp: list[str] = field(default_factory=list)  # unfinished `ckpt-*_temp` saves removed
    data_notes: list[str] = field(default_factory=list)  # per dataset: records the reader dropped, and why
    batch: int = 0  # global batch
    precision: str = ""  # "float32" / "bfloat16"
    strategy: str = ""
    replicas: int = 1
    worker: int = 0  # this process's index in a multi-worker run
    workers: int = 1
    chief: bool = True
    spec: dict[str, Any] = field(default_factory=dict)  # ModelSpec.to_dict()
    train_subjects: int | None = None
    val_subjects: int = 0
    machine: str = ""


@dataclass(kw_only=True)
class StepEvent(Event):
    """Every `train.log_every` steps and at the last step."""

    NAME: ClassVar[str] = "step"

    step: int = 0
    steps: int = 0
    loss: float | None = None  # summed over stages
    loss_per_stage: list[float | None] = field(default_factory=list)
    lr: float | None = None
    images_per_s: float | None = None  # since the previous step event
    elapsed_s: float | None = None


@dataclass(kw_only=True)
class EpochEvent(Event):
    """Each time `step` crosses a multiple of (training subjects // batch)."""

    NAME: ClassVar[str] = "epoch"

    epoch: int = 0
    step: int = 0


@dataclass(kw_only=True)
class EvalEvent(Event):
    """Every `train.eval_every` steps (not at the last) and once at the end, when there is a validation set.
    `cpm distill` adds the teacher comparison (the fields after `joints`); `cpm train` leaves them off."""

    NAME: ClassVar[str] = "eval"
    OMIT_WHEN_NONE: ClassVar[frozenset[str]] = frozenset(
        {"student_pck", "teacher_kind", "teacher_pck", "teacher_epe_crop_px", "teacher_fps", "student_fps"})

    step: int = 0
    pck: float | None = None  # mean PCK@0.2, box-normalised; None when NaN
    epe: float | None = None  # crop pixels
    pck_per_joint: list[float | None] = field(default_factory=list)  # None for never-labelled joints
    joints: list[str] = field(default_factory=list)
    student_pck: float | None = None  # = pck
    teacher_kind: str | None = None  # "cpm" / "keypoints"
    teacher_pck: float | None = None  # only when the teacher could be scored on the validation set
    teacher_epe_crop_px: float | None = None
    teacher_fps: float | None = None
    student_fps: float | None = None


@dataclass(kw_only=True)
class CheckpointEvent(Event):
    """Every `train.checkpoint_every` steps, and once at the end or on stop."""

    NAME: ClassVar[str] = "checkpoint"

    step: int = 0
    path: str = ""  # the checkpoint prefix
    reason: str = ""  # "periodic" / "final" / "stop"


@dataclass(kw_only=True)
class DoneEvent(Event):
    """The last line of a run that ended normally or was stopped."""

    NAME: ClassVar[str] = "done"
    OMIT_WHEN_NONE: ClassVar[frozenset[str]] = frozenset({"worker", "chief"})

    step: int = 0
    model: str | None = None  # the exported model folder; None from a multi-worker run's non-chief workers
    stopped: bool = False
    reason: str = ""  # "finished", "stop requested", "SIGTERM", "SIGINT"
    wall_time_s: float | None = None  # summed over every resumed leg
    leg_wall_time_s: float | None = None  # this leg
    metrics: dict[str, Any] = field(default_factory=dict)  # the card's metrics
    worker: int | None = None  # only from a non-chief worker
    chief: bool | None = None  # only from a non-chief worker (False)


@dataclass(kw_only=True)
class ErrorEvent(Event):
    """The last line of a run that failed; the traceback, if any, is on stderr."""

    NAME: ClassVar[str] = "error"

    message: str = ""


EVENT_TYPES: dict[str, type[Event]] = {cls.NAME: cls for cls in (
    StartEvent, StepEvent, EpochEvent, EvalEvent, CheckpointEvent, DoneEvent, ErrorEvent)}
EVENTS = tuple(EVENT_TYPES)


class EventWriter:
    """Writes events to a stream (stdout by default), one flushed line each, so a reader sees it at once."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def write(self, event: Event) -> Event:
        """Stamp `event` with the current time, write it as one line and return the stamped copy."""
        stamped = dataclasses.replace(event, time=round(time.time(), 3))
        self.stream.write(stamped.to_json() + "\n")
        self.stream.flush()
        return stamped

    def emit(self, event: str, **fields: Any) -> Event:
        """Write the event named `event` built from `fields`: for stand-in speakers (tests, scripts) that name
        events rather than build them. Unknown names raise ValueError and unknown fields TypeError, as the
        typed classes would."""
        if event not in EVENT_TYPES:
            raise ValueError(f"unknown event {event!r}")
        return self.write(EVENT_TYPES[event](**fields))


def parse_line(line: str) -> Event | None:
    """The typed event on one line of a training process's stdout, or None for anything that is not one (a
    stray print, a partial line, an event name this version does not know)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    name = record.get("event")
    cls = EVENT_TYPES.get(name) if isinstance(name, str) else None
    return None if cls is None else cls.from_record(record)
