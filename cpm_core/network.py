"""The one Keras builder for every CPM configuration.

Layers are named after the port's variable scopes ('sub_stages/sub_conv1' -> 'sub_stages__sub_conv1') so
weights map by name. The model returns every stage's heatmaps stacked as (batch, stages, h, w, J), because
the app shows each stage and training supervises each stage.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cpm_core.centre_map import CentreMap
from cpm_core.spec import ConvDef, ModelSpec


def _conv(c: ConvDef, policy: str) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(c.filters, c.kernel, padding="same", activation="relu" if c.relu else None,
                               name=c.keras_name, dtype=policy)


BN_SUFFIX = "__bn"


def _conv_bn_relu(c: ConvDef, policy: str, x):
    """Training-time variant: conv, batch norm, ReLU. Folded away on export (`fold_batch_norm`), so the
    shipped model is the plain CPM of the port's layer plan."""
    x = keras.layers.Conv2D(c.filters, c.kernel, padding="same", name=c.keras_name, dtype=policy)(x)
    x = keras.layers.BatchNormalization(name=c.keras_name + BN_SUFFIX, dtype=policy)(x)
    return keras.layers.ReLU(name=c.keras_name + "__relu", dtype=policy)(x)


def dtype_policy(precision: str) -> str:
    """Keras dtype policy for a compute precision. bfloat16 keeps float32 variables (weights load and save
    unchanged) and computes in bfloat16, which AMX-capable CPUs run about ten times faster."""
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
    return "mixed_bfloat16" if precision == "bfloat16" else "float32"


def build_cpm(spec: ModelSpec, precision: str = "float32") -> keras.Model:
    """Build the CPM of `spec`: input (batch, S, S, 3) normalised image -> (batch, stages, h, w, J)."""
    policy = dtype_policy(precision)
    image = keras.Input((spec.input_size, spec.input_size, 3), name="image")
    if spec.blocks == "mobile":
        from cpm_core.mobile import build_mobile_stages

        stage_outputs = build_mobile_stages(spec, policy, image)
        heatmaps = _Stack(name="stage_heatmaps", dtype="float32")(stage_outputs)
        return keras.Model(image, heatmaps, name=spec.name.replace("-", "_"))
    x = image
    features = None
    stage_outputs = []
    stage = 0
    pools = 0
    centre = None
    for item in spec.conv_plan():
        if item == "P":
            pools += 1
            x = keras.layers.MaxPooling2D(2, 2, padding="same", name=f"sub_stages__pool{pools}", dtype=policy)(x)
            continue
        if isinstance(item, str) and item.startswith("STAGE"):
            if stage == 0:
                features = x
            else:
                stage_outputs.append(x)
            stage = int(item.split()[1])
            if stage == 1:
                x = features
            else:
                parts = [stage_outputs[-1], features]
                if spec.centre_map:
                    if centre is None:
                        centre = CentreMap(spec.input_size, spec.stride, name="centre_map", dtype=policy)(features)
                    parts.append(centre)
                x = keras.layers.Concatenate(axis=-1, name=f"stage_{stage}__concat", dtype=policy)(parts)
            continue
        x = _conv_bn_relu(item, policy, x) if spec.batch_norm and item.relu else _conv(item, policy)(x)
    stage_outputs.append(x)
    heatmaps = _Stack(name="stage_heatmaps", dtype="float32")(stage_outputs)
    return keras.Model(image, heatmaps, name=spec.name.replace("-", "_"))


@keras.saving.register_keras_serializable(package="cpm")
class _Stack(keras.layers.Layer):
    """Stacks the per-stage heatmaps along a new stage axis."""

    def call(self, tensors):
        return tf.stack([tf.cast(t, self.compute_dtype) for t in tensors], axis=1)


def layer_weights(model: keras.Model) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) of every conv layer, keyed by the port's scope name."""
    out = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            k, b = layer.get_weights()
            out[layer.name.replace("__", "/")] = (k, b)
    return out


def cpu_has_fast_bfloat16() -> bool:
    """True on CPUs with AMX bfloat16 tiles, where oneDNN runs bfloat16 convolutions far faster than float32."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


def with_precision(model: keras.Model, spec: ModelSpec, precision: str) -> keras.Model:
    """The same weights in a model built for another compute precision (or `model` itself if it matches)."""
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if all(layer.compute_dtype == precision for layer in convs):
        return model
    clone = build_cpm(spec, precision)
    clone.set_weights(model.get_weights())
    return clone


def fold_batch_norm(model: keras.Model, spec: ModelSpec) -> tuple[keras.Model, ModelSpec]:
    """A plain float32 CPM (no batch norm) computing what `model` computes at inference."""
    plain_spec = spec.with_(batch_norm=False)
    plain = build_cpm(plain_spec, "float32")
    if spec.blocks == "mobile":
        from cpm_core.mobile import fold_mobile

        fold_mobile(model, spec, plain)
        return plain, plain_spec
    for conv in spec.convs():
        kernel, bias = model.get_layer(conv.keras_name).get_weights()
        if spec.batch_norm and conv.relu:
            gamma, beta, mean, var = model.get_layer(conv.keras_name + BN_SUFFIX).get_weights()
            eps = model.get_layer(conv.keras_name + BN_SUFFIX).epsilon
            scale = gamma / np.sqrt(var + eps)
            kernel = kernel * scale
            bias = (bias - mean) * scale + beta
        plain.get_layer(conv.keras_name).set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return plain, plain_spec
