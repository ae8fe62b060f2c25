"""One entry point for every weights format, and the embedded defaults."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import keras
import numpy as np

from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.preprocess import Normalisation
from cpm_core.skeleton import BODY_14, HAND_21, generic_skeleton
from cpm_core.spec import ModelSpec
from cpm_core.weights.assign import assign_layer_arrays
from cpm_core.weights.errors import NonFiniteWeightsWarning, WeightsError
from cpm_core.weights.own_format import CARD_FILE, load_own
from cpm_core.weights.port_pkl import pkl_layer_arrays, read_pkl, spec_from_pkl
from cpm_core.weights.tf_checkpoint import read_checkpoint, spec_from_checkpoint

DEFAULT_MODELS = {"hand": "hand_default", "body": "body_default"}
PORT_NORMALISATION = Normalisation(scale=1 / 256, offset=-0.5, channels="BGR")


def resources_dir() -> Path:
    """The `resources/` folder (overridable with CPM_STUDIO_RESOURCES for relocated installs)."""
    env = os.environ.get("CPM_STUDIO_RESOURCES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "resources"


def default_model_path(kind: str = "hand") -> Path:
    try:
        return resources_dir() / "models" / DEFAULT_MODELS[kind]
    except KeyError:
        raise KeyError(f"no default model for {kind!r}; choose one of {sorted(DEFAULT_MODELS)}") from None


def sniff_format(path: str | Path) -> str:
    """'own', 'pkl' or 'checkpoint', from the path's shape and the file's first bytes."""
    p = Path(path)
    if p.is_dir():
        if (p / CARD_FILE).exists():
            return "own"
        if (p / "checkpoint").exists() or any(p.glob("*.index")):
            return "checkpoint"
        raise WeightsError(f"{path}: folder holds neither a CPM Studio model ({CARD_FILE}) nor a checkpoint")
    name = p.name
    if name == CARD_FILE or name.endswith(".weights.h5"):
        return "own"
    if name.endswith(".index") or ".data-" in name or name.endswith(".meta") or Path(str(p) + ".index").exists():
        return "checkpoint"
    if not p.exists():
        raise WeightsError(f"{path}: no such file")
    with open(p, "rb") as f:
        head = f.read(2)
    if name.endswith((".pkl", ".pickle")) or head[:1] == b"\x80" or head[:1] == b"(":
        return "pkl"
    raise WeightsError(f"{path}: unrecognised weights file (expected a CPM Studio model folder, a .pkl or a "
                       "TensorFlow checkpoint)")


def _port_card(spec: ModelSpec, source: Path, fmt: str) -> ModelCard:
    if spec.num_joints == 21:
        skel = HAND_21
    elif spec.num_joints == 14:
        skel = BODY_14
    else:
        skel = generic_skeleton(spec.num_joints)
    return ModelCard(spec=spec, skeleton=skel, normalisation=PORT_NORMALISATION, name=source.stem or source.name,
                     description=f"Converted from the CPM port's {fmt} file {source.name}",
                     provenance={"source": str(source), "format": fmt})


def load_model(path: str | Path, *, input_size: int | None = None, stride: int | None = None,
               spec: ModelSpec | None = None) -> tuple[keras.Model, ModelCard]:
    """Load any supported weights; `spec` (or `input_size` / `stride`) overrides what the port's files
    cannot tell (their input size and stride are not stored in the weights)."""
    p = Path(path)
    fmt = sniff_format(p)
    if fmt == "own":
        model, card = load_own(p)
        warn_non_finite(model, p)
        return model, card
    if fmt == "pkl":
        arrays, kind = pkl_layer_arrays(read_pkl(p), str(p))
        guessed = spec_from_pkl(arrays, kind, input_size or 368, source=str(p))
    else:
        arrays = read_checkpoint(p)
        try:
            guessed = spec_from_checkpoint(arrays, input_size or 256, stride or 8)
        except WeightsError as exc:
            raise WeightsError(f"{p}: {exc}") from None
    try:
        if spec is None:
            spec = guessed.with_(stride=stride or guessed.stride)
        model = build_cpm(spec)
    except ValueError as exc:  # e.g. --stride 4 with an input size that is no multiple of it
        raise WeightsError(f"{p}: {exc}") from None
    assign_layer_arrays(model, spec, arrays, str(p))
    warn_non_finite(model, p)
    return model, _port_card(spec, p, fmt)


def warn_non_finite(model: keras.Model, source: str | Path) -> int:
    """Warn (one `NonFiniteWeightsWarning` per load) if any weight is NaN or infinite; the count of such values.

    Why: NaN weights (a diverged training run, a corrupted conversion) loaded silently and every heatmap came out
    NaN, which the app shows as "no pose" without saying why. They are still loaded, so such a file can be
    inspected, but the user is told once, with the layers concerned."""
    bad = 0
    layers: list[str] = []
    for layer in model.layers:
        count = sum(int(np.size(w) - np.count_nonzero(np.isfinite(w))) for w in layer.get_weights())
        if count:
            bad += count
            layers.append(layer.name)
    if bad:
        shown = ", ".join(layers[:3]) + (f" and {len(layers) - 3} more" if len(layers) > 3 else "")
        warnings.warn(f"{source}: {bad} weight value(s) are NaN or infinite (layers {shown}); this model's output "
                      "will be meaningless", NonFiniteWeightsWarning, stacklevel=3)
    return bad
