"""Loading the port's weights files: files of exactly the port's layouts (real key names and shapes, random
arrays) must give the same outputs as an independent forward pass written from the reference, with the same
arrays. Input size is not stored in the weights, so the full-size layouts run at 64 px to stay fast."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tensorflow as tf

from cpm_core.estimator import PoseEstimator
from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.spec import ModelSpec
from cpm_core.weights import WeightsError, WeightsMismatchError, load_model, save_model

RNG = np.random.default_rng(7)


def _conv(k: int, cin: int, cout: int) -> tuple[np.ndarray, np.ndarray]:
    std = np.sqrt(2.0 / (k * k * cin))
    return (RNG.normal(0, std, (k, k, cin, cout)).astype(np.float32),
            RNG.normal(0, 0.05, (cout,)).astype(np.float32))


_COMMON_TRUNK = [("conv1_1", 3, 64), ("conv1_2", 64, 64), ("conv2_1", 64, 128), ("conv2_2", 128, 128),
                 ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256),
                 ("conv4_1", 256, 512), ("conv4_2", 512, 512)]


def _pkl_arrays(trunk_tail: list, heads: tuple[str, str, str], stages: int, j: int,
                centre: bool) -> dict[str, np.ndarray]:
    """Caffe names, HWIO kernels, biases with suffix _b: trunk, image feature, stage 1, then stages 2..T."""
    d: dict[str, np.ndarray] = {}
    for name, cin, cout in _COMMON_TRUNK + trunk_tail:
        d[name], d[name + "_b"] = _conv(3, cin, cout)
    feature, s1, s2 = heads
    d[feature], d[feature + "_b"] = _conv(3, trunk_tail[-1][2], 128)
    d[s1], d[s1 + "_b"] = _conv(1, 128, 512)
    d[s2], d[s2 + "_b"] = _conv(1, 512, j)
    for t in range(2, stages + 1):
        cin = j + 128 + (1 if centre else 0)
        for k in range(1, 6):
            d[f"Mconv{k}_stage{t}"], d[f"Mconv{k}_stage{t}_b"] = _conv(7, cin, 128)
            cin = 128
        d[f"Mconv6_stage{t}"], d[f"Mconv6_stage{t}_b"] = _conv(1, 128, 128)
        d[f"Mconv7_stage{t}"], d[f"Mconv7_stage{t}_b"] = _conv(1, 128, j)
    return d


def hand_pkl_arrays(stages: int = 6, j: int = 22) -> dict[str, np.ndarray]:
    """The published hand .pkl layout."""
    tail = [("conv4_3", 512, 512), ("conv4_4", 512, 512), ("conv5_1", 512, 512), ("conv5_2", 512, 512)]
    return _pkl_arrays(tail, ("conv5_3_CPM", "conv6_1_CPM", "conv6_2_CPM"), stages, j, centre=False)


def body_pkl_arrays(stages: int = 6, j: int = 15) -> dict[str, np.ndarray]:
    """The published body .pkl layout (stage inputs carry the centre map)."""
    tail = [("conv4_3_CPM", 512, 256), ("conv4_4_CPM", 256, 256), ("conv4_5_CPM", 256, 256),
            ("conv4_6_CPM", 256, 256)]
    return _pkl_arrays(tail, ("conv4_7_CPM", "conv5_1_CPM", "conv5_2_CPM"), stages, j, centre=True)


# ---- an independent forward pass, written from CPM_REFERENCE.md with plain tf.nn ops ----

def _c(x, k, b, relu=True):
    y = tf.nn.bias_add(tf.nn.conv2d(x, k, 1, "SAME"), b)
    return tf.nn.relu(y) if relu else y


def _pool(x):
    return tf.nn.max_pool2d(x, 2, 2, "SAME")


def reference_forward(w: dict[str, np.ndarray], x: np.ndarray, kind: str, stages: int) -> np.ndarray:
    """Pkl-named arrays -> (batch, stages, h, w, J), following the port's graph."""
    if kind == "hand":
        blocks = [["conv1_1", "conv1_2"], ["conv2_1", "conv2_2"], ["conv3_1", "conv3_2", "conv3_3", "conv3_4"],
                  ["conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1", "conv5_2", "conv5_3_CPM"]]
        s1, s2 = "conv6_1_CPM", "conv6_2_CPM"
    else:
        blocks = [["conv1_1", "conv1_2"], ["conv2_1", "conv2_2"], ["conv3_1", "conv3_2", "conv3_3", "conv3_4"],
                  ["conv4_1", "conv4_2", "conv4_3_CPM", "conv4_4_CPM", "conv4_5_CPM", "conv4_6_CPM",
                   "conv4_7_CPM"]]
        s1, s2 = "conv5_1_CPM", "conv5_2_CPM"
    h = tf.constant(x)
    for i, block in enumerate(blocks):
        if i:
            h = _pool(h)
        for name in block:
            h = _c(h, w[name], w[name + "_b"])
    feat = h
    out = [_c(_c(feat, w[s1], w[s1 + "_b"]), w[s2], w[s2 + "_b"], relu=False)]
    size = x.shape[1]
    if kind == "body":
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        g = np.exp(-((xx - size / 2) ** 2 + (yy - size / 2) ** 2) / (2 * 21.0 ** 2)).astype(np.float32)
        centre = tf.nn.avg_pool2d(g[None, :, :, None], 9, 8, "SAME")
        centre = tf.tile(centre, [x.shape[0], 1, 1, 1])
    for t in range(2, stages + 1):
        parts = [out[-1], feat] + ([centre] if kind == "body" else [])
        h = tf.concat(parts, axis=-1)
        for k in range(1, 7):
            h = _c(h, w[f"Mconv{k}_stage{t}"], w[f"Mconv{k}_stage{t}_b"])
        out.append(_c(h, w[f"Mconv7_stage{t}"], w[f"Mconv7_stage{t}_b"], relu=False))
    return tf.stack(out, axis=1).numpy()


