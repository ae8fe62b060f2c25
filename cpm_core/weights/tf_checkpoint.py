"""TF1 checkpoints of the CPM port, from tf.layers (`kernel`/`bias`) or tf-slim (`weights`/`biases`).

Variables are matched by their scope suffix, so checkpoints saved under an extra outer scope and those that
also hold optimiser slots or a global step load the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from cpm_core.spec import ModelSpec
from cpm_core.weights.assign import LayerArrays
from cpm_core.weights.errors import WeightsError

_VAR = re.compile(r"(?:^|/)((?:sub_stages/(?:sub_conv\d+|sub_stage_img_feature))|"
                  r"(?:stage_\d+/(?:conv1|stage_heatmap|mid_conv\d+)))/(kernel|bias|weights|biases)$")


def resolve_checkpoint(path: str | Path) -> str:
    """A checkpoint prefix from a prefix, a .index/.data file, or a folder holding a `checkpoint` file."""
    p = Path(path)
    if p.is_dir():
        latest = tf.train.latest_checkpoint(str(p))
        if latest is None:
            raise WeightsError(f"{path}: folder holds no TensorFlow checkpoint")
        return latest
    s = str(p)
    for suffix in (".index", ".meta"):
        if s.endswith(suffix):
            return s[: -len(suffix)]
    if ".data-" in p.name:
        return s[: s.rindex(".data-")]
    return s


def read_checkpoint(path: str | Path) -> LayerArrays:
    prefix = resolve_checkpoint(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable TensorFlow checkpoint ({exc.__class__.__name__})") from exc
    parts: dict[str, dict[str, np.ndarray]] = {}
    for name in reader.get_variable_to_shape_map():
        m = _VAR.search(name)
        if not m:
            continue
        scope, kind = m.group(1), m.group(2)
        slot = "kernel" if kind in ("kernel", "weights") else "bias"
        if slot in parts.setdefault(scope, {}):
            raise WeightsError(f"{path}: two variables for {scope}/{slot} (one of them {name!r})")
        parts[scope][slot] = reader.get_tensor(name)
    if not parts:
        raise WeightsError(f"{path}: no CPM variables (sub_stages/..., stage_N/...) in this checkpoint")
    out: LayerArrays = {}
    for scope, p in parts.items():
        if set(p) != {"kernel", "bias"}:
            raise WeightsError(f"{path}: layer {scope!r} lacks its {'bias' if 'kernel' in p else 'kernel'}")
        out[scope] = (p["kernel"], p["bias"])
    return out


def spec_from_checkpoint(arrays: LayerArrays, input_size: int = 256, stride: int = 8) -> ModelSpec:
    if "stage_1/stage_heatmap" not in arrays or "sub_stages/sub_conv1" not in arrays:
        raise WeightsError("checkpoint lacks sub_stages/sub_conv1 or stage_1/stage_heatmap")
    stages = max(int(s.split("/")[0].split("_")[1]) for s in arrays if s.startswith("stage_"))
    j = int(arrays["stage_1/stage_heatmap"][0].shape[-1])
    width = arrays["sub_stages/sub_conv1"][0].shape[-1] / 64.0
    trunk = "hand"
    c11 = arrays.get("sub_stages/sub_conv11")
    c9 = arrays.get("sub_stages/sub_conv9")
    if c11 is not None and c9 is not None and c11[0].shape[-1] * 2 == c9[0].shape[-1]:
        trunk = "body"
    centre = False
    if "stage_2/mid_conv1" in arrays:
        feat = arrays["sub_stages/sub_stage_img_feature"][0].shape[-1]
        centre = arrays["stage_2/mid_conv1"][0].shape[2] == j + feat + 1
    if stages < 2:
        raise WeightsError("checkpoint holds only stage-1 layers (no stage_2/...): a CPM needs at least 2 stages")
    try:
        return ModelSpec(name=f"{trunk}-{input_size}x{stages}", input_size=input_size, stages=stages,
                         num_joints=j - 1, stride=stride, trunk=trunk, width=width, centre_map=centre)
    except ValueError as exc:
        raise WeightsError(f"checkpoint arrays describe no valid CPM ({exc})") from None
