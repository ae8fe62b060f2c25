"""Runtimes: every adaptor gives TensorFlow's heatmaps, exports to ONNX and int8 TFLite pass their parity checks,
`runtime="auto"` picks a matching runtime by the measured rule, and a missing package falls back to TensorFlow."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

from cpm_core.estimator import PoseEstimator
from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.preprocess import Normalisation
from cpm_core.runtimes import (
    FLOAT32_TOLERANCE,
    TensorFlowRuntime,
    choose_runtime,
    has_depthwise,
    make_runtime,
    runtime_available,
    tflite_bytes,
)
from cpm_core.skeleton import HAND_21
from cpm_core.spec import ModelSpec
from cpm_core.weights import load_model, save_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CALIBRATION = SHARED / "hand_pseudo" / "train.json"
SPEC = ModelSpec(name="tiny", input_size=64, stages=2, num_joints=21, stride=4, width=0.125)
needs_onnx = pytest.mark.skipif(not runtime_available("onnxruntime"), reason="onnxruntime / tf2onnx not installed")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Converted graphs go to this test's folder, never the user's cache."""
    monkeypatch.setenv("CPM_RUNTIME_CACHE", str(tmp_path / "runtime-cache"))


def _seeded(model: keras.Model, seed: int = 11) -> keras.Model:
    """He-scaled seeded weights: heatmaps of order 1, so tolerances compare real numbers."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, np.sqrt(2.0 / np.prod(w.shape[:-1])), w.shape).astype(np.float32)
                       if w.ndim == 4 else rng.normal(0, 0.05, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def plain():
    """A tiny real CPM with RGB normalisation (the in-graph channel swap is exercised too)."""
    card = ModelCard(spec=SPEC, skeleton=HAND_21, normalisation=Normalisation(1 / 255, -0.5, "RGB"))
    return _seeded(build_cpm(SPEC)), card


@pytest.fixture(scope="module")
def depthwise():
    """A small Keras model with depthwise convolutions and the CPM's output layout (N, stages, h, w, J+1):
    the runtimes must work for any model a builder returns, not only the port's plain convolutions."""
    image = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(16, 3, strides=4, padding="same", activation="relu")(image)
    x = keras.layers.DepthwiseConv2D(5, padding="same", activation="relu")(x)
    s1 = keras.layers.Conv2D(22, 1)(x)
    y = keras.layers.Concatenate()([x, s1])
    y = keras.layers.DepthwiseConv2D(7, padding="same", activation="relu")(y)
    s2 = keras.layers.Conv2D(22, 1)(y)
    out = keras.layers.Lambda(lambda t: keras.ops.stack(t, axis=1))([s1, s2])
    card = ModelCard(spec=SPEC, skeleton=HAND_21, normalisation=Normalisation(1 / 256, -0.5, "BGR"))
    return _seeded(keras.Model(image, out), 3), card


def _crops(n: int = 3, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ["tflite", pytest.param("onnxruntime", marks=needs_onnx)])
@pytest.mark.parametrize("which", ["plain", "depthwise"])
def test_each_runtime_matches_tensorflow(name, which, request):
    model, card = request.getfixturevalue(which)
    reference = TensorFlowRuntime(model, card, "float32")
    runtime = make_runtime(name, model, card, "float32", threads=1)
    assert runtime.name == name and runtime.precision == "float32"
    x = _crops(3)
    want = reference.run(x)
    assert want.shape == (3, 2, 16, 16, 22) and np.abs(want).max() > 0.1  # real numbers, not two zero maps
    np.testing.assert_allclose(runtime.run(x), want, atol=FLOAT32_TOLERANCE)
    np.testing.assert_allclose(runtime.run(x[:1]), want[:1], atol=FLOAT32_TOLERANCE)  # batch size changes back
    np.testing.assert_allclose(runtime.run(x), want, atol=FLOAT32_TOLERANCE)


@needs_onnx
def test_onnx_export_matches_keras(plain, tmp_path):
    from training.export import export_model, keras_heatmaps, run_onnx

    model, card = plain
    folder = save_model(model, card, tmp_path / "model")
    res = export_model(folder, tmp_path / "m.onnx", "onnx")
    assert res["max_abs_diff"] < 1e-4 and res["shape"] == [2, 2, 16, 16, 22]
    x = _crops(2, 9)
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x), keras_heatmaps(*load_model(folder), x), atol=1e-4)
    assert (tmp_path / "m.onnx.card.json").exists()


