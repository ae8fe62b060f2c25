"""Skeletons, specs, heatmap coding, crops and the estimator on the real (tiny) network."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpm_core.centre_map import centre_map
from cpm_core.estimator import PoseEstimator
from cpm_core.heatmaps import decode_predictions, encode_heatmaps, grid_to_input, input_to_grid
from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.preprocess import CropBox, CropTransform
from cpm_core.skeleton import BODY_14, COCO_17, HAND_21, Skeleton, get_skeleton
from cpm_core.spec import PRESETS, ModelSpec


def test_builtin_skeletons():
    assert HAND_21.num_joints == 21 and len(HAND_21.limbs) == 20
    assert HAND_21.joints[0] == "wrist" and HAND_21.joints[4] == "thumb4" and HAND_21.joints[20] == "little4"
    assert (0, 17) in HAND_21.limbs and (19, 20) in HAND_21.limbs
    assert BODY_14.joints[0] == "head_top" and BODY_14.joints[13] == "left_ankle"
    perm = BODY_14.flip_permutation()
    assert perm[2] == 5 and perm[5] == 2 and perm[0] == 0
    assert COCO_17.flip_permutation()[1] == 2
    assert get_skeleton("coco17") is COCO_17
    with pytest.raises(KeyError, match="hand21"):
        get_skeleton("nope")


def test_user_skeleton_round_trip_and_validation():
    s = Skeleton("mouse", ("nose", "tail"), ((0, 1),), flip_pairs=())
    assert Skeleton.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="out of range"):
        Skeleton("bad", ("a", "b"), ((0, 2),))
    with pytest.raises(ValueError, match="duplicate"):
        Skeleton("bad", ("a", "a"), ())


def test_presets_match_the_reference_table():
    shapes = {n: (s.input_size, s.heatmap_size, s.stages, s.channels) for n, s in PRESETS.items()}
    assert shapes["hand-368x6"] == (368, 46, 6, 22)
    assert shapes["hand-256x3"] == (256, 32, 3, 22)
    assert shapes["body-368x6"] == (368, 46, 6, 15)
    assert shapes["hand-student-128x3"] == (128, 32, 3, 22)
    # The brief's figure for the full hand CPM: about 206 GFLOPs a frame.
    assert PRESETS["hand-368x6"].gflops() == pytest.approx(206, abs=1)
    with pytest.raises(ValueError, match="at least 2 stages"):
        ModelSpec(stages=1)


def test_model_layer_names_and_output_shape(tiny_spec):
    model = build_cpm(tiny_spec)
    names = {layer.name for layer in model.layers}
    assert {"sub_stages__sub_conv1", "sub_stages__sub_stage_img_feature", "stage_1__stage_heatmap",
            "stage_2__mid_conv7"} <= names
    assert model.output_shape == (None, 2, 8, 8, 22)


def test_centre_map_peaks_in_the_middle():
    m = centre_map(368, 8)[..., 0]
    assert m.shape == (46, 46)
    y, x = np.unravel_index(m.argmax(), m.shape)
    assert abs(x - 22.5) <= 1 and abs(y - 22.5) <= 1


@settings(max_examples=60, deadline=None)
@given(x=st.floats(1.0, 30.0), y=st.floats(1.0, 30.0))
def test_encode_decode_is_subpixel_exact(x, y):
    hm = encode_heatmaps(np.array([[x, y], [5.0, 5.0]]), np.array([True, False]), 32)
    assert hm.shape == (32, 32, 3)
    assert hm[..., 1].max() == 0.0  # an absent joint has no target
    np.testing.assert_allclose(hm[..., 2], 1.0 - hm[..., 0], atol=1e-6)
    dec = decode_predictions(hm, num_joints=1)
    assert abs(dec[0, 0] - x) < 0.15 and abs(dec[0, 1] - y) < 0.15
    assert dec[0, 2] > 0.6


def test_decode_handles_nan_and_batches():
    hm = np.zeros((2, 16, 16, 3), np.float32)
    hm[0, 4, 9, 0] = 0.8
    hm[1, ..., 1] = np.nan
    out = decode_predictions(hm)
    assert out.shape == (2, 2, 3)
    assert tuple(out[0, 0, :2]) == (9.0, 4.0) and out[0, 0, 2] == pytest.approx(0.8)
    assert out[1, 1, 2] == 0.0 and np.isfinite(out).all()


@settings(max_examples=60, deadline=None)
@given(fx=st.floats(0.0, 1.0), fy=st.floats(0.0, 1.0), sigma=st.sampled_from([1.5, 2.0, 3.0]))
def test_dark_decoding_finds_the_target_centre(fx, fy, sigma):
    lo, hi = 2 * sigma + 1, 31 - 2 * sigma - 1  # nearer the edge the smoothing is cut off (next test)
    x, y = lo + fx * (hi - lo), lo + fy * (hi - lo)
    hm = encode_heatmaps(np.array([[x, y]]), np.array([True]), 32, sigma=sigma)
    dec = decode_predictions(hm, num_joints=1, blur_sigma=sigma)
    assert abs(dec[0, 0] - x) < 0.05 and abs(dec[0, 1] - y) < 0.05  # the parabola alone is off by up to ~0.1
    assert dec[0, 2] == pytest.approx(hm[..., 0].max())


def test_dark_decoding_prefers_a_broad_mode_to_a_one_cell_spike():
    """Why the default models decode with DARK: a net unsure of a fingertip draws a broad blob where the tip is
    and stray one-cell spikes elsewhere; the plain peak takes the spike."""
    hm = encode_heatmaps(np.array([[20.3, 10.6]]), np.array([True]), 32, sigma=2.0, background=False) * 0.8
    hm[5, 6, 0] = 0.9  # a stray spike, higher than the blob
    plain = decode_predictions(hm, 1)
    dark = decode_predictions(hm, 1, blur_sigma=2.0)
    assert tuple(plain[0, :2]) == (6.0, 5.0)
    assert abs(dark[0, 0] - 20.3) < 0.3 and abs(dark[0, 1] - 10.6) < 0.3
    assert dark[0, 2] == pytest.approx(hm[10:12, 19:22, 0].max())  # the blob's own peak, not the spike's


@pytest.mark.parametrize("xy", [(0.0, 5.0), (0.4, 31.0), (31.0, 31.0), (1.2, 16.5), (30.5, 0.0)])
def test_dark_decoding_at_the_border_stays_at_the_border(xy):
    """Smoothing cuts off a peak at the map's edge (the Newton step would pull it inwards); there the raw
    peak and its parabola are used."""
    hm = encode_heatmaps(np.array([xy]), np.array([True]), 32, sigma=2.0)
    dec = decode_predictions(hm, 1, blur_sigma=2.0)
    assert abs(dec[0, 0] - xy[0]) < 0.6 and abs(dec[0, 1] - xy[1]) < 0.6
    assert dec[0, 2] == pytest.approx(hm[..., 0].max())


def test_dark_decoding_handles_nan_flat_maps_and_batches():
    hm = np.zeros((2, 3, 16, 16, 4), np.float32)
    hm[0, 1, 4, 9, 0] = 0.8
    hm[1, 2, ..., 1] = np.nan
    out = decode_predictions(hm, blur_sigma=2.0)
    assert out.shape == (2, 3, 3, 3) and np.isfinite(out).all()
    assert tuple(np.round(out[0, 1, 0, :2])) == (9.0, 4.0) and out[0, 1, 0, 2] == pytest.approx(0.8)
    assert out[1, 2, 1, 2] == 0.0
    assert out[0, 0, 0, 2] == 0.0  # an all-zero map: confidence 0, somewhere on the map
    assert (out[..., :2] >= 0).all() and (out[..., :2] <= 15).all()


def test_model_card_carries_its_decoding():
    card = ModelCard.for_spec(ModelSpec(input_size=64, stages=2, num_joints=21, stride=4, trunk="hand",
                                        width=0.125), decoding={"method": "dark", "blur_sigma": 2.0})
    again = ModelCard.from_dict(json.loads(card.to_json()))
    assert again.decoding == {"method": "dark", "blur_sigma": 2.0} and again.blur_sigma == 2.0
    plain = ModelCard.from_dict({k: v for k, v in card.to_dict().items() if k != "decoding"})
    assert plain.blur_sigma == 0.0  # the port's weights: the plain peak
    with pytest.raises(ValueError, match="decoding method"):
        ModelCard.for_spec(card.spec, decoding={"method": "argmax"})
    with pytest.raises(ValueError, match="blur_sigma"):
        ModelCard.for_spec(card.spec, decoding={"method": "dark"})


def test_grid_input_conversions_are_inverse():
    pts = np.array([[0.0, 0.0], [12.3, 45.6]])
    np.testing.assert_allclose(input_to_grid(grid_to_input(pts, 8), 8), pts)
    assert grid_to_input(np.array([0.0]), 8)[0] == 3.5  # centre of the first 8-pixel cell


@settings(max_examples=50, deadline=None)
@given(cx=st.floats(-50, 700), cy=st.floats(-50, 500), side=st.floats(20, 900), angle=st.floats(-180, 180))
def test_crop_transform_round_trip(cx, cy, side, angle):
    tr = CropTransform(CropBox(cx, cy, side, angle), 96)
    pts = np.array([[cx, cy], [10.0, 20.0], [cx + side / 3, cy - side / 4]])
    np.testing.assert_allclose(tr.to_frame(tr.to_input(pts)), pts, atol=1e-6)
    np.testing.assert_allclose(tr.to_input(np.array([[cx, cy]]))[0], [47.5, 47.5], atol=1e-6)


@pytest.mark.parametrize("w,h", [(640, 360), (300, 500)])
def test_crop_pixels_land_where_the_transform_says(w, h):
    frame = np.zeros((h, w, 3), np.uint8)
    frame[100:104, 200:204] = 255  # a bright 4x4 square centred at (201.5, 101.5)
    for box in (CropBox.letterbox(w, h), CropBox(220, 120, 100, 30.0)):
        tr = CropTransform(box, 128)
        crop = tr.apply(frame)
        assert crop.shape == (128, 128, 3)
        diff = crop[..., 0].astype(float) - tr.apply(np.zeros_like(frame))[..., 0]
        ys, xs = np.nonzero(diff > 5)
        weights = diff[ys, xs]
        centre = np.array([np.average(xs, weights=weights), np.average(ys, weights=weights)])
        np.testing.assert_allclose(centre, tr.to_input(np.array([[201.5, 101.5]]))[0], atol=0.6)
    # Outside the frame is padded with the port's grey.
    assert CropTransform(CropBox.letterbox(w, h), 64).apply(frame)[0 if w > h else 32, 0 if h > w else 32, 0] == 128


@pytest.mark.parametrize("box", [CropBox(300, 200, 400, 0.0), CropBox(260, 230, 330, 37.0, True),
                                 CropBox(600, 40, 500, 170.0), CropBox(-400, -400, 300, 10.0)])
def test_large_reductions_area_reduce_only_the_region_under_the_box(box):
    """Reducing only the part of the frame under the box must give the crop that reducing the whole frame gives
    (up to the area filter's phase), so joints still land where the transform says."""
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 3)
    tr = CropTransform(box, 96)
    got = tr.apply(frame)
    pre = min(1.0, 2.0 * 96 / box.side)
    small = cv2.resize(frame, (round(640 * pre), round(480 * pre)), interpolation=cv2.INTER_AREA)
    fx, fy = small.shape[1] / 640, small.shape[0] / 480
    pre_m = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1]])
    m = (np.vstack([tr.matrix, [0, 0, 1]]) @ np.linalg.inv(pre_m))[:2]
    whole = cv2.warpAffine(small, m, (96, 96), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=(128, 128, 128))
    diff = np.abs(got.astype(int) - whole.astype(int))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 6


