"""CPM Studio's own model format: a folder with `card.json` (the model card) and `weights.weights.h5`.

A folder keeps the card human-readable and editable beside the weights. Saving is atomic: the new folder is
written under a temporary name and swapped in, so a crash never leaves a card without its weights.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.packaged_runtimes import PACKAGED_FILES
from cpm_core.weights.errors import WeightsError

CARD_FILE = "card.json"
WEIGHTS_FILE = "weights.weights.h5"


# What a folder of ours holds: a model folder, or a `cpm export --format savedmodel` folder (with our card).
OWN_ENTRIES = frozenset({CARD_FILE, WEIGHTS_FILE, *PACKAGED_FILES.values()})
SAVEDMODEL_ENTRIES = frozenset({CARD_FILE, "saved_model.pb", "fingerprint.pb", "variables", "assets"})


class OutputFolderError(WeightsError):
    """An output folder that holds someone's files: replacing it would delete them."""


def check_output_folder(path: str | Path, ours: frozenset[str] = OWN_ENTRIES, force: bool = False) -> None:
    """Refuse to replace `path` unless it is missing, empty, or holds only what we write there (with our card).

    Why: writing a model replaces its folder as a whole, so a folder the user named by mistake (or a model folder
    they put notes into) would lose everything in it. `force` is the user's explicit `--force`.
    """
    path = Path(path)
    if force or not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        raise OutputFolderError(f"{path}: exists and is not a folder; choose another output or pass --force to "
                                "replace it")
    entries = {p.name for p in path.iterdir()}
    if not entries or (CARD_FILE in entries and entries <= ours):
        return
    others = sorted(entries - ours) if CARD_FILE in entries else sorted(entries)
    shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
    raise OutputFolderError(f"{path}: folder is not empty and is not a model written here (it holds {shown}); "
                            "choose another folder or pass --force to replace it and everything in it")


def replace_folder(new: Path, path: Path) -> None:
    """Put the finished folder `new` (a sibling of `path`) at `path`: the old one is moved aside first and deleted
    only once the new one is in place, so a crash leaves either the old or the new folder, never half of one."""
    old = None
    if os.path.lexists(path):
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    try:
        os.replace(new, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def save_model(model: keras.Model, card: ModelCard, path: str | Path, force: bool = False) -> Path:
    """Write `model` and `card` to the folder `path`, atomically (a temporary sibling renamed into place).

    An existing folder is replaced only if it is empty or a model folder of ours (`check_output_folder`), or
    with `force`; otherwise `OutputFolderError` and nothing is written. The card's packaged runtimes (a checked
    int8 file, `cpm_core.packaged_runtimes`) are dropped: they were made from other weights.
    """
    path = Path(path)
    check_output_folder(path, OWN_ENTRIES, force)
    if card.packaged_runtimes:  # they were made from the weights this card came with, not these: not carried over
        card = dataclasses.replace(card, packaged_runtimes={})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        model.save_weights(str(tmp / WEIGHTS_FILE))
        with open(tmp / CARD_FILE, "w", encoding="utf-8") as f:
            f.write(card.to_json())
            f.flush()
            os.fsync(f.fileno())
        replace_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _seeded_weights(model: keras.Model, seed: int) -> None:
    """Deterministic Glorot-uniform weights: the untrained placeholder must look the same on every machine."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            k = layer.kernel.shape
            fan_in, fan_out = k[0] * k[1] * k[2], k[0] * k[1] * k[3]
            lim = np.sqrt(6.0 / (fan_in + fan_out))
            layer.set_weights([rng.uniform(-lim, lim, size=k).astype(np.float32),
                               np.zeros(k[3], np.float32)])


def _weighted_layer_count(weights: Path) -> int | None:
    """How many layers hold variables in a Keras `.weights.h5` file (None if the file cannot be read that way)."""
    try:
        import h5py
    except ImportError:
        return None
    try:
        with h5py.File(weights, "r") as f:
            layers = f.get("layers")
            if layers is None:
                return None
            return sum(1 for name in layers if len(layers[name].get("vars", {})) > 0)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _describe(spec) -> str:
    return (f"{spec.stages} stages, {spec.num_joints} joints, input {spec.input_size}px, stride {spec.stride}, "
            f"width x{spec.width:g}, {spec.blocks} blocks")


def load_own(path: str | Path) -> tuple[keras.Model, ModelCard]:
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    card_path = folder / CARD_FILE
    if not card_path.exists():
        raise WeightsError(f"{path}: no {CARD_FILE} in {folder}")
    try:
        card = ModelCard.read(card_path)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        message = str(exc)
        raise WeightsError(message if message.startswith(str(card_path)) else f"{card_path}: {message}") from None
    try:
        model = build_cpm(card.spec)
    except (ValueError, TypeError, MemoryError) as exc:
        raise WeightsError(f"{card_path}: cannot build the model this card describes ({exc})") from None
    weights = folder / WEIGHTS_FILE
    if weights.exists():
        # Compare the layer counts first: a card that describes another model (6 stages over 3-stage weights)
        # made Keras fail with a 48-line message listing every layer it could not fill.
        have = _weighted_layer_count(weights)
        want = sum(1 for layer in model.layers if layer.weights)
        if have is not None and have != want:
            raise WeightsError(f"{weights}: holds {have} layers of weights, but {CARD_FILE} describes a model with "
                               f"{want} ({_describe(card.spec)}): the card does not belong to these weights (was it "
                               "edited, or copied from another model?)")
        try:
            model.load_weights(str(weights))
        except (ValueError, OSError, KeyError, TypeError) as exc:
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:300]
            raise WeightsError(f"{weights}: weights do not fit the model described by {CARD_FILE} "
                               f"({_describe(card.spec)}): {first}") from None
    elif not card.trained and "init_seed" in card.provenance:
        try:
            seed = int(card.provenance["init_seed"])
        except (TypeError, ValueError):
            raise WeightsError(f"{card_path}: provenance.init_seed must be a whole number") from None
        _seeded_weights(model, seed)
    else:
        raise WeightsError(f"{folder}: {WEIGHTS_FILE} is missing")
    return model, card
