"""Errors a user can act on: they name the file, the layer and both shapes."""


class WeightsError(ValueError):
    """A weights file that cannot be read or does not describe a CPM."""


class WeightsMismatchError(WeightsError):
    """A weights file whose arrays do not fit the model they are loaded into."""


class NonFiniteWeightsWarning(UserWarning):
    """Weights that hold NaN or infinite values: they load, but the model's output will be meaningless."""
