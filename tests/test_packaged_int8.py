"""`cpm quantise` packs a checked int8 graph into a model folder; the estimator uses it only while it matches.

Real tiny CPM, real TFLite conversion and interpreter, real COCO fixture; the check's rule is exercised both ways
(a loss it accepts, a loss it refuses: nothing written).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from cpm_core.estimator import PoseEstimator
from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.packaged_runtimes import INT8_FILE, PackagedRuntimeWarning
from cpm_core.runtimes import runtime_available
from cpm_core.skeleton import HAND_21
from cpm_core.spec import ModelSpec
from cpm_core.weights import load_model, save_model
from cpm_core.weights.errors import WeightsError
from training.evaluate import evaluate
from training.quantise import quantise_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "fixtures" / "dataset" / "tiny_coco" / "tiny.json"
pytestmark = pytest.mark.skipif(not runtime_available("tflite-int8"), reason="no TFLite interpreter")


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    spec = ModelSpec(name="tiny", input_size=64, stages=2, num_joints=21, stride=4, width=0.125)
    model = build_cpm(spec)
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(0, np.sqrt(2.0 / np.prod(w.shape[:-1])), w.shape).astype(np.float32)
                       if w.ndim == 4 else rng.normal(0, 0.05, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    folder = save_model(model, ModelCard(spec=spec, skeleton=HAND_21), tmp_path_factory.mktemp("m") / "model")
    res = quantise_model(folder, DATA, DATA, max_loss=1.0)
    assert res["passed"] and res["packed"]
    return folder


def _copy(packed: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(packed, tmp_path / "model"))


def test_packed_model_runs_int8_by_default_and_float_when_asked(packed):
    card = json.loads((packed / "card.json").read_text())
    entry = card["packaged_runtimes"]["tflite-int8"]
    assert entry["file"] == INT8_FILE and (packed / INT8_FILE).stat().st_size > 1000
    assert entry["check"]["subjects"] == 4 and 0 <= entry["check"]["pck@0.2_int8"] <= 1
    est = PoseEstimator.from_path(packed)
    assert est.runtime.name == "tflite-int8"
    assert "packed with the model and checked by `cpm quantise`" in est.runtime_description
    frame = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    res = est.predict(frame)
    assert res.heatmaps.shape == (2, 16, 16, 22) and res.valid
    # An explicit precision is a request for TensorFlow's own numbers (evaluation, training).
    assert PoseEstimator.from_path(packed, precision="float32").runtime.name == "tensorflow"
    # The int8 heatmaps are the float model's, to int8 resolution.
    ref = PoseEstimator.from_path(packed, precision="float32").predict(frame).heatmaps
    assert np.abs(res.heatmaps - ref).max() < 0.15 * np.abs(ref).max()


def test_a_failed_check_writes_nothing(packed, tmp_path):
    folder = _copy(packed, tmp_path)
    (folder / INT8_FILE).unlink()
    card_before = (folder / "card.json").read_bytes()
    res = quantise_model(folder, DATA, DATA, max_loss=-1.0)  # no graph can gain more than a whole PCK point
    assert not res["passed"] and not res["packed"]
    assert not (folder / INT8_FILE).exists() and (folder / "card.json").read_bytes() == card_before


def test_edited_file_or_retrained_weights_fall_back_with_one_warning(packed, tmp_path):
    folder = _copy(packed, tmp_path)
    data = bytearray((folder / INT8_FILE).read_bytes())
    data[-10] ^= 0xFF
    (folder / INT8_FILE).write_bytes(bytes(data))
    with pytest.warns(PackagedRuntimeWarning, match="sha256 differs"):
        est = PoseEstimator.from_path(folder)
    assert est.runtime.name != "tflite-int8"
    shutil.copy(packed / INT8_FILE, folder / INT8_FILE)
    model, _ = load_model(folder)
    card = ModelCard.read(folder / "card.json")
    model.set_weights([w * 1.01 for w in model.get_weights()])  # retrained: the weights file changes
    model.save_weights(str(folder / "weights.weights.h5"))
    with pytest.warns(PackagedRuntimeWarning, match="other weights"):
        assert PoseEstimator.from_path(folder).runtime.name != "tflite-int8"
    # Saving a model through save_model drops the entry: the int8 graph belongs to the old weights.
    out = save_model(model, card, tmp_path / "saved")
    assert "packaged_runtimes" not in json.loads((out / "card.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error", PackagedRuntimeWarning)
        assert PoseEstimator.from_path(out).runtime.name != "tflite-int8"


def test_hostile_card_entries_are_refused(packed, tmp_path):
    folder = _copy(packed, tmp_path)
    card = json.loads((folder / "card.json").read_text())
    for bad in ({"tflite-int8": {**card["packaged_runtimes"]["tflite-int8"], "file": "../../etc/passwd"}},
                {"tflite-int8": {**card["packaged_runtimes"]["tflite-int8"], "sha256": "not a hash"}},
                {"pickle": {}}, ["tflite-int8"]):
        (folder / "card.json").write_text(json.dumps({**card, "packaged_runtimes": bad}))
        with pytest.raises(WeightsError, match="packaged_runtimes"):
            load_model(folder)


def test_eval_measures_the_packed_graph(packed):
    tf_result = evaluate(packed, DATA, runtime="tensorflow")
    int8_result = evaluate(packed, DATA, runtime="packaged")
    assert int8_result["precision"] == "int8" and int8_result["subjects"] == tf_result["subjects"] == 4
    card = json.loads((packed / "card.json").read_text())
    assert int8_result["pck"] == pytest.approx(card["packaged_runtimes"]["tflite-int8"]["check"]["pck@0.2_int8"],
                                               abs=1e-4)


def test_cli_refuses_a_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    proc = subprocess.run([sys.executable, "-m", "training.cli", "quantise", str(tmp_path), "--calibration",
                           str(DATA), "--check", str(DATA)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1 and "not a CPM Studio model folder" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
