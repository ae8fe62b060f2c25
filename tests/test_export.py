"""`cpm export`: SavedModel and TFLite exports of a tiny model give the Keras model's heatmaps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.preprocess import Normalisation
from cpm_core.skeleton import HAND_21
from cpm_core.weights import load_model, save_model
from training.export import export_model, keras_heatmaps, run_savedmodel, run_tflite

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from cpm_core.spec import ModelSpec

    spec = ModelSpec(name="tiny", input_size=64, stages=2, num_joints=21, stride=4, width=0.125)
    # RGB normalisation, so the export's in-graph channel swap is exercised too.
    card = ModelCard(spec=spec, skeleton=HAND_21, normalisation=Normalisation(1 / 255, -0.5, "RGB"))
    model = build_cpm(spec)
    # Seeded He-scaled weights: heatmaps of order 1, so the tolerances below compare real numbers, whatever
    # Keras's own unseeded initialisation would have drawn.
    rng = np.random.default_rng(11)
    model.set_weights([rng.normal(0, np.sqrt(2.0 / np.prod(w.shape[:-1])), w.shape).astype(np.float32)
                       if w.ndim == 4 else rng.normal(0, 0.05, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return save_model(model, card, tmp_path_factory.mktemp("m") / "model")


def _crops(n: int = 3) -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_savedmodel_matches_keras(tiny_model, tmp_path):
    res = export_model(tiny_model, tmp_path / "sm", "savedmodel")
    assert res["max_abs_diff"] < 1e-4 and res["shape"] == [2, 2, 16, 16, 22]
    model, card = load_model(tiny_model)
    images = _crops()
    np.testing.assert_allclose(run_savedmodel(tmp_path / "sm", images), keras_heatmaps(model, card, images),
                               atol=1e-4)
    assert json.loads((tmp_path / "sm" / "card.json").read_text())["spec"]["input_size"] == 64


def test_tflite_matches_keras_and_float16_is_close(tiny_model, tmp_path):
    model, card = load_model(tiny_model)
    images = _crops(1)
    want = keras_heatmaps(model, card, images)
    assert np.abs(want).max() > 0.1  # a real comparison, not of two all-zero outputs
    res = export_model(tiny_model, tmp_path / "m.tflite", "tflite")
    assert res["max_abs_diff"] < 1e-4
    np.testing.assert_allclose(run_tflite(tmp_path / "m.tflite", images), want, atol=1e-4)
    assert (tmp_path / "m.tflite.card.json").exists()
    res16 = export_model(tiny_model, tmp_path / "m16.tflite", "tflite", float16=True)
    assert res16["max_abs_diff"] < 5e-2
    assert (tmp_path / "m16.tflite").stat().st_size < 0.7 * (tmp_path / "m.tflite").stat().st_size


def test_cli_own_format_and_errors(tiny_model, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run([sys.executable, "-m", "training.cli", "export", str(tiny_model), str(tmp_path / "own"),
                          "--format", "own", "--json"], cwd=ROOT, env=env, text=True, capture_output=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["ok"] and out["max_abs_diff"] == 0.0
    model, card = load_model(tmp_path / "own")
    assert card.normalisation.channels == "RGB"
    with pytest.raises(ValueError, match="float16"):
        export_model(tiny_model, tmp_path / "x", "savedmodel", float16=True)
