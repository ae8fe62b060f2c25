"""Issue #17's augmentations on the real tf.data pipeline: copy-paste onto backgrounds and other subjects' crops,
other hands as occluders, blur / JPEG / colour casts; labels must not move, and with the settings off the
pipeline must be the old one."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tensorflow as tf
from run_configs import TINY_COCO

from cpm_core.skeleton import HAND_21
from training.config import AugmentConfig, load_config
from training.data import SubjectCache, build_cache, load_datasets, make_pipeline, subject_masks

RES, SIZE, STRIDE, SCALE = 96, 64, 4, 1.5  # cache side, input side, stride, cache_scale: output = central 64
STILL = dict(rotation=0.0, scale=(1.0, 1.0), translate=0.0, brightness=0.0, contrast=0.0, saturation=0.0,
             low_res=0.0, noise=0.0)  # no geometry or colour randomness: outputs are comparable pixel for pixel
SUBJECT_BGR, BACKGROUND_BGR = (0, 200, 0), (200, 0, 0)


def hand_keypoints(n: int, seed: int = 0) -> np.ndarray:
    """(n, 21, 2) joints scattered in a 30-pixel square around the cache centre."""
    rng = np.random.default_rng(seed)
    return rng.uniform(33, 63, (n, HAND_21.num_joints, 2)).astype(np.float32)


def make_cache(images: np.ndarray, kps: np.ndarray) -> SubjectCache:
    n = len(images)
    vis = np.full((n, HAND_21.num_joints), 2, np.int32)
    return SubjectCache(images, kps, vis, [None] * n, np.ones(n, np.float32), [""] * n, HAND_21)


def solid(n: int, bgr) -> np.ndarray:
    out = np.zeros((n, RES, RES, 3), np.uint8)
    out[:] = bgr
    return out


def background_folder(tmp_path, bgr=BACKGROUND_BGR, count: int = 3):
    folder = tmp_path / "bgs"
    folder.mkdir()
    for i in range(count):
        img = np.zeros((80 + 20 * i, 120, 3), np.uint8)
        img[:] = bgr
        cv2.imwrite(str(folder / f"bg{i}.png"), img)
    return folder


def first_batch(cache: SubjectCache, aug: AugmentConfig | None, batch: int | None = None):
    ds = make_pipeline(cache, SIZE, STRIDE, batch or len(cache), aug, cache_scale=SCALE, shuffle=False,
                       repeat=False)
    images, targets, mask = next(iter(ds))
    return (images.numpy() + 0.5) * 256.0, targets.numpy(), mask.numpy()


def op_types(ds: tf.data.Dataset) -> set[str]:
    """Every op in the dataset's graph, its functions included."""
    graph = tf.compat.v1.GraphDef.FromString(ds._as_serialized_graph().numpy())
    ops = {n.op for n in graph.node}
    for fn in graph.library.function:
        ops |= {n.op for n in fn.node_def}
    return ops


