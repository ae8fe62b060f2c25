"""The efficient CPM family (`blocks = "mobile"`): it builds as its layer plan says, is still a CPM (every
stage's heatmaps out, later stages read the earlier beliefs), trains (loss falls), folds batch norm exactly,
exports to every format with parity, loads back from its card, and old cards still load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from run_configs import write_tiny_config

from cpm_core.mobile import mobile_plan
from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm, fold_batch_norm
from cpm_core.skeleton import HAND_21
from cpm_core.spec import PRESETS, ModelSpec
from cpm_core.weights import load_model, save_model
from training.events import parse_line
from training.export import export_model

ROOT = Path(__file__).resolve().parents[1]
TINY = ModelSpec("tiny-lite", 64, 2, 21, 4, "hand", width=0.5, blocks="mobile")


def _random_bn_statistics(model: keras.Model, seed: int = 5) -> None:
    """Non-trivial batch-norm statistics, as after training (fresh ones fold to the identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.name.endswith("__bn"):
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.1, b.shape),
                               rng.normal(0, 0.1, m.shape), rng.uniform(0.5, 2, v.shape)])


def test_presets_are_mobile_cpms_at_stride_4_and_cheap():
    for name in ("hand-lite-128x3", "body-lite-192x3"):
        spec = PRESETS[name]
        assert spec.blocks == "mobile" and spec.stride == 4 and spec.stages >= 3
    # The budget is measured by bench/inference.py; FLOPs are the part a test can hold fixed.
    assert PRESETS["hand-lite-128x3"].gflops() < 0.1 * PRESETS["hand-rt-128x3"].gflops()
    with pytest.raises(ValueError, match="stride 4"):
        TINY.with_(stride=8)
    with pytest.raises(ValueError, match="blocks"):
        TINY.with_(blocks="resnet")


@pytest.mark.parametrize("batch_norm", [False, True])
def test_model_is_built_as_the_plan_says(batch_norm):
    spec = TINY.with_(batch_norm=batch_norm, trunk="body", centre_map=True)
    model = build_cpm(spec)
    assert model.output_shape == (None, 2, 16, 16, 22)
    plan = mobile_plan(spec)
    flops = 0
    for layer in plan:
        keras_layer = model.get_layer(layer.name)
        kernel = keras_layer.get_weights()[0]
        want = (layer.kernel, layer.kernel, layer.in_channels, 1 if layer.kind == "dw" else layer.filters)
        assert kernel.shape == want, layer.name
        assert keras_layer.output.shape[1] == layer.grid, layer.name
        has_bn = any(x.name == layer.name + "__bn" for x in model.layers)
        assert has_bn == (batch_norm and layer.bn), layer.name
        flops += layer.flops
    assert {type(x).__name__ for x in model.layers} >= {"DepthwiseConv2D", "Conv2D", "Add", "UpSampling2D"}
    assert spec.gflops() == pytest.approx(flops / 1e9)
    assert len(plan) == sum(isinstance(x, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))
                            for x in model.layers)


def test_every_stage_refines_the_previous_beliefs():
    """A CPM, not a deep single-output net: stage t's input includes stage t-1's heatmaps, and each stage's
    output differs (so the multi-stage view shows something per stage)."""
    model = build_cpm(TINY)
    concat = model.get_layer("stage_2__concat")
    assert "stage_1__heatmap" in {n.operation.name for n in concat._inbound_nodes[0].parent_nodes}
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 64, 64, 3)).astype(np.float32)
    out = model(x).numpy()
    assert not np.allclose(out[0, 0], out[0, 1])


