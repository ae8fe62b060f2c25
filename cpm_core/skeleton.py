"""Skeletons: joint names, limbs, colours and left/right flip pairs.

A skeleton travels with every model card and dataset so that a model trained on one joint order is never
silently decoded with another. The built-in orders are the ones the CPM port's weights and the shared data use.

Limb colours (`limb_colours`, the one place every drawer asks: `cpm_core.render` for `cpm infer` and recordings,
`app.pose_overlay` for the app's views) follow OpenPose's left/right convention, so a mirrored or crossed pose
is visible at a glance:

- a limb whose joints are on the subject's RIGHT (a joint name with the word "right", e.g. right_knee; a limb
  from a centre joint to a right joint, such as neck to right_shoulder, counts as right) is drawn in the warm
  family, red -> orange -> yellow along the skeleton's limb order;
- a LEFT limb in the cool family, green -> cyan -> blue, the k-th left limb at the same place in its family as
  the k-th right limb is in its own (so mirror limbs have matching shades);
- a CENTRE limb (no side, or joining left to right: shoulders, hips, eyes) in neutral light grey.

Side comes from the joint names, never from the colours stored with a skeleton: cards saved before this
convention carry a rainbow palette, and their bodies are drawn in the convention all the same.

A hand has no left and right limbs, so a hand alone keeps its per-finger colours (the skeleton's own). When a
hand's chirality is known (a detector or label says "left hand" / "right hand"), `limb_colours(skeleton,
side=...)` draws its fingers in that side's family instead, one hue per finger, darker towards the tip: a right
hand warm, a left hand cool, the same families as the body's right and left arms, so two hands shown together
can be told apart and matched to the arms they belong to.
"""

from __future__ import annotations

import colorsys
import re
from collections.abc import Sequence
from dataclasses import dataclass, field


def _palette(n: int) -> list[tuple[int, int, int]]:
    """Evenly spaced hues as BGR (OpenCV order), so neighbouring limbs are told apart."""
    out = []
    for i in range(max(n, 1)):
        r, g, b = colorsys.hsv_to_rgb(i / max(n, 1), 0.9, 1.0)
        out.append((int(b * 255), int(g * 255), int(r * 255)))
    return out[:n]



Side = str  # "left" or "right"

# Hue ranges (degrees) and the neutral colour of the left/right convention; see the module docstring.
RIGHT_HUES = (0.0, 55.0)  # red -> yellow: the subject's right side
LEFT_HUES = (115.0, 235.0)  # green -> blue: the subject's left side
CENTRE_BGR = (215, 215, 215)  # light grey: limbs on neither side or joining both
_TIP_VALUE = 0.6  # brightness of a known-chirality hand's last bone (its first is 1.0)


def joint_side(name: str) -> Side | None:
    """'left' or 'right' when the joint's name has that word on its own or as a camelCase part (left_knee,
    leftKnee, knee.right; not 'l_knee': one letter is too easily something else), else None."""
    words = re.split(r"[^a-z]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower())
    if "left" in words:
        return "left"
    if "right" in words:
        return "right"
    return None


def _limb_side(joints: Sequence[str], limb: tuple[int, int]) -> Side | None:
    sides = {joint_side(joints[limb[0]]), joint_side(joints[limb[1]])} - {None}
    return sides.pop() if len(sides) == 1 else None  # no side, or left joined to right: centre


def _hsv_bgr(hue_deg: float, saturation: float = 0.9, value: float = 1.0) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((hue_deg % 360.0) / 360.0, saturation, value)
    return round(b * 255), round(g * 255), round(r * 255)


def _family_hue(side: Side, k: int, n: int) -> float:
    lo, hi = RIGHT_HUES if side == "right" else LEFT_HUES
    return lo if n <= 1 else lo + (hi - lo) * k / (n - 1)


def _side_palette(joints: Sequence[str], limbs: Sequence[tuple[int, int]]) -> list[tuple[int, int, int]] | None:
    """Per-limb BGR colours by side (None when no limb has a side): the k-th of a side's n limbs gets the k/(n-1)
    point of its family's hue range, so mirror limbs (listed in the same order on both sides) match in shade."""
    sides = [_limb_side(joints, limb) for limb in limbs]
    if not any(sides):
        return None
    n = max(sides.count("left"), sides.count("right"))
    seen = {"left": 0, "right": 0}
    out = []
    for side in sides:
        if side is None:
            out.append(CENTRE_BGR)
        else:
            out.append(_hsv_bgr(_family_hue(side, seen[side], n)))
            seen[side] += 1
    return out


def _chains_of(joints: Sequence[str], limbs: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """(chain, position in chain) per limb: a chain is the run of limbs whose far joints share a name stem
    (thumb1..thumb4 -> "thumb"), so a hand's fingers are its chains."""
    stems: dict[str, int] = {}
    counts: dict[int, int] = {}
    out = []
    for _, b in limbs:
        stem = re.sub(r"[\d_]+$", "", joints[b]) or joints[b]
        chain = stems.setdefault(stem, len(stems))
        out.append((chain, counts.get(chain, 0)))
        counts[chain] = counts.get(chain, 0) + 1
    return out


def _handed_palette(joints: Sequence[str], limbs: Sequence[tuple[int, int]], side: Side
                    ) -> list[tuple[int, int, int]]:
    """A side-less skeleton (a hand) of known chirality: one hue of the side's family per chain (finger),
    darker towards the tip."""
    chains = _chains_of(joints, limbs)
    n_chains = max((c for c, _ in chains), default=0) + 1
    lengths = [sum(1 for c, _ in chains if c == k) for k in range(n_chains)]
    out = []
    for chain, pos in chains:
        steps = max(lengths[chain] - 1, 1)
        out.append(_hsv_bgr(_family_hue(side, chain, n_chains), value=1.0 - (1.0 - _TIP_VALUE) * pos / steps))
    return out

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
            sided = _side_palette(self.joints, self.limbs)
            object.__setattr__(self, "colors", tuple(sided if sided is not None else _palette(len(self.limbs))))
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



def has_sides(skeleton: Skeleton) -> bool:
    """Whether any limb lies on the subject's left or right (a body: yes; a lone hand: no)."""
    return any(_limb_side(skeleton.joints, limb) for limb in skeleton.limbs)


def limb_side(skeleton: Skeleton, limb: int) -> Side | None:
    """The side ('left'/'right') of limb number `limb`, None for a centre limb (see the module docstring)."""
    return _limb_side(skeleton.joints, skeleton.limbs[limb])


def limb_colours(skeleton: Skeleton, side: Side | None = None) -> list[tuple[int, int, int]]:
    """The BGR colour of every limb, as every drawer draws it (module docstring: right warm, left cool, centre
    grey). A skeleton without sides keeps its own colours, unless `side` ('left'/'right': the chirality of a
    hand, when known) asks for that side's family, one hue per finger."""
    if side not in (None, "left", "right"):
        raise ValueError(f"side must be 'left', 'right' or None, got {side!r}")
    sided = _side_palette(skeleton.joints, skeleton.limbs)
    if sided is not None:
        return sided
    if side is not None:
        return _handed_palette(skeleton.joints, skeleton.limbs, side)
    return [tuple(int(v) for v in c) for c in skeleton.colors]

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
    # No sides: limbs keep evenly spaced hues (four per finger); `limb_colours(HAND_21, side=...)` gives a hand of
    # known chirality its side's family instead.
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