def test_paste_puts_background_outside_the_mask_and_the_subject_inside(tmp_path):
    kps = hand_keypoints(4)
    cache = make_cache(solid(4, SUBJECT_BGR), kps)
    aug = AugmentConfig(**STILL, backgrounds=[str(background_folder(tmp_path))], paste_background=1.0)
    images, _, _ = first_batch(cache, aug)
    masks = subject_masks(kps, cache.visibility, RES)
    for img, kp, m in zip(images, kps, masks):
        inside = np.round(kp - (RES - SIZE) / 2).astype(int)  # the output is the cache's central SIZE pixels
        # Joints on the hull's edge are two feather sigmas inside the soft edge (mask ~0.97, a little less once
        # warped at half resolution): nearly all subject.
        np.testing.assert_allclose(img[inside[:, 1], inside[:, 0]], np.tile(SUBJECT_BGR, (len(kp), 1)), atol=25)
        cx, cy = np.round(inside.mean(axis=0)).astype(int)
        np.testing.assert_allclose(img[cy, cx], SUBJECT_BGR, atol=1)
        outside = m[(RES - SIZE) // 2:(RES + SIZE) // 2, (RES - SIZE) // 2:(RES + SIZE) // 2] == 0
        assert outside.sum() > 0.3 * SIZE * SIZE
        np.testing.assert_allclose(img[outside], np.tile(BACKGROUND_BGR, (int(outside.sum()), 1)), atol=3)
    # Without paste the same pixels keep the subject's own scene.
    plain, _, _ = first_batch(cache, AugmentConfig(**STILL))
    np.testing.assert_allclose(plain, np.broadcast_to(SUBJECT_BGR, plain.shape), atol=1)


def test_paste_onto_other_subjects_and_occluders_change_pixels_not_labels(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (6, RES, RES, 3), dtype=np.uint8)
    cache = make_cache(images, hand_keypoints(6, seed=2))
    base, t_base, m_base = first_batch(cache, AugmentConfig(**STILL))
    for extra in ({"paste_subject": 1.0}, {"occluder": 1.0, "occluder_shift": (0.2, 0.3)},
                  {"paste_background": 1.0, "backgrounds": [str(background_folder(tmp_path))], "occluder": 1.0}):
        imgs, targets, mask = first_batch(cache, AugmentConfig(**STILL, **extra))
        assert np.abs(imgs - base).mean() > 5.0, extra
        np.testing.assert_array_equal(targets, t_base)
        np.testing.assert_array_equal(mask, m_base)


def test_target_peaks_stay_on_the_joints_with_paste_and_geometry(tmp_path):
    """Each subject is a dark image with one bright dot at joint j; with paste onto black backgrounds and
    random rotation / scale / shift, joint j's target peak must sit on the dot in the augmented crop."""
    j = HAND_21.num_joints
    kp = hand_keypoints(1, seed=3)[0]
    images = np.zeros((j, RES, RES, 3), np.uint8)
    images[:] = 40
    for joint in range(j):
        x, y = np.round(kp[joint]).astype(int)
        images[joint, y - 1:y + 2, x - 1:x + 2] = 255
    cache = make_cache(images, np.repeat(kp[None], j, axis=0))
    aug = AugmentConfig(rotation=180, scale=(0.8, 1.2), translate=0.1, brightness=0, contrast=0, saturation=0,
                        low_res=0, noise=0, backgrounds=[str(background_folder(tmp_path, (0, 0, 0)))],
                        paste_background=1.0)
    imgs, targets, _ = first_batch(cache, aug)
    for i in range(j):
        grey = imgs[i, ..., 0]
        dot = np.array(np.unravel_index(np.argmax(grey), grey.shape))[::-1] * 1.0
        peak = np.array(np.unravel_index(np.argmax(targets[i, ..., i]), targets.shape[1:3]))[::-1] * STRIDE + 1.5
        assert np.linalg.norm(peak - dot) <= 4.5, (i, dot, peak)
        assert grey.min() < 10  # the black background is really there around the subject


@pytest.fixture(scope="module")
def checkerboard():
    """A 4-pixel checkerboard cache and its crops with no augmentation (one pipeline for all settings)."""
    board = (np.indices((RES, RES)).sum(axis=0) // 4 % 2 * 255).astype(np.uint8)
    cache = make_cache(np.stack([np.stack([board, 255 - board, board // 2], axis=-1)] * 2), hand_keypoints(2))
    return cache, first_batch(cache, AugmentConfig(**STILL))


@pytest.mark.parametrize("setting", [{"motion_blur": 1.0}, {"defocus_blur": 1.0}, {"jpeg": 1.0},
                                     {"hue": 20.0, "channel_gain": 0.2}])
def test_camera_degradations_change_the_image_but_keep_shape_dtype_and_range(setting, checkerboard):
    cache, (base, t_base, _) = checkerboard
    ds = make_pipeline(cache, SIZE, STRIDE, 2, AugmentConfig(**STILL, **setting), cache_scale=SCALE,
                       shuffle=False, repeat=False)
    out, targets, _ = next(iter(ds))
    assert out.shape == (2, SIZE, SIZE, 3) and out.dtype == tf.float32
    assert out.numpy().min() >= -0.5 and out.numpy().max() < 0.5
    out = (out.numpy() + 0.5) * 256.0
    assert np.abs(out - base).mean() > 3.0, setting
    np.testing.assert_array_equal(targets.numpy(), t_base)
    if "motion_blur" in setting or "defocus_blur" in setting:  # a blur smooths: less total variation
        assert np.abs(np.diff(out, axis=1)).mean() < 0.8 * np.abs(np.diff(base, axis=1)).mean()


def test_settings_off_is_the_old_pipeline(tmp_path):
    rng = np.random.default_rng(4)
    cache = make_cache(rng.integers(0, 256, (1, RES, RES, 3), dtype=np.uint8), hand_keypoints(1))
    default = make_pipeline(cache, SIZE, STRIDE, 1, AugmentConfig(), cache_scale=SCALE, shuffle=False,
                            repeat=False)
    ops = op_types(default)
    assert "TensorSliceDataset" in ops and "ImageProjectiveTransformV3" in ops
    new_ops = {"DepthwiseConv2dNative", "AdjustJpegQuality", "EncodeJpeg", "DecodeJpeg", "Case", "StatelessCase",
               "RangeDataset", "MatMul"}
    assert not ops & new_ops, ops & new_ops
    on = make_pipeline(cache, SIZE, STRIDE, 1, AugmentConfig(motion_blur=0.5, jpeg=0.5), cache_scale=SCALE,
                       shuffle=False, repeat=False)
    assert {"DepthwiseConv2dNative"} <= op_types(on)  # the scan does see new ops when they are on
    # Probabilities at 0 with every other new setting changed: the same numbers for the same seed.
    changed = AugmentConfig(backgrounds=[str(tmp_path / "not-read")], paste_mask="box", mask_dilate=0.5,
                            blur_size=5, jpeg_quality=(50.0, 60.0), occluder_scale=(1.0, 2.0))
    outs = []
    for aug in (AugmentConfig(), AugmentConfig(), changed):
        tf.random.set_seed(11)
        outs.append([t.numpy() for t in next(iter(make_pipeline(cache, SIZE, STRIDE, 1, aug, cache_scale=SCALE,
                                                                 shuffle=False, repeat=False)))])
    for a, b in zip(outs[0], outs[1]):
        np.testing.assert_array_equal(a, b)  # a fixed seed really fixes the output
    for a, b in zip(outs[0], outs[2]):
        np.testing.assert_array_equal(a, b)


def test_config_parses_the_new_fields(tmp_path):
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "run.toml"
    path.write_text('[augment]\nbackgrounds = ["../bgs", "/abs/one.jpg"]\npaste_background = 0.4\n'
                    'paste_subject = 0.2\npaste_mask = "box"\nmask_dilate = 0.2\noccluder = 0.3\n'
                    'occluder_scale = [0.5, 1]\nmotion_blur = 0.1\ndefocus_blur = 0.1\nblur_size = 7\n'
                    'jpeg = 0.3\njpeg_quality = [30, 80]\nhue = 8\nchannel_gain = 0.1\n')
    a = load_config(path).augment
    assert a.backgrounds == [str((tmp_path / "bgs").resolve()), "/abs/one.jpg"]
    assert (a.paste_background, a.paste_subject, a.paste_mask, a.mask_dilate) == (0.4, 0.2, "box", 0.2)
    assert a.occluder == 0.3 and a.occluder_scale == (0.5, 1.0)
    assert (a.motion_blur, a.defocus_blur, a.blur_size, a.jpeg) == (0.1, 0.1, 7, 0.3)
    assert a.jpeg_quality == (30.0, 80.0) and a.hue == 8.0 and a.channel_gain == 0.1
    assert load_config(path, ["augment.backgrounds=bg.jpg"]).augment.backgrounds == [
        str((tmp_path / "cfg" / "bg.jpg").resolve())]
    d = AugmentConfig()
    assert (d.paste_background, d.paste_subject, d.occluder, d.motion_blur, d.defocus_blur, d.jpeg, d.hue,
            d.channel_gain, d.backgrounds) == (0, 0, 0, 0, 0, 0, 0, 0, [])
    for bad, match in ((["augment.paste_background=1.5"], "probability"),
                       (["augment.paste_background=0.7", "augment.paste_subject=0.5"], "at most 1"),
                       (["augment.backgrounds=[]"], "needs augment.backgrounds"),
                       (["augment.paste_mask='blob'"], "paste_mask"),
                       (["augment.blur_size=4"], "odd"),
                       (["augment.jpeg_quality=[90, 20]"], "jpeg_quality")):
        with pytest.raises(ValueError, match=match):
            load_config(path, bad)


def test_missing_or_empty_background_folders_are_clear_errors(tmp_path):
    cache = make_cache(solid(2, SUBJECT_BGR), hand_keypoints(2))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.jpg").write_bytes(b"not a jpeg")
    for folder, match in ((tmp_path / "missing", "does not exist"), (empty, "has no images"),
                          (broken, "could be read")):
        aug = AugmentConfig(backgrounds=[str(folder)], paste_background=0.5)
        with pytest.raises(ValueError, match=match) as err:
            make_pipeline(cache, SIZE, STRIDE, 2, aug, cache_scale=SCALE)
        assert str(folder) in str(err.value) or "none of" in str(err.value)


def test_build_cache_precomputes_soft_masks_around_the_joints():
    cache = build_cache(load_datasets([str(TINY_COCO)]), 64, 1.5, 1.6)
    n, r = len(cache), cache.images.shape[1]
    assert cache.masks.shape == (n, r, r) and cache.masks.dtype == np.uint8
    assert cache.mask_params == (AugmentConfig.paste_mask, AugmentConfig.mask_dilate, AugmentConfig.mask_feather)
    for m, kp, vis in zip(cache.masks, cache.keypoints, cache.visibility):
        xy = np.round(kp[vis > 0]).astype(int)
        xy = xy[(xy >= 0).all(axis=1) & (xy < r).all(axis=1)]
        assert (m[xy[:, 1], xy[:, 0]] > 200).all()  # the joints are inside
        assert m[0, 0] == 0 and m[-1, -1] == 0  # the crop's corners are not
        assert 0 < ((m > 0) & (m < 255)).sum()  # a soft edge
    sub = cache.subset(np.array([0]))
    np.testing.assert_array_equal(sub.masks[0], cache.masks[0])


def test_negatives_are_subject_free_crops_with_empty_targets_in_the_loss(tmp_path):
    """augment.negative = 1: every crop is a background crop (no subject pixel, no pasted occluder), every joint
    map is zero and the background one, and every channel is in the loss (unlabelled joints included: "no joint
    here" is the lesson); negative = 0 leaves the subjects and their targets alone."""
    kps = hand_keypoints(4)
    cache = make_cache(solid(4, SUBJECT_BGR), kps)
    cache.visibility[:, 5] = 0  # one unlabelled joint: out of the loss for a subject, in it for a negative
    folder = background_folder(tmp_path)
    aug = AugmentConfig(**STILL, backgrounds=[str(folder)], negative=1.0, occluder=1.0, paste_background=0.5)
    images, targets, mask = first_batch(cache, aug)
    np.testing.assert_allclose(images, np.broadcast_to(BACKGROUND_BGR, images.shape), atol=1)
    assert np.all(targets[..., :-1] == 0.0) and np.all(targets[..., -1] == 1.0)
    assert np.all(mask == 1.0)
    images, targets, mask = first_batch(cache, AugmentConfig(**STILL, backgrounds=[str(folder)], negative=0.0))
    np.testing.assert_allclose(images, np.broadcast_to(SUBJECT_BGR, images.shape), atol=1)
    assert targets[..., :-1].max() > 0.9 and mask[:, 5].max() == 0.0 and mask[:, 0].min() == 1.0
    with pytest.raises(ValueError, match="augment.negative needs augment.backgrounds"):
        load_config(None, ["augment.negative=0.1"])


def test_backgrounds_can_be_a_list_file(tmp_path):
    """A .txt list names background files relative to itself (a recipe trains on part of a folder and keeps the
    rest for a benchmark); a listed file that is missing is a clear error."""
    from training.data import load_backgrounds

    folder = background_folder(tmp_path, count=3)
    listing = tmp_path / "train_bgs.txt"
    listing.write_text("# two of three\nbgs/bg0.png\nbgs/bg2.png  # the tallest\n")
    assert load_backgrounds([str(listing)], 32).shape == (2, 32, 32, 3)
    assert load_backgrounds([str(folder)], 32).shape == (3, 32, 32, 3)
    listing.write_text("bgs/bg0.png\nbgs/nope.png\n")
    with pytest.raises(ValueError, match="lists 1 missing file"):
        load_backgrounds([str(listing)], 32)


def test_wrong_side_crops_are_mirrored_with_lower_peaks_at_the_mirrored_joints():
    """augment.wrong_side = 1: every crop is the plain crop mirrored left-right, and its joint maps peak at the
    mirrored joints at `wrong_side_peak` height (background one minus that); 0 leaves crops and peaks alone."""
    kps = hand_keypoints(2)
    images_in = np.zeros((2, RES, RES, 3), np.uint8)
    images_in[:, :, : RES // 3] = SUBJECT_BGR  # a left band: mirroring moves it to the right
    cache = make_cache(images_in, kps)
    plain_img, plain_t, _ = first_batch(cache, AugmentConfig(**STILL))
    img, t, mask = first_batch(cache, AugmentConfig(**STILL, wrong_side=1.0, wrong_side_peak=0.4))
    np.testing.assert_allclose(img, plain_img[:, :, ::-1], atol=2)
    assert plain_t[..., :-1].max() > 0.9
    np.testing.assert_allclose(t[..., :-1].max(axis=(1, 2)), plain_t[..., :-1].max(axis=(1, 2)) * 0.4, atol=0.02)
    np.testing.assert_allclose(t[..., :-1] / 0.4, plain_t[:, :, ::-1, :-1], atol=0.05)
    np.testing.assert_allclose(t[..., -1], 1.0 - t[..., :-1].max(axis=-1), atol=1e-6)
    assert np.all(mask == 1.0)


def test_wrong_side_needs_a_canonical_model_and_no_flip():
    with pytest.raises(ValueError, match="augment.wrong_side needs data.chirality = 'canonical'"):
        load_config(None, ["augment.wrong_side=0.2"])
    with pytest.raises(ValueError, match="both mirror"):
        load_config(None, ["augment.wrong_side=0.2", "augment.flip=true", "data.chirality=canonical",
                           "data.orientation=upright"])
    with pytest.raises(ValueError, match="probability"):
        load_config(None, ["augment.wrong_side=1.5", "data.chirality=canonical", "data.orientation=upright"])
    with pytest.raises(ValueError, match="target height"):
        load_config(None, ["augment.wrong_side_peak=2", "data.chirality=canonical", "data.orientation=upright"])