def test_tflite_int8_quantises_close_to_float(plain, tmp_path):
    """int8 on calibration crops: a quarter-size file whose heatmaps stay near the float ones (not equal)."""
    from training.export import run_tflite

    model, card = plain
    calibration = _crops(16, 21)
    (tmp_path / "f32.tflite").write_bytes(tflite_bytes(model, card))
    (tmp_path / "i8.tflite").write_bytes(tflite_bytes(model, card, "int8", calibration))
    assert (tmp_path / "i8.tflite").stat().st_size < 0.5 * (tmp_path / "f32.tflite").stat().st_size
    x = _crops(2, 4)
    want = TensorFlowRuntime(model, card).run(x)
    got = run_tflite(tmp_path / "i8.tflite", x)
    diff = np.abs(got - want).max()
    assert 0 < diff < 0.1 * np.abs(want).max()
    runtime = make_runtime("tflite-int8", model, card, calibration=calibration)
    assert runtime.name == "tflite-int8" and runtime.precision == "int8"
    with pytest.raises(ValueError, match="calibration"):
        tflite_bytes(model, card, "int8")


@pytest.mark.skipif(not CALIBRATION.is_file(), reason="needs ../shared/data/hand_pseudo/train.json")
def test_int8_export_calibrates_on_real_crops(plain, tmp_path, monkeypatch):
    import training.export as export

    monkeypatch.setattr(export, "CALIBRATION_CROPS", 8)
    model, card = plain
    folder = save_model(model, card, tmp_path / "model")
    crops = export.calibration_crops(card, CALIBRATION, 4)
    assert crops.shape == (4, 64, 64, 3) and crops.dtype == np.uint8 and crops.std() > 10
    res = export.export_model(folder, tmp_path / "i8.tflite", "tflite", int8=True, calibration=CALIBRATION)
    assert res["int8"] and res["shape"] == [2, 2, 16, 16, 22]  # checked on 2 held-out real crops
    assert res["max_abs_diff"] <= res["tolerance"]
    with pytest.raises(ValueError, match="calibration"):
        export.export_model(folder, tmp_path / "x.tflite", "tflite", int8=True)
    with pytest.raises(ValueError, match="tflite"):
        export.export_model(folder, tmp_path / "x.onnx", "onnx", int8=True, calibration=CALIBRATION)


def test_cli_export_onnx_and_int8_arguments(plain, tmp_path, capsys):
    from training.cli import main

    model, card = plain
    folder = save_model(model, card, tmp_path / "model")
    assert main(["export", str(folder), str(tmp_path / "x.tflite"), "--format", "tflite", "--int8"]) == 1
    assert "--calibration" in capsys.readouterr().err
    if runtime_available("onnxruntime"):
        assert main(["export", str(folder), str(tmp_path / "m.onnx"), "--format", "onnx"]) == 0
        assert "OK" in capsys.readouterr().out


def test_auto_picks_by_convolution_kind_and_matches(plain, depthwise):
    """Plain convolutions stay on TensorFlow (its bfloat16 on AMX); depthwise ones go to ONNX Runtime when it is
    installed. Either way the heatmaps match TensorFlow's at the precision chosen."""
    x = _crops(2)
    for (model, card), depthwise_model in ((plain, False), (depthwise, True)):
        assert has_depthwise(model) == depthwise_model
        est = PoseEstimator(model, card)
        want = TensorFlowRuntime(model, card, "float32").run(x)
        got = est.run_raw(x)
        if depthwise_model and runtime_available("onnxruntime"):
            assert est.runtime.name == "onnxruntime" and est.precision == "float32"
        else:
            assert est.runtime.name == "tensorflow"
        tol = FLOAT32_TOLERANCE if est.precision == "float32" else 0.03 * np.abs(want).max()
        assert np.abs(got - want).max() <= tol
        res = est.predict(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))
        assert res.keypoints.shape == (21, 3)
        assert est.model is not None  # the app saves and inspects the Keras model whatever runs it
    # An explicit precision asks for TensorFlow's own numbers (evaluation, training): auto keeps TensorFlow.
    est = PoseEstimator(depthwise[0], depthwise[1], precision="float32")
    assert est.runtime.name == "tensorflow" and est.model is depthwise[0]


def test_missing_packages_fall_back_to_tensorflow(depthwise, monkeypatch):
    model, card = depthwise
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    assert not runtime_available("onnxruntime")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # silently
        assert choose_runtime(model, card, "float32").name == "tensorflow"
        est = PoseEstimator(model, card, precision="float32", runtime="onnxruntime")
    assert est.runtime.name == "tensorflow"
    x = _crops(1)
    np.testing.assert_allclose(est.run_raw(x), TensorFlowRuntime(model, card).run(x), atol=1e-6)
    with pytest.raises(ValueError, match="unknown runtime"):
        PoseEstimator(model, card, runtime="tensorrt")


@needs_onnx
def test_conversions_are_cached(plain, tmp_path):
    model, card = plain
    make_runtime("onnxruntime", model, card)
    cached = list((tmp_path / "runtime-cache").glob("*.onnx"))
    assert len(cached) == 1
    cached[0].write_bytes(b"not a graph")  # the second build reads the cache instead of converting again
    with pytest.raises(Exception):  # noqa: B017 - ONNX Runtime's own error type for an invalid graph
        make_runtime("onnxruntime", model, card)