def _input(size: int, batch: int = 2) -> np.ndarray:
    return RNG.uniform(-0.5, 0.5, (batch, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("kind", ["hand", "body"])
def test_port_pkl_loads_and_matches_reference(tmp_path, kind):
    arrays = hand_pkl_arrays() if kind == "hand" else body_pkl_arrays()
    path = tmp_path / f"{kind}.pkl"
    with open(path, "wb") as f:
        pickle.dump(arrays, f, protocol=2)
    model, card = load_model(path, input_size=64)
    assert card.spec.stages == 6
    assert card.spec.num_joints == (21 if kind == "hand" else 14)
    assert card.spec.centre_map == (kind == "body")
    assert card.skeleton.name == ("hand21" if kind == "hand" else "body14")
    x = _input(64)
    ours = model(x, training=False).numpy()
    ref = reference_forward(arrays, x, kind, 6)
    assert ours.shape == ref.shape == (2, 6, 8, 8, 22 if kind == "hand" else 15)
    assert np.abs(ref).max() > 1e-3  # the comparison is not between two zero tensors
    np.testing.assert_array_equal(ours, ref)


def _write_tf1_checkpoint(path, arrays: dict[str, tuple[np.ndarray, np.ndarray]], slim: bool,
                          outer: str = "") -> str:
    """Save variables with the port's TF1 names (plus a global step and optimiser slots, as real files have)."""
    kname, bname = ("weights", "biases") if slim else ("kernel", "bias")
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.train.create_global_step()
        for scope, (k, b) in arrays.items():
            full = f"{outer}{scope}"
            tf.compat.v1.Variable(k, name=f"{full}/{kname}")
            tf.compat.v1.Variable(b, name=f"{full}/{bname}")
            tf.compat.v1.Variable(np.zeros_like(k), name=f"{full}/{kname}/RMSProp")
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            return saver.save(sess, str(path / "model.ckpt"), global_step=1000)


def _hand_ckpt_arrays(stages: int = 3) -> tuple[dict, dict]:
    """The published TF checkpoint layout, plus the same arrays under pkl names for the reference pass."""
    pkl = hand_pkl_arrays(stages=stages)
    trunk = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4", "conv4_1",
             "conv4_2", "conv4_3", "conv4_4", "conv5_1", "conv5_2"]
    ck = {f"sub_stages/sub_conv{i + 1}": (pkl[n], pkl[n + "_b"]) for i, n in enumerate(trunk)}
    ck["sub_stages/sub_stage_img_feature"] = (pkl["conv5_3_CPM"], pkl["conv5_3_CPM_b"])
    ck["stage_1/conv1"] = (pkl["conv6_1_CPM"], pkl["conv6_1_CPM_b"])
    ck["stage_1/stage_heatmap"] = (pkl["conv6_2_CPM"], pkl["conv6_2_CPM_b"])
    for t in range(2, stages + 1):
        for k in range(1, 8):
            ck[f"stage_{t}/mid_conv{k}"] = (pkl[f"Mconv{k}_stage{t}"], pkl[f"Mconv{k}_stage{t}_b"])
    return ck, pkl


@pytest.mark.parametrize("slim,outer", [(False, ""), (True, ""), (False, "CPM/")])
def test_tf1_checkpoint_loads_and_matches_reference(tmp_path, slim, outer):
    ck, pkl = _hand_ckpt_arrays(stages=3)
    prefix = _write_tf1_checkpoint(tmp_path, ck, slim=slim, outer=outer)
    # Load by prefix, by the .index file and by the folder.
    for path in (prefix, prefix + ".index", tmp_path):
        model, card = load_model(path, input_size=64)
        assert (card.spec.stages, card.spec.num_joints, card.spec.trunk) == (3, 21, "hand")
    x = _input(64)
    np.testing.assert_array_equal(model(x, training=False).numpy(), reference_forward(pkl, x, "hand", 3))


def test_shape_mismatch_names_layer_and_both_shapes(tmp_path):
    arrays = hand_pkl_arrays(stages=2)
    arrays["conv6_2_CPM"] = arrays["conv6_2_CPM"][..., :21]  # 21 instead of 22 channels: J vs joints mix-up
    arrays["conv6_2_CPM_b"] = arrays["conv6_2_CPM_b"][:21]
    path = tmp_path / "bad.pkl"
    with open(path, "wb") as f:
        pickle.dump(arrays, f)
    with pytest.raises(WeightsMismatchError) as err:
        load_model(path, spec=ModelSpec("hand", 64, 2, 21, 8, "hand"))
    msg = str(err.value)
    assert "stage_1/stage_heatmap" in msg and "(1, 1, 512, 21)" in msg and "(1, 1, 512, 22)" in msg
    assert "background" in msg


def test_bad_files_give_clear_errors(tmp_path):
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"\x80\x04 definitely not a pickle")
    with pytest.raises(WeightsError, match="junk.pkl"):
        load_model(junk)
    other = tmp_path / "other.pkl"
    with open(other, "wb") as f:
        pickle.dump({"fc1": np.zeros((3, 3))}, f)
    with pytest.raises(WeightsError, match="neither a hand"):
        load_model(other)
    with pytest.raises(WeightsError, match="no such file"):
        load_model(tmp_path / "missing.bin")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(WeightsError):
        load_model(empty_dir)


