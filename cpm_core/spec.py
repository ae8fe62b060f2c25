"""Model specifications: the few numbers that fix a CPM's shape, and the presets users know.

The layer plan below is the single source of truth for layer names and shapes: the Keras builder, the weight
loaders (which map the port's variable scopes by name) and the FLOP counter all read it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

# Trunk channel plans of the port ('P' = 2x2 max-pool). Hand: sub_conv9..14 are 512; body: 9..10 512, 11..14 256.
_HAND_TRUNK = (64, 64, "P", 128, 128, "P", 256, 256, 256, 256, "P", 512, 512, 512, 512, 512, 512)
_BODY_TRUNK = (64, 64, "P", 128, 128, "P", 256, 256, 256, 256, "P", 512, 512, 256, 256, 256, 256)
FEATURE_CHANNELS = 128
STAGE1_CHANNELS = 512
MID_CHANNELS = 128
MID_KERNEL = 7
BLOCK_FAMILIES = ("vgg", "mobile")
MAX_STAGES = 32
MAX_INPUT_SIZE = 4096


@dataclass(frozen=True)
class ConvDef:
    """One convolution of the plan; `scope` is the port's variable scope (e.g. 'stage_2/mid_conv1')."""

    scope: str
    kernel: int
    filters: int
    in_channels: int
    relu: bool
    grid: int  # spatial size (square) at which this conv runs, for FLOP counting

    @property
    def keras_name(self) -> str:
        return scope_to_layer_name(self.scope)


def scope_to_layer_name(scope: str) -> str:
    """Keras 3 forbids '/' in layer names; the port's scopes map one-to-one onto '__'-joined names."""
    return scope.replace("/", "__")


