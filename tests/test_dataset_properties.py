"""Property-based tests of every reader and writer: random datasets round trip as each format promises, and
random garbage gives reported issues (or DatasetFormatError), never another exception."""

import json
import math
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpm_core.dataset import Dataset, DatasetFormatError, Instance, Sample, bbox_from_keypoints, dataset_differences
from cpm_core.dataset.cmu_hand import read_cmu_hand, write_cmu_hand
from cpm_core.dataset.coco import read_coco, write_coco
from cpm_core.dataset.heatmaps import decode_heatmaps, render_heatmaps
from cpm_core.dataset.port_labels import read_labels, write_labels
from cpm_core.dataset.tfrecord import read_port_tfrecord, read_tfrecord, write_tfrecord
from cpm_core.skeleton import HAND_21, Skeleton, generic_skeleton

FIXTURE = Path(__file__).parent / "fixtures" / "dataset" / "tiny_coco" / "tiny.json"
# Modest by default to keep the suite fast; CPM_HYPOTHESIS_SCALE=20 for a deeper hunt.
_SCALE = int(os.environ.get("CPM_HYPOTHESIS_SCALE", "1"))
SETTINGS = settings(max_examples=25 * _SCALE, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=12 * _SCALE, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
TRI = Skeleton("tri", ("a", "b", "c"), limbs=((0, 1), (1, 2)), flip_pairs=((0, 2),))
ONE = generic_skeleton(1)
# Keys the formats use themselves; extras with these names are not expected to round trip.
RESERVED = {"id", "image_id", "category_id", "keypoints", "num_keypoints", "bbox", "cpm_predicted", "area",
            "iscrowd", "file_name", "width", "height", "hand_pts", "hand_pts_crop", "cmu_points_key"}
N_IMAGES = 4


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    for i in range(N_IMAGES):
        cv2.imwrite(str(d / f"img_{i}.png"), np.full((6, 8, 3), 40 * i, np.uint8))
    return d


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
json_scalars = st.none() | st.booleans() | st.integers(-(10**12), 10**12) | \
    st.floats(allow_nan=False, allow_infinity=False) | text
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3),
                           max_leaves=6)
extras_st = st.dictionaries(text.filter(lambda k: k not in RESERVED), json_values, max_size=3)


@st.composite
def datasets(draw, skeletons=(HAND_21, TRI, ONE), lo=-1e6, hi=1e6, min_instances=0,
             max_instances=3, extras=True, box=True):
    skel = draw(st.sampled_from(skeletons))
    n = skel.num_joints
    coord = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    samples = []
    for i in range(draw(st.integers(1, N_IMAGES))):
        insts = []
        for _ in range(draw(st.integers(min_instances, max_instances))):
            kp = np.array(draw(st.lists(coord, min_size=2 * n, max_size=2 * n))).reshape(n, 2)
            vis = draw(st.lists(st.sampled_from([0, 1, 2]), min_size=n, max_size=n))
            pred = draw(st.lists(st.booleans(), min_size=n, max_size=n))
            bbox = draw(st.none() | st.tuples(coord, coord, st.floats(0, hi), st.floats(0, hi))) if box else None
            insts.append(Instance(kp, vis, bbox, pred, draw(extras_st) if extras else {}))
        samples.append(Sample(f"img_{i}.png", draw(st.integers(0, 5000)), draw(st.integers(0, 5000)), insts,
                              draw(extras_st) if extras else {}))
    return Dataset(skeleton=skel, samples=samples)


# ------------------------------------------------------------------------------------------------ round trips

@SETTINGS
@given(ds=datasets())
def test_coco_round_trip_is_exact(image_dir, ds):
    ds.root = image_dir
    with tempfile.TemporaryDirectory() as tmp:
        write_coco(ds, Path(tmp) / "sub" / "d.json")
        back = read_coco(Path(tmp) / "sub" / "d.json")
        assert back.issues == []
        assert dataset_differences(ds, back, images=False) == []
        assert back.skeleton == ds.skeleton
        for a, b in zip(ds.samples, back.samples, strict=True):
            assert os.path.samefile(ds.image_path(a), back.image_path(b))


@FEW
@given(ds=datasets())
def test_own_tfrecord_round_trip_is_exact(image_dir, ds):
    ds.root = image_dir
    with tempfile.TemporaryDirectory() as tmp:
        write_tfrecord(ds, Path(tmp) / "d.tfrecord")
        back = read_tfrecord(Path(tmp) / "d.tfrecord")
        assert back.issues == [] and back.skeleton == ds.skeleton
        assert dataset_differences(ds, back) == []
        assert [s.data for s in back.samples] == [ds.image_path(s).read_bytes() for s in ds.samples]


