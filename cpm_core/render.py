"""Drawing poses and heatmaps onto images with OpenCV: shared by `cpm infer`, recording and snapshots.

The GUI draws with pyqtgraph instead, but uses the same colour choices (`cpm_core.skeleton.limb_colours`: a
body's right limbs warm, left limbs cool, centre grey; and the jet colour map of the port's views) so a saved
image looks like the screen.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from cpm_core.skeleton import Side, Skeleton, has_sides, limb_colours

ROOT_BGR = (220, 220, 220)  # a joint no limb ends at (a hand's wrist, a body's head top): light grey


def joint_colours(skeleton: Skeleton, side: Side | None = None) -> list[tuple[int, int, int]]:
    """The BGR colour of every joint, from `limb_colours`: a body's joint takes the colour of the limb that ends
    at it (its side's family); a hand's joints take the colour of their finger's first limb, one hue per finger
    (its side's family when `side` is known). A joint no limb ends at (the wrist, a head top) is light grey.

    Why: dots coloured red-to-green by confidence were all green on a good frame and, large, hid the fingers in a
    small window; by finger (and by side) they say which finger is which."""
    colours: list[tuple[int, int, int] | None] = [None] * skeleton.num_joints
    by_chain = not has_sides(skeleton)
    for (a, b), colour in zip(skeleton.limbs, limb_colours(skeleton, side)):
        if colours[b] is None:  # the first limb into a joint decides
            colours[b] = colours[a] if by_chain and colours[a] is not None else tuple(int(v) for v in colour)
    return [c if c is not None else ROOT_BGR for c in colours]


def draw_pose(image: np.ndarray, keypoints: np.ndarray, skeleton: Skeleton, threshold: float = 0.1,
              thickness: int | None = None, side: Side | None = None, *,
              limb_bgr: Sequence[tuple[int, int, int]] | None = None,
              joint_bgr: Sequence[tuple[int, int, int]] | None = None, outline: bool = True,
              line_width: int | None = None, joint_radius: int | None = None) -> np.ndarray:
    """Draw limbs and joints whose confidence is at least `threshold`; returns a new BGR image. The one OpenCV
    skeleton drawer: `cpm infer`, recordings and `detection.draw.draw_subjects` all draw through it.

    Limbs take `limb_colours(skeleton, side)` unless `limb_bgr` (one per limb) is given: a body's sides in two
    colour families; `side` is a hand's chirality when known (its fingers then take that side's family). Joints
    take `joint_colours` (their finger's or side's) unless `joint_bgr` (one per joint); `outline` rings them in
    black. Line width and dot radius default to `thickness` + 1."""
    out = image.copy()
    kp = np.asarray(keypoints, dtype=np.float64)
    ok = np.isfinite(kp[:, :2]).all(axis=1) & (kp[:, 2] >= threshold)
    t = thickness or max(1, round(max(image.shape[:2]) / 250))
    width = line_width or t + 1
    radius = joint_radius or t + 1
    for (a, b), colour in zip(skeleton.limbs, limb_bgr if limb_bgr is not None else limb_colours(skeleton, side)):
        if ok[a] and ok[b]:
            cv2.line(out, (round(kp[a, 0]), round(kp[a, 1])), (round(kp[b, 0]), round(kp[b, 1])), colour, width,
                     cv2.LINE_AA)
    colours = joint_bgr if joint_bgr is not None else joint_colours(skeleton, side)
    for j in np.flatnonzero(ok):
        cv2.circle(out, (round(kp[j, 0]), round(kp[j, 1])), radius, colours[j], -1, cv2.LINE_AA)
        if outline:
            cv2.circle(out, (round(kp[j, 0]), round(kp[j, 1])), radius, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def colorize(heatmap: np.ndarray, size: int | None = None) -> np.ndarray:
    """A [0, 1] heatmap as a jet-coloured BGR image (values outside are clipped; NaN shows as 0)."""
    hm = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0), 0.0, 1.0)
    img = cv2.applyColorMap((hm * 255).astype(np.uint8), cv2.COLORMAP_JET)
    if size is not None:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST)
    return img


def _label(img: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(img, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def tile(images: list[np.ndarray], cols: int, gap: int = 0, background=0) -> np.ndarray:
    """Equal-sized images (any channel count) in a grid of `cols` columns, `gap` pixels of `background` apart."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    canvas = np.empty((rows * (h + gap) - gap, cols * (w + gap) - gap, *images[0].shape[2:]), np.uint8)
    canvas[:] = background
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        y, x = r * (h + gap), c * (w + gap)
        canvas[y:y + h, x:x + w] = im
    return canvas


def multi_stage_view(crop_image: np.ndarray, heatmaps: np.ndarray, keypoints_in_crop: np.ndarray,
                     skeleton: Skeleton, tile_size: int = 256) -> np.ndarray:
    """The port's MULTI view: each stage's max-over-joints heatmap, then the crop with the final pose."""
    j = skeleton.num_joints
    tiles = [_label(colorize(hm[..., :j].max(axis=-1), tile_size), f"stage {i + 1}")
             for i, hm in enumerate(heatmaps)]
    pose = cv2.resize(draw_pose(crop_image, keypoints_in_crop, skeleton), (tile_size, tile_size))
    tiles.append(_label(pose, "final pose"))
    return tile(tiles, cols=min(3, len(tiles)) if len(tiles) <= 6 else 4)


def joints_view(heatmaps_last: np.ndarray, skeleton: Skeleton, tile_size: int = 128) -> np.ndarray:
    """The port's HM view: every joint's last-stage heatmap, titled with its name and peak."""
    tiles = []
    for j, name in enumerate(skeleton.joints):
        hm = heatmaps_last[..., j]
        peak = float(np.nanmax(hm)) if np.isfinite(hm).any() else 0.0
        tiles.append(_label(colorize(hm, tile_size), f"{name} {peak:.2f}"))
    return tile(tiles, cols=int(np.ceil(np.sqrt(len(tiles)))))