@dataclass(frozen=True)
class ModelSpec:
    """Shape of one CPM. `num_joints` excludes the background channel the model also predicts."""

    name: str = "custom"
    input_size: int = 368
    stages: int = 6
    num_joints: int = 21
    stride: int = 8
    trunk: str = "hand"  # "hand" or "body": the two trunk channel plans of the port
    width: float = 1.0  # multiplier on every hidden channel count (not on the heatmap channels)
    centre_map: bool = False
    batch_norm: bool = False  # training only: folded into the convolutions when a model is exported
    # Block family: "vgg" = the port's plain 3x3 trunk and 7x7 stage convolutions (its weights load by name);
    # "mobile" = inverted-residual trunk and depthwise-separable refinement stages (cpm_core/mobile.py).
    # Cards written before this field existed have no "blocks" key and so read as "vgg".
    blocks: str = "vgg"

    def __post_init__(self) -> None:
        self._check_types()
        # Upper bounds: a model card is a file from elsewhere, and a card asking for a million stages or pixels
        # would hang or exhaust the app that builds its model rather than fail.
        if not 2 <= self.stages <= MAX_STAGES:
            raise ValueError(f"a CPM needs at least 2 stages and at most {MAX_STAGES}, got {self.stages}")
        if self.input_size > MAX_INPUT_SIZE:
            raise ValueError(f"input size {self.input_size} is larger than {MAX_INPUT_SIZE} pixels")
        if self.stride not in (4, 8):
            raise ValueError(f"stride must be 4 or 8, got {self.stride}")
        if self.blocks not in BLOCK_FAMILIES:
            raise ValueError(f"blocks must be one of {', '.join(BLOCK_FAMILIES)}, got {self.blocks!r}")
        if self.blocks == "mobile" and self.stride != 4:
            raise ValueError(f"mobile-block CPMs put their heatmaps at stride 4, got stride {self.stride}")
        if self.trunk not in ("hand", "body"):
            raise ValueError(f"trunk must be 'hand' or 'body', got {self.trunk!r}")
        if self.input_size % self.stride or self.input_size < 4 * self.stride:
            raise ValueError(f"input size {self.input_size} must be a multiple of the stride {self.stride} "
                             f"and at least {4 * self.stride}")
        if not 1 <= self.num_joints <= 1000:
            raise ValueError(f"num_joints must be 1 to 1000, got {self.num_joints}")
        if not 0 < self.width <= 4:
            raise ValueError(f"width multiplier must be in (0, 4], got {self.width}")

    def _check_types(self) -> None:
        """Each field has its type (integral floats such as 128.0 become ints), else one ValueError naming the field.

        Why: a hand-edited card with `"input_size": "abc"` reached the arithmetic below and failed with
        Python's "not all arguments converted during string formatting", which names neither field nor value."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                    raise ValueError(f"model spec field {f.name!r} must be a whole number, got {value!r}")
                value = int(value)
            elif f.type in ("float", float):
                if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
                    raise ValueError(f"model spec field {f.name!r} must be a finite number, got {value!r}")
                value = float(value)
            elif f.type in ("bool", bool):
                if not isinstance(value, bool | np.bool_):
                    raise ValueError(f"model spec field {f.name!r} must be true or false, got {value!r}")
                value = bool(value)
            elif f.type in ("str", str) and not isinstance(value, str):
                raise ValueError(f"model spec field {f.name!r} must be a string, got {value!r}")
            object.__setattr__(self, f.name, value)

    @property
    def heatmap_size(self) -> int:
        return self.input_size // self.stride

    @property
    def channels(self) -> int:
        """Heatmap channels J = joints + background."""
        return self.num_joints + 1

    def scaled(self, channels: int) -> int:
        return max(4, int(round(channels * self.width)))

    def conv_plan(self) -> list[ConvDef | str]:
        """Every layer in build order: ConvDefs, 'P' for a pool, 'STAGE t' markers before each stage.

        Only the "vgg" family has this plan (the port's scopes); a "mobile" model's layers are listed by
        `cpm_core.mobile.mobile_plan`."""
        if self.blocks != "vgg":
            raise ValueError(f"{self.name}: conv_plan() describes the port's VGG family; this model uses "
                             f"{self.blocks!r} blocks")
        plan: list[ConvDef | str] = []
        trunk = _HAND_TRUNK if self.trunk == "hand" else _BODY_TRUNK
        c_in, grid, k, pools = 3, self.input_size, 0, 0
        for item in trunk:
            if item == "P":
                pools += 1
                if self.stride == 4 and pools == 2:
                    continue  # the port's stride-4 "v2" student drops the second pool
                plan.append("P")
                grid //= 2
                continue
            k += 1
            c = self.scaled(item)
            plan.append(ConvDef(f"sub_stages/sub_conv{k}", 3, c, c_in, True, grid))
            c_in = c
        feat = self.scaled(FEATURE_CHANNELS)
        plan.append(ConvDef("sub_stages/sub_stage_img_feature", 3, feat, c_in, True, grid))
        plan.append("STAGE 1")
        s1 = self.scaled(STAGE1_CHANNELS)
        plan.append(ConvDef("stage_1/conv1", 1, s1, feat, True, grid))
        plan.append(ConvDef("stage_1/stage_heatmap", 1, self.channels, s1, False, grid))
        mid = self.scaled(MID_CHANNELS)
        stage_in = self.channels + feat + (1 if self.centre_map else 0)
        for t in range(2, self.stages + 1):
            plan.append(f"STAGE {t}")
            c_in = stage_in
            for m in range(1, 6):
                plan.append(ConvDef(f"stage_{t}/mid_conv{m}", MID_KERNEL, mid, c_in, True, grid))
                c_in = mid
            plan.append(ConvDef(f"stage_{t}/mid_conv6", 1, mid, mid, True, grid))
            plan.append(ConvDef(f"stage_{t}/mid_conv7", 1, self.channels, mid, False, grid))
        return plan

    def convs(self) -> list[ConvDef]:
        return [c for c in self.conv_plan() if isinstance(c, ConvDef)]

    def gflops(self) -> float:
        """Forward-pass cost per frame (2 FLOPs per multiply-add), convolutions only."""
        if self.blocks == "mobile":
            from cpm_core.mobile import mobile_plan

            return sum(layer.flops for layer in mobile_plan(self)) / 1e9
        total = sum(2 * c.kernel * c.kernel * c.in_channels * c.filters * c.grid * c.grid for c in self.convs())
        return total / 1e9

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        if not isinstance(d, dict):
            raise ValueError(f"model spec must be an object of fields, got {type(d).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model spec fields: {sorted(unknown)}")
        return cls(**d)

    def with_(self, **changes) -> ModelSpec:
        return replace(self, **changes)


PRESETS: dict[str, ModelSpec] = {
    "hand-368x6": ModelSpec("hand-368x6", 368, 6, 21, 8, "hand"),
    "hand-256x3": ModelSpec("hand-256x3", 256, 3, 21, 8, "hand"),
    "body-368x6": ModelSpec("body-368x6", 368, 6, 14, 8, "body", centre_map=True),
    "hand-student-128x3": ModelSpec("hand-student-128x3", 128, 3, 21, 4, "hand"),
    # Real-time presets of our own: quarter width, sized for >= 30 frames/s on 2 CPU cores.
    "hand-rt-128x3": ModelSpec("hand-rt-128x3", 128, 3, 21, 4, "hand", width=0.25),
    "body-rt-192x3": ModelSpec("body-rt-192x3", 192, 3, 17, 8, "hand", width=0.25),
    # Efficient CPMs (cpm_core/mobile.py): inverted-residual trunk, depthwise-separable 7x7 refinement stages,
    # batch norm while training (folded on export); every stage's heatmaps at stride 4.
    "hand-lite-128x3": ModelSpec("hand-lite-128x3", 128, 3, 21, 4, "hand", blocks="mobile"),
    "body-lite-192x3": ModelSpec("body-lite-192x3", 192, 3, 17, 4, "body", blocks="mobile"),
}


def get_preset(name: str) -> ModelSpec:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; presets are: {', '.join(PRESETS)}") from None