@SETTINGS
@given(ds=datasets(lo=0.01, hi=5000.0, min_instances=1), precision=st.integers(2, 4),
       order=st.sampled_from(["yx", "xy"]))
def test_labels_round_trip_keeps_printed_precision_and_labelled_joints(image_dir, ds, precision, order):
    ds.root = image_dir
    for _, inst in ds.instances():  # the format's boxes are corners; keep them inside the positive range
        x, y, w, h = inst.bbox
        inst.bbox = (abs(x), abs(y), w, h)
    with tempfile.TemporaryDirectory() as tmp:
        write_labels(ds, tmp, order=order, precision=precision)
        back = read_labels(tmp, skeleton=ds.skeleton, order=order)
        assert back.issues == []
        half = 0.5 * 10.0**-precision
        assert dataset_differences(ds, back, atol=half * (1 + 1e-6) + 1e-9, bbox_atol=2 * half + 1e-6,
                                   images=False, sizes=False, sample_extras=False, extras=False, predicted=False,
                                   visibility=False, absent_positions=False) == []
        for (_, a), (_, b) in zip(ds.instances(), back.instances(), strict=True):
            assert b.visibility.tolist() == np.where(a.visibility > 0, 2, 0).tolist()
            assert (b.keypoints[a.visibility == 0] == 0).all()
            assert not b.predicted.any() and b.extras == {}
        assert [(s.width, s.height) for s in back.samples] == [(8, 6)] * back.num_images  # from the headers


@SETTINGS
@given(ds=datasets(skeletons=(HAND_21,), min_instances=1, max_instances=1, box=False))
def test_cmu_round_trip(image_dir, ds):
    ds.root = image_dir
    with tempfile.TemporaryDirectory() as tmp:
        write_cmu_hand(ds, tmp)
        back = read_cmu_hand(tmp)
        assert back.issues == []
        assert dataset_differences(ds, back, images=False, sizes=False, sample_extras=False, predicted=False,
                                   visibility=False) == []
        for (_, a), (_, b) in zip(ds.instances(), back.instances(), strict=True):
            assert b.bbox == bbox_from_keypoints(a.keypoints, a.visibility)


@SETTINGS
@given(data=st.data(), size=st.sampled_from([16, 32, 64]), factor=st.sampled_from([1, 2, 4]),
       n=st.integers(1, 5))
def test_heatmap_peaks_decode_within_one_cell(data, size, factor, n):
    hs = size // factor
    kp = np.array(data.draw(st.lists(st.floats(0, size - 1), min_size=2 * n, max_size=2 * n))).reshape(n, 2)
    vis = np.array(data.draw(st.lists(st.sampled_from([0, 1, 2]), min_size=n, max_size=n)))
    maps = render_heatmaps(kp, vis, size, hs)
    dec, dvis, _ = decode_heatmaps(maps, n, size)
    assert dvis.tolist() == np.where(vis > 0, 2, 0).tolist()
    cell = size / hs
    assert (np.abs(dec[vis > 0] - kp[vis > 0]) <= cell).all()
    assert (np.abs(dec[vis > 0] - kp[vis > 0]) <= 0.05 * cell).all()  # sub-cell refinement is near exact


# ----------------------------------------------------------------------------------------------------- garbage

token = st.one_of(st.sampled_from(["0", "1.5", "-3", "nan", "inf", "1e3", "x", "#", "img.jpg", ""]),
                  st.text(st.characters(blacklist_categories=("Cs",)), max_size=6))
numbers = st.lists(st.floats(-10, 10).map(lambda v: f"{v:.2f}"), min_size=10, max_size=10)
line_st = st.lists(token, max_size=14).map(" ".join) | numbers.map(lambda v: "f.jpg " + " ".join(v))


@SETTINGS
@given(lines=st.lists(line_st, max_size=8), strict=st.booleans())
def test_labels_garbage_is_reported_per_line(lines, strict):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "p").mkdir()
        f = Path(tmp) / "p" / "labels.txt"
        f.write_bytes("\n".join(lines).encode("utf-8"))
        content = [i for i, line in enumerate(f.read_text().splitlines(), 1)
                   if line.split() and not line.split()[0].startswith("#")]
        try:
            ds = read_labels(tmp, skeleton=generic_skeleton(3), strict=strict, read_sizes=False)
        except DatasetFormatError as exc:
            assert strict and exc.issue.file == str(f) and exc.issue.line in content
            return
        assert ds.num_instances + len(ds.issues) == len(content)
        assert {i.line for i in ds.issues} <= set(content)


