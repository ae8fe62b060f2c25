"""SSD anchors as MediaPipe's detectors expect them, so raw tflite outputs can be decoded without MediaPipe.

The detectors predict one box per anchor as an offset from the anchor's centre; getting the anchor order wrong
silently pairs every prediction with the wrong place in the image, so the order here follows MediaPipe's
`SsdAnchorsCalculator` exactly: layers sharing a stride share one grid, and anchors run row-major over y, then
x, then the anchors of that cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorSpec:
    """The options of MediaPipe's SSD anchor calculator that matter with a fixed anchor size (w = h = 1)."""

    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int = 2  # aspect ratio 1.0 plus one interpolated scale
    offset: float = 0.5


# palm_detection_full.tflite: 24x24x2 + 12x12x6 = 2016 anchors.
PALM_ANCHORS = AnchorSpec(input_size=192, strides=(8, 16, 16, 16))
# pose_detection.tflite (BlazePose detector): 28x28x2 + 14x14x2 + 7x7x6 = 2254 anchors.
POSE_ANCHORS = AnchorSpec(input_size=224, strides=(8, 16, 32, 32, 32))


def ssd_anchors(spec: AnchorSpec) -> np.ndarray:
    """(N, 2) anchor centres (x, y) normalised to [0, 1] of the input, in the detector's output order."""
    return grid_anchors(spec.input_size, spec.strides, spec.anchors_per_layer, spec.offset)


def grid_anchors(input_size: int, strides: Sequence[int], anchors_per_layer: int = 2,
                 offset: float = 0.5) -> np.ndarray:
    """Anchor centres for consecutive layers; runs of equal strides are merged into one grid whose cells hold
    `anchors_per_layer` anchors per merged layer."""
    out: list[np.ndarray] = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        per_cell = anchors_per_layer * (j - i)
        cells = int(np.ceil(input_size / strides[i]))
        ys, xs = np.meshgrid((np.arange(cells) + offset) / cells, (np.arange(cells) + offset) / cells,
                             indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)  # row-major over y, then x
        out.append(np.repeat(centres, per_cell, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)
