"""TFRecord files: our lossless format (and its tf.data parser), the port's crop + heatmap format."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from cpm_core.dataset import Dataset, DatasetFormatError, Instance, Sample, dataset_differences
from cpm_core.dataset.coco import read_coco, write_coco
from cpm_core.dataset.heatmaps import decode_heatmaps, render_heatmaps
from cpm_core.dataset.tfrecord import (
    PAD_VALUE,
    crop_instance,
    parse_example,
    peek_tfrecord_kind,
    read_port_tfrecord,
    read_tfrecord,
    write_port_tfrecord,
    write_tfrecord,
)
from cpm_core.skeleton import HAND_21, generic_skeleton

FIXTURE = Path(__file__).parent / "fixtures" / "dataset" / "tiny_coco" / "tiny.json"


@pytest.fixture
def fixture_ds():
    ds = read_coco(FIXTURE)
    ds.samples.append(Sample("images/hand_00000.jpg", 320, 180, extras={"note": "no hands here"}))
    return ds


def test_own_round_trip_is_exact(tmp_path, fixture_ds):
    n = write_tfrecord(fixture_ds, tmp_path / "a.tfrecord")
    assert n == 5  # 4 instances + 1 empty image
    back = read_tfrecord(tmp_path / "a.tfrecord")
    assert back.issues == [] and back.skeleton is not None
    assert back.skeleton == HAND_21
    assert dataset_differences(fixture_ds, back) == []
    assert back.extras == fixture_ds.extras
    for a, b in zip(fixture_ds.samples, back.samples, strict=True):
        assert b.data == fixture_ds.image_path(a).read_bytes()  # the file as stored
    # and on to COCO: exact again, images written beside the new JSON
    write_coco(back, tmp_path / "c" / "x.json")
    again = read_coco(tmp_path / "c" / "x.json")
    assert dataset_differences(fixture_ds, again) == []
    assert (tmp_path / "c" / "images" / "hand_00080.jpg").is_file()


def test_images_dir_extracts_images(tmp_path, fixture_ds):
    write_tfrecord(fixture_ds, tmp_path / "a.tfrecord", keep_empty=False)
    back = read_tfrecord(tmp_path / "a.tfrecord", images_dir=tmp_path / "imgs")
    assert back.num_images == 3  # the empty image was not kept
    assert back.root == tmp_path / "imgs"
    assert all(s.data is None and back.image_path(s).is_file() for s in back.samples)


def test_custom_skeleton_and_non_jpeg_images(tmp_path):
    img = np.full((6, 8, 3), 200, np.uint8)
    cv2.imwrite(str(tmp_path / "x.bmp"), img)
    skel = generic_skeleton(2, "two")
    ds = Dataset(skeleton=skel, root=tmp_path, samples=[Sample("x.bmp", 8, 6, instances=[
        Instance(keypoints=[[1e-7, 3.14159265358979], [2, 2]], visibility=[1, 0], predicted=[1, 0])])])
    write_tfrecord(ds, tmp_path / "b.tfrecord")
    back = read_tfrecord(tmp_path / "b.tfrecord")
    assert back.skeleton == skel
    assert dataset_differences(ds, back) == []
    assert back.samples[0].data[:4] == b"\x89PNG"  # BMP re-encoded losslessly
    assert np.array_equal(cv2.imdecode(np.frombuffer(back.samples[0].data, np.uint8), cv2.IMREAD_COLOR), img)


def test_parse_example_in_tf_data(tmp_path, fixture_ds):
    write_tfrecord(fixture_ds, tmp_path / "a.tfrecord")
    items = list(tf.data.TFRecordDataset(str(tmp_path / "a.tfrecord")).map(parse_example))
    assert len(items) == 5
    first = items[0]
    assert first["image"].dtype == tf.uint8 and first["image"].shape == (180, 320, 3)
    assert first["keypoints"].dtype == tf.float32 and first["keypoints"].shape == (21, 2)
    assert first["visibility"].dtype == tf.int32 and first["visibility"].shape == (21,)
    assert first["bbox"].dtype == tf.float32 and first["bbox"].shape == (4,)
    inst = fixture_ds.samples[0].instances[0]
    np.testing.assert_array_equal(first["keypoints"].numpy(), inst.keypoints.astype(np.float32))
    np.testing.assert_array_equal(first["bbox"].numpy(), np.float32(inst.bbox))
    bgr = cv2.imread(str(fixture_ds.image_path(fixture_ds.samples[0]))).astype(int)
    got = first["image"].numpy().astype(int)
    # RGB order; TF's and OpenCV's JPEG decoders differ by a level or two
    assert np.abs(got - bgr[:, :, ::-1]).mean() < 1.5 < np.abs(got - bgr).mean()
    assert items[1]["visibility"].numpy()[[4, 16]].tolist() == [1, 0]
    assert items[1]["predicted"].numpy()[[4, 8]].all()
    assert not items[0]["empty"].numpy() and items[4]["empty"].numpy()
    assert items[4]["visibility"].numpy().tolist() == [0] * 21
    batched = tf.data.TFRecordDataset(str(tmp_path / "a.tfrecord")).map(parse_example).map(
        lambda d: (d["keypoints"], d["visibility"])).batch(5)
    kp, vis = next(iter(batched))
    assert kp.shape == (5, 21, 2) and vis.shape == (5, 21)


def test_corrupt_and_foreign_files(tmp_path, fixture_ds):
    write_tfrecord(fixture_ds, tmp_path / "a.tfrecord")
    raw = (tmp_path / "a.tfrecord").read_bytes()
    (tmp_path / "cut.tfrecord").write_bytes(raw[: len(raw) - 100])
    cut = read_tfrecord(tmp_path / "cut.tfrecord")
    assert cut.num_instances == 4 and cut.num_images == 3  # the last (empty) example was lost
    assert len(cut.issues) == 1 and "corrupt" in cut.issues[0].message
    assert cut.issues[0].file == str(tmp_path / "cut.tfrecord")
    with pytest.raises(DatasetFormatError, match="corrupt"):
        read_tfrecord(tmp_path / "cut.tfrecord", strict=True)
    with pytest.raises(DatasetFormatError, match="no such file"):
        read_tfrecord(tmp_path / "none.tfrecord")
    write_port_tfrecord(fixture_ds, tmp_path / "p.tfrecord", size=32)
    with pytest.raises(DatasetFormatError, match="read_port_tfrecord"):
        read_tfrecord(tmp_path / "p.tfrecord")
    assert peek_tfrecord_kind(tmp_path / "p.tfrecord") == "port-tfrecord"
    assert peek_tfrecord_kind(tmp_path / "a.tfrecord") == "tfrecord"


def test_bad_examples_are_skipped_with_their_number(tmp_path):
    good = Dataset(skeleton=generic_skeleton(2), root=tmp_path, samples=[
        Sample("a.png", data=b"\x89PNG\r\n\x1a\n....", instances=[Instance(keypoints=[[1, 2], [3, 4]])])])
    write_tfrecord(good, tmp_path / "g.tfrecord")
    ex = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(str(tmp_path / "g.tfrecord")))).numpy())
    bad = tf.train.Example()
    bad.CopyFrom(ex)
    del bad.features.feature["joints/f64"]
    bad.features.feature["joints"].float_list.value[:] = [1.0, 2.0, 3.0]
    with tf.io.TFRecordWriter(str(tmp_path / "m.tfrecord")) as w:
        w.write(ex.SerializeToString())
        w.write(bad.SerializeToString())
        w.write(b"not a proto \xff\xff")
    ds = read_tfrecord(tmp_path / "m.tfrecord")
    assert ds.num_instances == 1
    assert [(i.record, "joints must hold 4" in i.message) for i in ds.issues][:1] == [("example 1", True)]
    assert ds.issues[1].record == "example 2"


def test_crop_pads_with_128_outside_the_box():
    img = np.zeros((100, 200, 3), np.uint8)
    crop, transform = crop_instance(img, (50, 10, 40, 20), 32)
    assert crop.shape == (32, 32, 3)
    # the longer side (40 px) fills the crop; the shorter (20 px -> 16 px) is centred between grey bands
    np.testing.assert_allclose(transform.to_input(np.array([[50, 10], [90, 30]])), [[-0.5, 7.5], [31.5, 23.5]])
    assert (crop[:8] == PAD_VALUE).all() and (crop[24:] == PAD_VALUE).all()
    assert (crop[8:24] == 0).all()
    # parts of the box outside the image are padded too (column 19's centre is the image's outer edge: blended)
    edge, _ = crop_instance(img, (-20, 0, 40, 40), 40)
    assert (edge[:, :19] == PAD_VALUE).all() and (edge[:, 19] == 64).all() and (edge[:, 20:] == 0).all()


def test_heatmaps_background_and_decoding():
    kp = np.array([[10.3, 20.7], [0.0, 0.0], [31.0, 0.0]])
    maps = render_heatmaps(kp, [2, 0, 1], size=32, sigma=1.0)
    assert maps.shape == (32, 32, 4) and maps.dtype == np.float32
    np.testing.assert_allclose(maps[:, :, 3], 1.0 - maps[:, :, :3].max(axis=2))
    assert maps[:, :, 1].max() == 0.0
    dec, vis, peaks = decode_heatmaps(maps, 3, 32)
    assert vis.tolist() == [2, 0, 2]
    np.testing.assert_allclose(dec[[0, 2]], kp[[0, 2]], atol=0.05)
    half = render_heatmaps(kp[:1], [2], size=64, heatmap_size=32)
    dec_half, _, _ = decode_heatmaps(half, 1, 64)
    np.testing.assert_allclose(dec_half[0], kp[0], atol=0.1)


def test_port_round_trip_peaks_within_one_cell(tmp_path, fixture_ds):
    size = 64
    n = write_port_tfrecord(fixture_ds, tmp_path / "p.tfrecord", size=size)
    assert n == 4
    raw = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(str(tmp_path / "p.tfrecord")))).numpy())
    assert len(raw.features.feature["image"].bytes_list.value[0]) == size * size * 3
    assert len(raw.features.feature["heatmaps"].float_list.value) == size * size * 22
    back = read_port_tfrecord(tmp_path / "p.tfrecord")
    assert back.issues == [] and back.num_images == 4
    for (sample, inst), (_, got) in zip(fixture_ds.instances(), back.instances(), strict=True):
        _, transform = crop_instance(np.zeros((4, 4, 3), np.uint8), inst.bbox, size)
        expected = transform.to_input(inst.keypoints)
        lab = inst.visibility > 0
        assert got.visibility.tolist() == np.where(lab, 2, 0).tolist()  # occluded comes back visible
        err = np.abs(got.keypoints[lab] - expected[lab]).max()
        assert err <= 1.0, f"{sample.image}: peak {err:.3f} cells off"
    crop = cv2.imdecode(np.frombuffer(back.samples[0].data, np.uint8), cv2.IMREAD_COLOR)
    assert crop.shape == (size, size, 3)
    src = cv2.imread(str(fixture_ds.image_path(fixture_ds.samples[0])))
    x, y, w, h = fixture_ds.samples[0].instances[0].bbox
    ref, _ = crop_instance(src, (x, y, w, h), size)
    assert np.array_equal(crop, ref)  # BGR stored and restored


def test_port_reader_accepts_j_channel_heatmaps_and_reports_bad_sizes(tmp_path):
    maps = render_heatmaps(np.array([[3.0, 4.0], [10.0, 12.0]]), [2, 2], size=16, background=False)
    ex = tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(16 * 16 * 3)])),
        "heatmaps": tf.train.Feature(float_list=tf.train.FloatList(value=maps.reshape(-1)))}))
    bad = tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(16 * 16 * 3)])),
        "heatmaps": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5] * 7))}))
    with tf.io.TFRecordWriter(str(tmp_path / "j.tfrecord")) as w:
        w.write(ex.SerializeToString())
        w.write(bad.SerializeToString())
    ds = read_port_tfrecord(tmp_path / "j.tfrecord", skeleton=generic_skeleton(2))
    assert ds.num_images == 1
    np.testing.assert_allclose(ds.samples[0].instances[0].keypoints, [[3, 4], [10, 12]], atol=0.05)
    assert len(ds.issues) == 1 and ds.issues[0].record == "example 1" and "heatmaps" in ds.issues[0].message