def _mutate(doc, data):
    """Replace one field somewhere in a COCO document with a random JSON value."""
    section = data.draw(st.sampled_from(["images", "annotations", "categories", "top"]))
    value = data.draw(json_values)
    if section == "top":
        doc[data.draw(st.sampled_from(["images", "annotations", "categories", "info"]))] = value
    else:
        entry = data.draw(st.sampled_from(doc[section]))
        key = data.draw(st.sampled_from(sorted(entry) + ["extra"]))
        if data.draw(st.booleans()):
            entry[key] = value
        else:
            entry.pop(key, None)
    return doc


@SETTINGS
@given(data=st.data(), strict=st.booleans())
def test_coco_garbage_gives_issues_or_format_errors(data, strict):
    doc = _mutate(json.loads(FIXTURE.read_text()), data)
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "d.json"
        p.write_text(json.dumps(doc))
        try:
            ds = read_coco(p, strict=strict)
        except DatasetFormatError as exc:
            assert exc.issue.file == str(p)
            return
        if ds.num_instances < len(doc["annotations"]):
            assert ds.issues, "an annotation disappeared without a reported issue"
        assert all(i.file == str(p) for i in ds.issues)


@SETTINGS
@given(payload=json_values | st.binary(max_size=40))
def test_coco_arbitrary_content(payload):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "d.json"
        p.write_bytes(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        with pytest.raises(DatasetFormatError):
            read_coco(p)  # no categories with keypoints in any of these


@SETTINGS
@given(doc=json_values | st.fixed_dictionaries({"hand_pts": st.lists(st.lists(json_scalars, max_size=4),
                                                                      min_size=20, max_size=22)}),
       strict=st.booleans())
def test_cmu_garbage_is_reported(image_dir, doc, strict):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "a.json").write_text(json.dumps(doc))
        (Path(tmp) / "a.png").write_bytes((image_dir / "img_0.png").read_bytes())
        try:
            ds = read_cmu_hand(tmp, strict=strict)
        except DatasetFormatError as exc:
            assert strict and exc.issue.file == str(Path(tmp) / "a.json")
            return
        assert ds.num_images + len(ds.issues) == 1


def _feature(data):
    kind = data.draw(st.sampled_from(["bytes", "floats", "ints"]))
    if kind == "bytes":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=data.draw(st.lists(st.binary(max_size=20),
                                                                                       max_size=2))))
    if kind == "floats":
        vals = data.draw(st.lists(st.floats(width=32, allow_nan=False), max_size=8))
        return tf.train.Feature(float_list=tf.train.FloatList(value=vals))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=data.draw(st.lists(st.integers(-3, 3),
                                                                                   max_size=8))))


@FEW
@given(data=st.data(), strict=st.booleans())
def test_tfrecord_garbage_is_reported(image_dir, data, strict):
    ds = Dataset(skeleton=TRI, root=image_dir, samples=[Sample("img_0.png", instances=[
        Instance(keypoints=np.ones((3, 2)))])])
    with tempfile.TemporaryDirectory() as tmp:
        write_tfrecord(ds, Path(tmp) / "g.tfrecord")
        raw = next(iter(tf.data.TFRecordDataset(str(Path(tmp) / "g.tfrecord")))).numpy()
        ex = tf.train.Example.FromString(raw)
        for _ in range(data.draw(st.integers(1, 3))):
            key = data.draw(st.sampled_from(sorted(ex.features.feature) + ["heatmaps", "image"]))
            if data.draw(st.booleans()):
                ex.features.feature[key].CopyFrom(_feature(data))
            else:
                ex.features.feature.pop(key, None)
        records = [ex.SerializeToString(), data.draw(st.binary(max_size=30)), raw]
        path = Path(tmp) / "m.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as w:
            for r in records:
                w.write(r)
        tail = data.draw(st.binary(max_size=12))
        with open(path, "ab") as fh:
            fh.write(tail)
        for reader in (read_tfrecord, read_port_tfrecord):
            try:
                got = reader(path, strict=strict)
            except DatasetFormatError as exc:
                assert exc.issue.file == str(path)
                continue
            assert all(i.file == str(path) for i in got.issues)
            if not strict:
                assert got.issues  # the random second record or the tail is always wrong somewhere
            assert all(math.isfinite(v) for s in got.samples for i in s.instances for v in i.bbox)
