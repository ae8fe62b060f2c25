"""Copy named (kernel, bias) arrays into a built model, checking every shape first.

All shapes are checked before anything is assigned, so a file that does not fit leaves the model as it was.
"""

from __future__ import annotations

import keras
import numpy as np

from cpm_core.spec import ModelSpec
from cpm_core.weights.errors import WeightsMismatchError

LayerArrays = dict[str, tuple[np.ndarray, np.ndarray]]


def _hint(scope: str, spec: ModelSpec, want: tuple, got: tuple) -> str:
    if want[-1] != got[-1] and scope.endswith(("stage_heatmap", "mid_conv7")):
        return (f" (the model has J = {spec.channels} heatmap channels = {spec.num_joints} joints + background; "
                f"the file has {got[-1]}: a joint count that excludes or double-counts the background?)")
    if want[2] != got[2] and scope.endswith("mid_conv1"):
        return (f" (stage input = {spec.channels} heatmaps + image features"
                f"{' + 1 centre map' if spec.centre_map else ''}; the file expects {got[2]} channels)")
    return ""


def assign_layer_arrays(model: keras.Model, spec: ModelSpec, arrays: LayerArrays, source: str) -> None:
    """Set every conv of `spec` from `arrays` (keyed by the port's scope names)."""
    plan = []
    for conv in spec.convs():
        if conv.scope not in arrays:
            raise WeightsMismatchError(f"{source}: no weights for layer {conv.scope!r} "
                                       f"(the model has {spec.stages} stages)")
        kernel, bias = arrays[conv.scope]
        layer = model.get_layer(conv.keras_name)
        want_k = tuple(int(d) for d in layer.kernel.shape)
        want_b = tuple(int(d) for d in layer.bias.shape)
        got_k, got_b = tuple(np.shape(kernel)), tuple(np.shape(bias))
        if got_k != want_k:
            raise WeightsMismatchError(f"{source}: layer {conv.scope!r}: file kernel shape {got_k} does not fit "
                                       f"the model's {want_k}{_hint(conv.scope, spec, want_k, got_k)}")
        if got_b != want_b:
            raise WeightsMismatchError(f"{source}: layer {conv.scope!r}: file bias shape {got_b} does not fit "
                                       f"the model's {want_b}")
        plan.append((layer, kernel, bias))
    for layer, kernel, bias in plan:
        layer.set_weights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32)])
