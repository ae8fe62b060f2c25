"""The JSON-lines protocol between a training process and whoever started it (the GUI, a shell, a cluster).

One JSON object per line on stdout, each with an "event" field; see docs/protocol.md. stdout carries nothing
else (TensorFlow's chatter goes to stderr), so a reader can parse every line it gets.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any, TextIO

EVENTS = ("start", "step", "epoch", "eval", "checkpoint", "done", "error")


def _clean(value: Any) -> Any:
    """JSON has no NaN or inf; report them as null rather than emit invalid JSON."""
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


class EventWriter:
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def emit(self, event: str, **fields: Any) -> dict:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}")
        record = {"event": event, "time": round(time.time(), 3), **_clean(fields)}
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()
        return record


def parse_line(line: str) -> dict | None:
    """An event from one line of a training process's stdout, or None for anything that is not one."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and record.get("event") in EVENTS else None
