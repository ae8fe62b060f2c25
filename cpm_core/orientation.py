"""Which way a subject points, so a model can be fed upright crops: the pure geometry (no model, no detector).

A small CPM that must find a hand at every angle spends its capacity on rotation; MediaPipe's landmark models
instead see the hand rotated upright (wrist at the bottom, fingers up) and are far more accurate for their
size. Models trained that way say so on their card (`provenance.orientation = "upright"`). The angle
convention is `CropBox.angle`: degrees clockwise in image coordinates, so a crop with the subject's angle
shows the subject upright.

This module is a leaf (it imports only `cpm_core.skeleton`), so training's label code, the palm detector and
the multi-subject front end can all use the same angle and chirality rules without importing one another;
running an upright model (the angle search, the palm hint, `UprightFollower`) is `cpm_core.upright`.
"""

from __future__ import annotations

import math

import numpy as np

from cpm_core.skeleton import Skeleton

# (base joint, tip joint): the direction base -> tip is the subject's "up". The hand's wrist -> middle-finger
# base is what MediaPipe's palm detector aligns to.
_AXES: dict[str, tuple[int, int]] = {"hand21": (0, 9)}
# (thumb-side joint, far-side joint) across the palm: index and little-finger bases. In a canonical crop the
# thumb side is on the left; a hand whose thumb side is on the right (the other hand, or the same hand seen
# from the other side) is shown mirrored, so the model never has to tell the two apart.
_SIDES: dict[str, tuple[int, int]] = {"hand21": (5, 17)}


def orientation_axis(skeleton: Skeleton) -> tuple[int, int]:
    """The joint pair that defines 'up' for this skeleton; ValueError if it has none."""
    if skeleton.name in _AXES:
        return _AXES[skeleton.name]
    if skeleton.num_joints == 21:
        return _AXES["hand21"]
    raise ValueError(f"upright crops need a known 'up' direction; skeleton {skeleton.name!r} has none "
                     f"(known: {', '.join(_AXES)})")


def angle_of(direction: np.ndarray) -> float:
    """CropBox angle (degrees) that turns the image vector `direction` to point up."""
    dx, dy = float(direction[0]), float(direction[1])
    return math.degrees(math.atan2(dx, -dy))


def label_angle(keypoints: np.ndarray, labelled: np.ndarray, skeleton: Skeleton) -> float | None:
    """Angle of a labelled subject (None when the axis joints are not labelled)."""
    base, tip = orientation_axis(skeleton)
    if not (labelled[base] and labelled[tip]):
        return None
    d = np.asarray(keypoints[tip], np.float64) - np.asarray(keypoints[base], np.float64)
    if not np.isfinite(d).all() or float(np.hypot(*d)) < 1e-6:
        return None
    return angle_of(d)


def _sides(skeleton: Skeleton) -> tuple[int, int]:
    orientation_axis(skeleton)
    return _SIDES.get(skeleton.name, _SIDES["hand21"])


def thumb_on_right(points: np.ndarray, angle: float, near: int, far: int) -> bool:
    """Whether, in a crop turned by `angle`, point `near` (thumb side) lies right of point `far`."""
    a = math.radians(angle)
    d = np.asarray(points[near], np.float64) - np.asarray(points[far], np.float64)
    return bool(d[0] * math.cos(a) + d[1] * math.sin(a) > 0)  # x component after rotating by -angle


def label_mirror(keypoints: np.ndarray, labelled: np.ndarray, skeleton: Skeleton, angle: float) -> bool | None:
    """Whether a labelled subject must be mirrored to show its thumb side on the left (None: not labelled)."""
    near, far = _sides(skeleton)
    if not (labelled[near] and labelled[far]):
        return None
    return thumb_on_right(keypoints, angle, near, far)


def pose_angle(keypoints: np.ndarray, skeleton: Skeleton) -> float:
    """Angle of a predicted pose (J, 2 or 3), measured exactly as `label_angle` measures a label, so a model
    trained on label-upright crops sees the same 'upright' when the angle comes from its own last pose."""
    base, tip = orientation_axis(skeleton)
    xy = np.asarray(keypoints[:, :2], np.float64)
    return angle_of(xy[tip] - xy[base])


def wrap(angle: float) -> float:
    """Angle in (-180, 180]."""
    a = math.fmod(angle + 180.0, 360.0)
    if a <= 0:
        a += 360.0
    return a - 180.0


def model_orientation(card) -> str:
    """'upright' for models trained on upright crops, else 'any' (the port's models, older cards)."""
    return str((card.provenance or {}).get("orientation") or "any")


def model_chirality(card) -> str:
    """'canonical' for models trained on crops mirrored to one chirality (thumb side left), else 'any'."""
    return str((card.provenance or {}).get("chirality") or "any")
