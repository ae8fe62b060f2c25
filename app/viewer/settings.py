"""ViewerSettings: the live viewer's state as plain Python, with change notifications (no Qt).

Why: the viewer's state used to live in widgets and was copied out of them by loops; the recorder read its
threshold from a slider and scripts drove the viewer by ticking check boxes. Here each setting is one field.
Widgets, views, the pipeline binding and the recorder subscribe to the fields they show or use; `cpm-studio`'s
flags and the tests set fields. A field set to its current value notifies no one, so a widget that writes back
what it was told ends the round trip (napari's evented models work the same way).

Callbacks run synchronously in the thread that sets the field (the GUI thread in the app).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

VIEWS = ("multi", "single", "joints", "tracker")
TRACKER_MODES = ("smoothed", "raw", "both")
MAX_SUBJECTS = 10
# The noise sliders move in tenths of a decade; the defaults are on that grid (0.03 -> 10^-1.5) so a slider that
# shows them writes back the same value.
PROCESS_NOISE = 10 ** -1.5
MEASUREMENT_NOISE = 1.0

Callback = Callable[[Any], None]


def _unit(v: Any) -> float:
    v = float(v)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {v}")
    return v


def _positive(v: Any) -> float:
    v = float(v)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"a noise level must be positive, got {v}")
    return v


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {v!r}")
        return str(v)
    return check


def _subjects(v: Any) -> int:
    return max(1, min(MAX_SUBJECTS, int(v)))


def _subject_id(v: Any) -> int | None:
    return None if v is None else int(v)


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "threshold": _unit, "autoscale": bool, "kalman": bool, "process_noise": _positive,
    "measurement_noise": _positive, "tracking": bool, "tracker_threshold": lambda v: max(0.0, float(v)),
    "tracker_mode": _choice(TRACKER_MODES), "detect": bool, "detector": lambda v: str(v or ""),
    "max_subjects": _subjects, "selected_subject": _subject_id, "realtime": bool, "loop": bool,
    "view": _choice(VIEWS),
}


@dataclass(eq=False)
class ViewerSettings:
    """Every setting a user changes in the viewer. Set a field to change it; `subscribe` to hear about it."""

    threshold: float = 0.1  # joints below this confidence are not drawn (views and recordings)
    autoscale: bool = False  # heatmap tiles coloured over their own range instead of [0, 1]
    kalman: bool = True  # show the Kalman-smoothed pose
    process_noise: float = PROCESS_NOISE  # the smoother's q
    measurement_noise: float = MEASUREMENT_NOISE  # the smoother's r
    tracking: bool = False  # the self-tracking crop
    tracker_threshold: float = 1.0  # the track is lost below this sum of heatmap peaks
    tracker_mode: str = "smoothed"  # which pose the Tracker view draws
    detect: bool = False  # a detector finds every subject; each gets a pose and an id
    detector: str = ""  # an override ("palm", "pose", "hog"); "" follows the model's skeleton
    max_subjects: int = 4
    selected_subject: int | None = None  # whose heatmaps the views show; None: the lowest id present
    realtime: bool = True  # drop frames a slow model cannot keep up with; False: process every frame
    loop: bool = True  # a video or folder starts over at its end
    view: str = "multi"

    def __post_init__(self) -> None:
        object.__setattr__(self, "_subscribers", {})
        for f in fields(self):
            object.__setattr__(self, f.name, _CHECKS[f.name](getattr(self, f.name)))

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _CHECKS:
            raise AttributeError(f"ViewerSettings has no setting {name!r}")
        value = _CHECKS[name](value)
        if getattr(self, name) == value:
            return
        object.__setattr__(self, name, value)
        for callback in list(self._subscribers.get(name, ())):
            callback(value)
        for callback in list(self._subscribers.get("*", ())):
            callback((name, value))

    def subscribe(self, name: str, callback: Callback, now: bool = False) -> Callable[[], None]:
        """Call `callback(value)` whenever `name` changes (`"*"`: `callback((name, value))` for any field); with
        `now`, once at once with the current value. Returns a function that unsubscribes."""
        if name != "*" and name not in _CHECKS:
            raise AttributeError(f"ViewerSettings has no setting {name!r}")
        self._subscribers.setdefault(name, []).append(callback)
        if now and name != "*":
            callback(getattr(self, name))

        def unsubscribe() -> None:
            if callback in self._subscribers.get(name, []):
                self._subscribers[name].remove(callback)
        return unsubscribe

    def update(self, **values: Any) -> None:
        """Set several fields (each notifies its own subscribers)."""
        for name, value in values.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
