"""Weights I/O: our own format and the CPM port's files (.pkl, TF1 checkpoints).

`load_model(path)` accepts any of them and returns a ready Keras model with its model card, so callers never
care which format a user picked.
"""

from cpm_core.weights.errors import NonFiniteWeightsWarning, WeightsError, WeightsMismatchError
from cpm_core.weights.loading import default_model_path, load_model, sniff_format
from cpm_core.weights.own_format import save_model

__all__ = ["NonFiniteWeightsWarning", "WeightsError", "WeightsMismatchError", "default_model_path", "load_model",
           "save_model", "sniff_format"]