def test_estimator_maps_peaks_back_to_frame_pixels(tiny_spec):
    """Force a known heatmap through the real decode path: the joint must land on the frame pixel that the
    crop maps to that heatmap cell, whatever the crop."""
    model = build_cpm(tiny_spec)
    est = PoseEstimator(model, ModelCard.for_spec(tiny_spec))
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    res = est.predict(frame)
    assert res.keypoints.shape == (21, 3) and res.heatmaps.shape == (2, 8, 8, 22)
    assert set(res.timings) == {"preprocess", "model", "decode"}
    hm = np.zeros_like(res.heatmaps)
    hm[-1, 2, 5, 0] = 0.9  # joint 0 peaks at grid cell (x=5, y=2)
    crop = CropBox(100, 80, 120)
    r2 = est._result(hm, est.transform_for(frame, crop), {})
    expected = CropTransform(crop, 64).to_frame(grid_to_input(np.array([[5.0, 2.0]]), 8))[0]
    np.testing.assert_allclose(r2.keypoints[0, :2], expected, atol=1e-4)
    assert r2.keypoints[0, 2] == pytest.approx(0.9)
    # Batched and single paths agree.
    batch = est.predict_batch([frame, frame[:, ::-1].copy()], [None, crop])
    np.testing.assert_allclose(batch[0].heatmaps, res.heatmaps, atol=1e-5)
    assert len(batch) == 2 and batch[1].crop.box == crop