def test_batch_norm_folds_exactly():
    spec = TINY.with_(batch_norm=True)
    model = build_cpm(spec)
    _random_bn_statistics(model)
    plain, plain_spec = fold_batch_norm(model, spec)
    assert not plain_spec.batch_norm and plain_spec.blocks == "mobile"
    assert not any(layer.name.endswith("__bn") for layer in plain.layers)
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 64, 64, 3)).astype(np.float32)
    a, b = model(x, training=False).numpy(), plain(x).numpy()
    assert np.abs(a).max() > 0.05  # comparing real numbers
    np.testing.assert_allclose(a, b, atol=1e-4 * np.abs(a).max())
    # and folding really changed the weights (the statistics were not the identity)
    assert not np.allclose(model.get_layer("trunk__stem").get_weights()[0],
                           plain.get_layer("trunk__stem").get_weights()[0])


@pytest.fixture(scope="module")
def tiny_lite_model(tmp_path_factory) -> Path:
    spec = TINY.with_(batch_norm=True)
    model = build_cpm(spec)
    _random_bn_statistics(model)
    plain, plain_spec = fold_batch_norm(model, spec)
    card = ModelCard(spec=plain_spec, skeleton=HAND_21)
    return save_model(plain, card, tmp_path_factory.mktemp("lite") / "model")


def test_loads_back_from_its_card(tiny_lite_model):
    model, card = load_model(tiny_lite_model)
    assert card.spec.blocks == "mobile"
    saved = json.loads((tiny_lite_model / "card.json").read_text())
    assert saved["spec"]["blocks"] == "mobile"
    x = np.random.default_rng(2).uniform(-0.5, 0.5, (1, 64, 64, 3)).astype(np.float32)
    again, _ = load_model(tiny_lite_model)
    np.testing.assert_array_equal(model(x).numpy(), again(x).numpy())


def test_a_card_written_before_blocks_existed_loads_as_vgg(tmp_path):
    spec = ModelSpec("old", 64, 2, 21, 4, "hand", width=0.125)
    folder = save_model(build_cpm(spec), ModelCard(spec=spec, skeleton=HAND_21), tmp_path / "old")
    card = json.loads((folder / "card.json").read_text())
    del card["spec"]["blocks"]
    (folder / "card.json").write_text(json.dumps(card))
    model, loaded = load_model(folder)
    assert loaded.spec.blocks == "vgg" and model.get_layer("sub_stages__sub_conv1") is not None


@pytest.mark.parametrize("fmt", ["savedmodel", "tflite", "onnx", "own"])
def test_exports_to_every_format_with_parity(tiny_lite_model, tmp_path, fmt):
    out = tmp_path / ("m.tflite" if fmt == "tflite" else "m.onnx" if fmt == "onnx" else "m")
    res = export_model(tiny_lite_model, out, fmt)
    assert res["max_abs_diff"] < 1e-4 and res["shape"][1:] == [2, 16, 16, 22]
    assert out.exists()


def test_trains_a_few_steps_and_exports_a_folded_model(tmp_path):
    """A real `cpm train` process on the tiny fixture: loss falls, the exported card is a mobile CPM without
    batch norm, and it loads."""
    cfg = write_tiny_config(tmp_path / "run.toml", 30, {"eval_every": 0, "checkpoint_every": 30})
    text = cfg.read_text().replace('preset = "hand-rt-128x3"', 'preset = "hand-lite-128x3"').replace(
        "spec = { input_size = 64, stages = 2, width = 0.125 }",
        "spec = { input_size = 64, stages = 2, width = 0.5, batch_norm = true }")
    cfg.write_text(text)
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-m", "training.cli", "train", str(cfg)], cwd=ROOT, text=True,
                         capture_output=True, timeout=300, env={**__import__("os").environ, **env})
    assert res.returncode == 0, res.stderr[-2000:]
    events = [parse_line(line) for line in res.stdout.splitlines()]
    steps = [e for e in events if e["event"] == "step"]
    assert np.mean([s["loss"] for s in steps[-3:]]) < np.mean([s["loss"] for s in steps[:3]])
    model_dir = Path(events[-1]["model"])
    model, card = load_model(model_dir)
    assert card.spec.blocks == "mobile" and not card.spec.batch_norm
    assert not any(layer.name.endswith("__bn") for layer in model.layers)
