"""CPM Studio's own model format: a folder with `card.json` (the model card) and `weights.weights.h5`.

A folder keeps the card human-readable and editable beside the weights. Saving is atomic: the new folder is
written under a temporary name and swapped in, so a crash never leaves a card without its weights.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.weights.errors import WeightsError

CARD_FILE = "card.json"
WEIGHTS_FILE = "weights.weights.h5"


def save_model(model: keras.Model, card: ModelCard, path: str | Path) -> Path:
    """Write `model` and `card` to the folder `path` (replacing it atomically if it exists)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        model.save_weights(str(tmp / WEIGHTS_FILE))
        with open(tmp / CARD_FILE, "w", encoding="utf-8") as f:
            f.write(card.to_json())
            f.flush()
            os.fsync(f.fileno())
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
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


def load_own(path: str | Path) -> tuple[keras.Model, ModelCard]:
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    card_path = folder / CARD_FILE
    if not card_path.exists():
        raise WeightsError(f"{path}: no {CARD_FILE} in {folder}")
    try:
        card = ModelCard.read(card_path)
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{card_path}: {exc}") from exc
    model = build_cpm(card.spec)
    weights = folder / WEIGHTS_FILE
    if weights.exists():
        try:
            model.load_weights(str(weights))
        except (ValueError, OSError, KeyError) as exc:
            raise WeightsError(f"{weights}: weights do not fit the model described by {CARD_FILE} ({exc})") \
                from exc
    elif not card.trained and "init_seed" in card.provenance:
        _seeded_weights(model, int(card.provenance["init_seed"]))
    else:
        raise WeightsError(f"{folder}: {WEIGHTS_FILE} is missing")
    return model, card
