"""Skeletons: joint names, limbs, colours and left/right flip pairs.

A skeleton travels with every model card and dataset so that a model trained on one joint order is never
silently decoded with another. The built-in orders are the ones the CPM port's weights and the shared data use.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field


def _palette(n: int) -> list[tuple[int, int, int]]:
    """Evenly spaced hues as BGR (OpenCV order), so neighbouring limbs are told apart."""
    out = []
    for i in range(max(n, 1)):
        r, g, b = colorsys.hsv_to_rgb(i / max(n, 1), 0.9, 1.0)
        out.append((int(b * 255), int(g * 255), int(r * 255)))
    return out[:n]


@dataclass(frozen=True)
class Skeleton:
    """A named joint order with the limbs drawn between joints (0-based indices)."""

    name: str
    joints: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()
    colors: tuple[tuple[int, int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.joints)
        if n == 0:
            raise ValueError(f"skeleton {self.name!r} has no joints")
        if len(set(self.joints)) != n:
            raise ValueError(f"skeleton {self.name!r} has duplicate joint names")
        for a, b in tuple(self.limbs) + tuple(self.flip_pairs):
            if not (0 <= a < n and 0 <= b < n):
                raise ValueError(f"skeleton {self.name!r}: joint index out of range in pair ({a}, {b})")
        if not self.colors:
            object.__setattr__(self, "colors", tuple(_palette(len(self.limbs))))
        elif len(self.colors) != len(self.limbs):
            raise ValueError(f"skeleton {self.name!r}: {len(self.colors)} colours for {len(self.limbs)} limbs")

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def flip_permutation(self) -> list[int]:
        """Index map applied after a horizontal flip: left joints become right joints and back."""
        perm = list(range(self.num_joints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "joints": list(self.joints),
            "limbs": [list(p) for p in self.limbs],
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "colors": [list(c) for c in self.colors],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Skeleton:
        try:
            return cls(
                name=str(d["name"]),
                joints=tuple(str(j) for j in d["joints"]),
                limbs=tuple((int(a), int(b)) for a, b in d.get("limbs", [])),
                flip_pairs=tuple((int(a), int(b)) for a, b in d.get("flip_pairs", [])),
                colors=tuple(tuple(int(v) for v in c) for c in d.get("colors", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a valid skeleton description: {exc}") from exc


def _chains(root: int, chains: list[list[int]]) -> tuple[tuple[int, int], ...]:
    limbs = []
    for chain in chains:
        prev = root
        for j in chain:
            limbs.append((prev, j))
            prev = j
    return tuple(limbs)


_FINGERS = ("thumb", "index", "middle", "ring", "little")

HAND_21 = Skeleton(
    name="hand21",
    joints=("wrist",) + tuple(f"{f}{k}" for f in _FINGERS for k in range(1, 5)),
    limbs=_chains(0, [[1 + 4 * f + k for k in range(4)] for f in range(5)]),
    # Finger colours as in OpenPose's hand renderer: one hue per finger, darker towards the tip.
)

BODY_14 = Skeleton(
    name="body14",
    joints=(
        "head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
        "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    ),
    limbs=((0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
           (11, 12), (12, 13)),
    flip_pairs=((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13)),
)

COCO_17 = Skeleton(
    name="coco17",
    joints=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
        "right_knee", "left_ankle", "right_ankle",
    ),
    limbs=((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
           (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
)

BUILTIN_SKELETONS: dict[str, Skeleton] = {s.name: s for s in (HAND_21, BODY_14, COCO_17)}


def get_skeleton(name: str) -> Skeleton:
    """Look up a built-in skeleton by name ("hand21", "body14", "coco17")."""
    try:
        return BUILTIN_SKELETONS[name]
    except KeyError:
        known = ", ".join(sorted(BUILTIN_SKELETONS))
        raise KeyError(f"unknown skeleton {name!r}; built-in skeletons are: {known}") from None


def generic_skeleton(num_joints: int, name: str | None = None) -> Skeleton:
    """A skeleton with numbered joints and no limbs, for weights that carry no joint names."""
    return Skeleton(name=name or f"joints{num_joints}", joints=tuple(f"joint_{i}" for i in range(num_joints)),
                    limbs=())
