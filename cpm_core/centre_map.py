"""The port's centre map: the constant third input of body models' refinement stages.

Its own module because both CPM builders use it (`cpm_core.network` for the port's VGG family, `cpm_core.mobile`
for the efficient family) and `cpm_core.network` imports `cpm_core.mobile`: with the layer here, neither builder
imports the other back. `CentreMap` is registered with Keras as "cpm>CentreMap", a name that does not depend on
the module, so moving it here changes nothing for saved models.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

CENTRE_SIGMA = 21.0


def centre_map(input_size: int, stride: int, sigma: float = CENTRE_SIGMA) -> np.ndarray:
    """The port's centre map: a Gaussian at the image centre, average-pooled 9x9 / stride to the heatmap grid."""
    ys, xs = np.mgrid[0:input_size, 0:input_size].astype(np.float32)
    c = input_size / 2.0
    g = np.exp(-((xs - c) ** 2 + (ys - c) ** 2) / (2.0 * sigma * sigma)).astype(np.float32)
    pooled = tf.nn.avg_pool2d(g[None, :, :, None], ksize=9, strides=stride, padding="SAME")
    return pooled.numpy()[0]


@keras.saving.register_keras_serializable(package="cpm")
class CentreMap(keras.layers.Layer):
    """Emits the constant pooled centre map for each image of the batch (body models' third stage input)."""

    def __init__(self, input_size: int, stride: int, **kwargs):
        super().__init__(**kwargs)
        self.input_size = input_size
        self.stride = stride
        self._map = centre_map(input_size, stride)

    def call(self, features):
        batch = tf.shape(features)[0]
        m = tf.constant(self._map, dtype=features.dtype)
        return tf.tile(m[None], [batch, 1, 1, 1])

    def get_config(self):
        return {**super().get_config(), "input_size": self.input_size, "stride": self.stride}