def test_default_model_loads_and_says_it_is_untrained():
    est = PoseEstimator.default(warm_up=False)
    assert est.card.skeleton.name == "hand21"
    if not est.card.trained:
        assert "UNTRAINED" in est.card.summary()


def test_bfloat16_estimator_matches_float32(tiny_spec):
    """The bfloat16 path shares the float32 weights and stays within bfloat16 rounding of the float32 maps."""
    model = build_cpm(tiny_spec)
    card = ModelCard.for_spec(tiny_spec)
    f32 = PoseEstimator(model, card, precision="float32")
    b16 = PoseEstimator(model, card, precision="bfloat16")
    assert f32.model is model and b16.model is not model
    x = np.random.default_rng(3).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    a, b = f32.run_raw(x), b16.run_raw(x)
    assert b.dtype == np.float32
    assert np.abs(a - b).max() <= 0.03 * (np.abs(a).max() + 1e-6)
    assert np.abs(a - b).max() > 0  # really computed in another precision


def test_batch_norm_folds_into_a_plain_cpm(tiny_spec):
    """Training with batch norm, shipping without: the folded model computes the same heatmaps."""
    from cpm_core.network import fold_batch_norm

    spec = tiny_spec.with_(batch_norm=True)
    model = build_cpm(spec)
    rng = np.random.default_rng(5)
    for layer in model.layers:  # non-trivial statistics, as after training
        if layer.name.endswith("__bn"):
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.1, b.shape),
                               rng.normal(0, 0.1, m.shape), rng.uniform(0.5, 2, v.shape)])
    plain, plain_spec = fold_batch_norm(model, spec)
    assert not plain_spec.batch_norm and not any(layer.name.endswith("__bn") for layer in plain.layers)
    x = rng.uniform(-0.5, 0.5, (2, 64, 64, 3)).astype(np.float32)
    a, b = model(x, training=False).numpy(), plain(x).numpy()
    np.testing.assert_allclose(a, b, atol=1e-4 * np.abs(a).max())


def test_tile_lays_out_any_channel_count_with_gaps():
    from cpm_core.render import tile

    images = [np.full((2, 3, 4), k, np.uint8) for k in (10, 20, 30)]
    canvas = tile(images, cols=2, gap=1, background=(1, 2, 3, 4))
    assert canvas.shape == (5, 7, 4)
    assert (canvas[0:2, 0:3] == 10).all() and (canvas[0:2, 4:7] == 20).all() and (canvas[3:5, 0:3] == 30).all()
    assert (canvas[2] == (1, 2, 3, 4)).all() and (canvas[:, 3] == (1, 2, 3, 4)).all()  # the gaps
    assert (canvas[3:5, 4:7] == (1, 2, 3, 4)).all()  # the empty last cell
    assert tile([np.zeros((2, 2, 3), np.uint8)] * 4, cols=2).shape == (4, 4, 3)  # no gap: as before
