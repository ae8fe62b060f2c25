"""The efficient CPM family ("mobile" blocks): the same machine as Wei et al.'s CPM, built from cheap blocks.

What stays a CPM: image features from a trunk, a stage-1 belief map, T >= 2 refinement stages that each take
the features and the previous stage's beliefs, and every stage's heatmaps output (the app's multi-stage view and
the training loss read them all). What changes is the cost of each part, as Lightweight OpenPose did for
OpenPose (Osokin 2018):
- the trunk is MobileNetV2's inverted residuals (1x1 expand, 3x3 depthwise, linear 1x1 project) down to stride
  8 (16 for bodies, whose joints need more context), merged back to stride 4 like a feature pyramid;
- a refinement stage is a 1x1 mix of features and beliefs, then residual blocks of a 7x7 depthwise and a 1x1
  pointwise convolution (the 7x7 receptive field of the port's stage convolutions at a ninth of their cost),
  then a 1x1 head;
- every convolution but the heads is followed by batch norm while training; `fold_batch_norm` folds it into the
  convolutions, so the exported graph is plain convolutions with biases (what TFLite and ONNX fuse best).

One walk over the architecture (`_walk`) drives both the Keras builder and the pure-Python layer plan
(`mobile_plan`: names, shapes and FLOPs without TensorFlow), so the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: ModelSpec.gflops asks this module for a mobile model's plan, so a runtime
    # import of cpm_core.spec here would make the two import each other.
    from cpm_core.spec import ModelSpec

# (expansion, output channels, stride, repeats) per trunk level; the first stride-2 step is the stem.
_STEM = (16, 32)  # two plain 3x3 stride-2 convolutions: full-resolution depthwise layers cost more
# memory traffic (batch norm, ReLU, their gradients) than arithmetic on a CPU
_TRUNK = {
    "hand": ((4, 32, 1, 1), (4, 48, 2, 3)),
    "body": ((4, 32, 1, 1), (4, 48, 2, 3), (4, 96, 2, 3)),
}
FEATURES = 64  # image feature channels every stage reads
STAGE_CHANNELS = 64  # channels inside a refinement stage
STAGE_KERNEL = 7  # depthwise kernel of the refinement blocks
STAGE1_BLOCKS = 2
STAGE_BLOCKS = 3
BN_SUFFIX = "__bn"


@dataclass(frozen=True)
class LayerDef:
    """One convolution of a mobile CPM. `kind` is 'conv' or 'dw' (depthwise); `grid` is its output size."""

    name: str
    kind: str
    kernel: int
    stride: int
    in_channels: int
    filters: int
    grid: int
    bn: bool  # followed by batch norm while training (folded on export)
    relu: bool

    @property
    def flops(self) -> int:
        per_cell = self.kernel * self.kernel * (self.in_channels if self.kind == "conv" else 1) * self.filters
        return 2 * per_cell * self.grid * self.grid


def _scaled(spec: ModelSpec, channels: int) -> int:
    return max(8, int(round(channels * spec.width / 8)) * 8) if spec.width != 1 else channels


def _walk(spec: ModelSpec, ops):
    """The architecture, once. `ops` supplies conv / dw / add / upsample / concat / relu on its own kind of
    tensor: Keras tensors for the builder, (grid, channels) pairs for the plan."""
    x = ops.conv("trunk__stem", ops.image, 3, 2, _scaled(spec, _STEM[0]))
    x = ops.conv("trunk__stem2", x, 3, 2, _scaled(spec, _STEM[1]))
    levels = {}
    block = 0
    for expansion, cout, stride, repeats in _TRUNK[spec.trunk]:
        cout = _scaled(spec, cout)
        for r in range(repeats):
            block += 1
            s = stride if r == 0 else 1
            name = f"trunk__ir{block}"
            cin = ops.channels(x)
            h = x
            if expansion != 1:
                h = ops.conv(f"{name}__expand", h, 1, 1, cin * expansion)
            h = ops.dw(f"{name}__dw", h, 3, s)
            h = ops.conv(f"{name}__project", h, 1, 1, cout, relu=False)
            x = ops.add(f"{name}__add", x, h) if s == 1 and cin == cout else h
        levels[ops.grid(x)] = x  # the last block of each resolution
    # Feature pyramid back to stride 4: the coarsest level, upsampled and added level by level.
    feat = _scaled(spec, FEATURES)
    levels = [levels[g] for g in sorted(levels, reverse=True)]
    top = ops.conv("trunk__top", levels[-1], 1, 1, feat, relu=False)
    for i, level in enumerate(reversed(levels[:-1])):
        up = ops.upsample(f"trunk__up{i + 1}", top)
        lateral = ops.conv(f"trunk__lateral{i + 1}", level, 1, 1, feat, relu=False)
        top = ops.add(f"trunk__merge{i + 1}", up, lateral)
        if ops.grid(top) == spec.heatmap_size:
            break
    features = ops.conv("trunk__features", top, 1, 1, feat)
    mid = _scaled(spec, STAGE_CHANNELS)
    outputs = []
    for t in range(1, spec.stages + 1):
        if t == 1:
            x = ops.conv("stage_1__in", features, 1, 1, mid)
            blocks = STAGE1_BLOCKS
        else:
            parts = [outputs[-1], features] + ([ops.centre(features)] if spec.centre_map else [])
            x = ops.conv(f"stage_{t}__in", ops.concat(f"stage_{t}__concat", parts), 1, 1, mid)
            blocks = STAGE_BLOCKS
        for b in range(1, blocks + 1):
            # One depthwise-separable convolution (no norm between its two halves: batch norm and ReLU cost as
            # much CPU time as a depthwise 7x7 at this size), then the residual sum.
            h = ops.dw(f"stage_{t}__block{b}__dw", x, STAGE_KERNEL, 1, relu=False, bn=False)
            h = ops.conv(f"stage_{t}__block{b}__pw", h, 1, 1, mid, relu=False)
            x = ops.relu(f"stage_{t}__block{b}__out", ops.add(f"stage_{t}__block{b}__add", x, h))
        outputs.append(ops.conv(f"stage_{t}__heatmap", x, 1, 1, spec.channels, relu=False, bn=False))
    return outputs


class _PlanOps:
    """Tracks (grid, channels) through `_walk` and records every convolution."""

    def __init__(self, spec: ModelSpec):
        self.image = (spec.input_size, 3)
        self.layers: list[LayerDef] = []

    def conv(self, name, x, k, s, cout, relu=True, bn=True):
        grid = x[0] // s
        self.layers.append(LayerDef(name, "conv", k, s, x[1], cout, grid, bn, relu))
        return grid, cout

    def dw(self, name, x, k, s, relu=True, bn=True):
        grid = x[0] // s
        self.layers.append(LayerDef(name, "dw", k, s, x[1], x[1], grid, bn, relu))
        return grid, x[1]

    def add(self, name, a, b):
        return a

    def relu(self, name, x):
        return x

    def upsample(self, name, x):
        return x[0] * 2, x[1]

    def concat(self, name, parts):
        return parts[0][0], sum(p[1] for p in parts)

    def centre(self, features):
        return features[0], 1

    @staticmethod
    def channels(x):
        return x[1]

    @staticmethod
    def grid(x):
        return x[0]


def mobile_plan(spec: ModelSpec) -> list[LayerDef]:
    """Every convolution of a mobile CPM in build order, without TensorFlow (FLOPs, weight checks, docs)."""
    ops = _PlanOps(spec)
    _walk(spec, ops)
    return ops.layers


class _KerasOps:
    """Builds Keras layers through `_walk`; batch norm after each convolution when the spec trains with it."""

    def __init__(self, spec: ModelSpec, policy: str, image):
        import keras

        self.keras = keras
        self.spec = spec
        self.policy = policy
        self.image = image
        self._centre = None

    def _finish(self, name, x, relu, bn):
        k = self.keras
        if bn and self.spec.batch_norm:
            x = k.layers.BatchNormalization(name=name + BN_SUFFIX, dtype=self.policy)(x)
        if relu:
            x = k.layers.ReLU(name=name + "__relu", dtype=self.policy)(x)
        return x

    def conv(self, name, x, k, s, cout, relu=True, bn=True):
        use_bn = bn and self.spec.batch_norm
        x = self.keras.layers.Conv2D(cout, k, strides=s, padding="same", use_bias=not use_bn, name=name,
                                     dtype=self.policy)(x)
        return self._finish(name, x, relu, bn)

    def dw(self, name, x, k, s, relu=True, bn=True):
        x = self.keras.layers.DepthwiseConv2D(k, strides=s, padding="same",
                                              use_bias=not (bn and self.spec.batch_norm), name=name,
                                              dtype=self.policy)(x)
        return self._finish(name, x, relu, bn)

    def add(self, name, a, b):
        return self.keras.layers.Add(name=name, dtype=self.policy)([a, b])

    def relu(self, name, x):
        return self.keras.layers.ReLU(name=name, dtype=self.policy)(x)

    def upsample(self, name, x):
        return self.keras.layers.UpSampling2D(2, interpolation="bilinear", name=name, dtype=self.policy)(x)

    def concat(self, name, parts):
        return self.keras.layers.Concatenate(axis=-1, name=name, dtype=self.policy)(parts)

    def centre(self, features):
        from cpm_core.centre_map import CentreMap

        if self._centre is None:
            self._centre = CentreMap(self.spec.input_size, self.spec.stride, name="centre_map",
                                     dtype=self.policy)(features)
        return self._centre

    @staticmethod
    def channels(x):
        return int(x.shape[-1])

    @staticmethod
    def grid(x):
        return int(x.shape[1])


def build_mobile_stages(spec: ModelSpec, policy: str, image) -> list:
    """Keras tensors of every stage's heatmaps for `image` (a Keras input)."""
    return _walk(spec, _KerasOps(spec, policy, image))


def fold_mobile(model, spec: ModelSpec, plain_model) -> None:
    """Copy `model`'s weights into `plain_model` (the same spec without batch norm), folding each batch norm
    into the convolution before it: w' = w * gamma / sqrt(var + eps), b' = (b - mean) * that + beta."""
    import numpy as np

    for layer in mobile_plan(spec):
        weights = model.get_layer(layer.name).get_weights()
        kernel = weights[0]
        bias = weights[1] if len(weights) > 1 else np.zeros(layer.filters, np.float32)
        if spec.batch_norm and layer.bn:
            bn = model.get_layer(layer.name + BN_SUFFIX)
            gamma, beta, mean, var = bn.get_weights()
            scale = gamma / np.sqrt(var + bn.epsilon)
            if layer.kind == "dw":  # (k, k, C, 1): one filter per channel
                kernel = kernel * scale[None, None, :, None]
            else:
                kernel = kernel * scale
            bias = (bias - mean) * scale + beta
        plain_model.get_layer(layer.name).set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