def test_own_format_round_trip_is_exact(tmp_path, tiny_spec):
    model = build_cpm(tiny_spec)
    card = ModelCard.for_spec(tiny_spec, description="test", metrics={"pck@0.2": 0.5})
    out = save_model(model, card, tmp_path / "m")
    loaded, card2 = load_model(out)
    assert card2.to_dict() == card.to_dict()
    x = _input(64)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    # Saving again over the folder replaces it atomically and leaves no temporary folders behind.
    save_model(model, card, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_convert_weights_cli_then_infer(tmp_path):
    from training.cli import main

    path = tmp_path / "hand.pkl"
    with open(path, "wb") as f:
        pickle.dump(hand_pkl_arrays(stages=2), f)
    out = tmp_path / "converted"
    assert main(["convert-weights", str(path), str(out), "--input-size", "64"]) == 0
    est = PoseEstimator.from_path(out, precision="float32")
    assert est.card.provenance["format"] == "pkl"
    model, _ = load_model(path, input_size=64)
    x = (RNG.uniform(0, 255, (1, 64, 64, 3))).astype(np.uint8)
    np.testing.assert_array_equal(est.run_raw(x), model(x.astype(np.float32) / 256 - 0.5).numpy())
    assert main(["convert-weights", str(tmp_path / "nope.pkl"), str(tmp_path / "x")]) == 2
