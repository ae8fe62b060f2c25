"""The CPM port's published `.pkl` weights: a pickled dict of Caffe layer names -> HWIO kernels, `_b` biases.

The layout (hand or body) is recognised from the layer names; stages and joints from the arrays, so a file
is loaded into the model it describes rather than into one the user has to guess.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cpm_core.spec import ModelSpec
from cpm_core.weights.assign import LayerArrays
from cpm_core.weights.errors import WeightsError
from cpm_core.weights.restricted_pickle import load_data_pickle

_TRUNK_COMMON = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4"]
HAND_NAMES = {
    **{n: f"sub_stages/sub_conv{i + 1}" for i, n in enumerate(
        _TRUNK_COMMON + ["conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1", "conv5_2"])},
    "conv5_3_CPM": "sub_stages/sub_stage_img_feature",
    "conv6_1_CPM": "stage_1/conv1",
    "conv6_2_CPM": "stage_1/stage_heatmap",
}
BODY_NAMES = {
    **{n: f"sub_stages/sub_conv{i + 1}" for i, n in enumerate(
        _TRUNK_COMMON + ["conv4_1", "conv4_2", "conv4_3_CPM", "conv4_4_CPM", "conv4_5_CPM", "conv4_6_CPM"])},
    "conv4_7_CPM": "sub_stages/sub_stage_img_feature",
    "conv5_1_CPM": "stage_1/conv1",
    "conv5_2_CPM": "stage_1/stage_heatmap",
}
_MCONV = re.compile(r"^Mconv(\d+)_stage(\d+)$")


def read_pkl(path: str | Path) -> dict[str, np.ndarray]:
    """The file's dict of layer name -> array, read as data only (`load_data_pickle`): a `.pkl` from the web
    must not be able to run code, and any malformed file gives one `WeightsError` line naming it."""
    data = load_data_pickle(path)
    if not isinstance(data, dict) or not data:
        raise WeightsError(f"{path}: expected a dict of layer name -> array, got {type(data).__name__}")
    out: dict[str, np.ndarray] = {}
    for k, v in data.items():
        arr = v if isinstance(v, np.ndarray) else None
        if arr is None:
            try:
                arr = np.asarray(v)
            except (ValueError, TypeError) as exc:
                raise WeightsError(f"{path}: entry {str(k)[:60]!r} is not an array ({exc})") from None
        if arr.dtype.kind not in "biufc":
            raise WeightsError(f"{path}: entry {str(k)[:60]!r} is not a numeric array (dtype {arr.dtype})")
        out[str(k)] = arr
    return out


def pkl_layer_arrays(raw: dict[str, np.ndarray], source: str) -> tuple[LayerArrays, str]:
    """Map the Caffe names onto the port's scopes; returns (arrays, 'hand' | 'body')."""
    if "conv5_3_CPM" in raw:
        names, kind = HAND_NAMES, "hand"
    elif "conv4_7_CPM" in raw:
        names, kind = BODY_NAMES, "body"
    else:
        raise WeightsError(f"{source}: neither a hand (conv5_3_CPM) nor a body (conv4_7_CPM) CPM .pkl "
                           f"(first keys: {sorted(raw)[:6]})")
    out: LayerArrays = {}
    for name, arr in raw.items():
        if name.endswith("_b"):
            continue
        scope = names.get(name)
        m = _MCONV.match(name)
        if m:
            scope = f"stage_{int(m.group(2))}/mid_conv{int(m.group(1))}"
        if scope is None:
            continue
        if name + "_b" not in raw:
            raise WeightsError(f"{source}: layer {name!r} has a kernel but no bias {name + '_b'!r}")
        if arr.ndim != 4:
            raise WeightsError(f"{source}: layer {name!r} kernel should be 4-D HWIO, got shape {arr.shape}")
        out[scope] = (arr, raw[name + "_b"])
    return out, kind


def spec_from_pkl(arrays: LayerArrays, kind: str, input_size: int = 368, source: str = "") -> ModelSpec:
    """The model a `.pkl`'s arrays describe; `WeightsError` (naming `source`) when they describe no CPM."""
    where = f"{source}: " if source else ""
    stages = max([int(s.split("/")[0].split("_")[1]) for s in arrays if s.startswith("stage_")], default=1)
    if "stage_1/stage_heatmap" not in arrays:
        raise WeightsError(f"{where}the file has no stage-1 heatmap layer")
    if stages < 2:
        raise WeightsError(f"{where}the file holds only stage-1 layers (no Mconv*_stage2 ...): a CPM needs at least "
                           "2 stages, so this is not a complete CPM's weights")
    j = int(arrays["stage_1/stage_heatmap"][0].shape[-1])
    width = arrays["sub_stages/sub_conv1"][0].shape[-1] / 64.0 if "sub_stages/sub_conv1" in arrays else 1.0
    centre = False
    if "stage_2/mid_conv1" in arrays:
        feat = arrays["sub_stages/sub_stage_img_feature"][0].shape[-1]
        centre = arrays["stage_2/mid_conv1"][0].shape[2] == j + feat + 1
    try:
        return ModelSpec(name=f"{kind}-{input_size}x{stages}", input_size=input_size, stages=stages,
                         num_joints=j - 1, stride=8, trunk=kind, width=width, centre_map=centre)
    except ValueError as exc:
        raise WeightsError(f"{where}the arrays describe no valid CPM ({exc})") from None
