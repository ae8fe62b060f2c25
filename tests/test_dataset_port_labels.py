"""The port's <person>/labels.txt layout: field order, what survives a round trip, malformed lines."""

import os
from pathlib import Path

import numpy as np
import pytest

from cpm_core.dataset import Dataset, DatasetFormatError, Instance, Sample, dataset_differences
from cpm_core.dataset.coco import read_coco
from cpm_core.dataset.port_labels import default_person, read_labels, write_labels
from cpm_core.skeleton import HAND_21, generic_skeleton

FIXTURE = Path(__file__).parent / "fixtures" / "dataset" / "tiny_coco" / "tiny.json"
PERSON = "mediapipe_samples_hand_landmarker_test_video"


def _labels_line(name, bbox, kp):
    return " ".join([name, *map(str, bbox), *map(str, np.asarray(kp).reshape(-1))])


def test_writes_y_first_with_absent_joints_as_zeros(tmp_path):
    ds = read_coco(FIXTURE)
    write_labels(ds, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [PERSON]
    imgs = sorted(p.name for p in (tmp_path / PERSON / "imgs").iterdir())
    assert imgs == ["hand_00000.jpg", "hand_00080.jpg", "hand_00160.jpg"]
    assert (tmp_path / PERSON / "imgs" / "hand_00080.jpg").read_bytes() == ds.image_path(ds.samples[1]).read_bytes()
    lines = (tmp_path / PERSON / "labels.txt").read_text().splitlines()
    assert len(lines) == 4  # one per instance; the third image has two
    fields = lines[1].split()
    inst = ds.samples[1].instances[0]
    x, y, w, h = inst.bbox
    assert fields[0] == "hand_00080.jpg"
    assert fields[1:5] == [f"{y:.2f}", f"{x:.2f}", f"{y + h:.2f}", f"{x + w:.2f}"]
    assert fields[5:7] == [f"{inst.keypoints[0, 1]:.2f}", f"{inst.keypoints[0, 0]:.2f}"]
    assert fields[5 + 2 * 16:7 + 2 * 16] == ["0", "0"]  # joint 16 is absent
    assert len(fields) == 5 + 2 * 21


def test_round_trip_keeps_positions_exactly_and_loses_occluded_vs_visible(tmp_path):
    ds = read_coco(FIXTURE)
    write_labels(ds, tmp_path)
    back = read_labels(tmp_path)
    assert back.issues == [] and back.skeleton is HAND_21
    # the fixture has 2 decimals, the default precision: positions, boxes, sizes and labelled joints are exact
    assert dataset_differences(ds, back, images=False, sample_extras=False, visibility=False, extras=False,
                               predicted=False) == []
    inst = back.samples[1].instances[0]
    assert inst.visibility[[4, 8]].tolist() == [2, 2]  # were occluded (1): the format cannot tell
    assert inst.visibility[[16, 20]].tolist() == [0, 0]
    assert not inst.predicted.any() and inst.extras == {}
    assert back.samples[1].image == f"{PERSON}/imgs/hand_00080.jpg"
    assert back.samples[1].extras == {"person": PERSON}
    assert (back.samples[1].width, back.samples[1].height) == (320, 180)  # from the image header
    assert [len(s.instances) for s in back.samples] == [1, 1, 2]


def test_lower_precision_keeps_positions_to_the_printed_decimals(tmp_path):
    ds = read_coco(FIXTURE)
    write_labels(ds, tmp_path, precision=1, images="none")
    back = read_labels(tmp_path)
    assert dataset_differences(ds, back, atol=0.05 + 1e-9, bbox_atol=0.1 + 1e-9, images=False,
                               sample_extras=False, visibility=False, extras=False, predicted=False,
                               sizes=False) == []
    assert dataset_differences(ds, back, atol=0.01, images=False, sample_extras=False, visibility=False,
                               extras=False, predicted=False, sizes=False)  # really rounded


def test_xy_order_is_explicit(tmp_path):
    ds = Dataset(skeleton=generic_skeleton(2), samples=[Sample("a.jpg", instances=[
        Instance(keypoints=[[10, 20], [30, 40]], bbox=(1, 2, 3, 4))])])
    write_labels(ds, tmp_path / "xy", order="xy", images="none", person=lambda s: "p")
    assert (tmp_path / "xy" / "p" / "labels.txt").read_text() == \
        "a.jpg 1.00 2.00 4.00 6.00 10.00 20.00 30.00 40.00\n"
    xy = read_labels(tmp_path / "xy", skeleton=generic_skeleton(2), order="xy")
    assert xy.samples[0].instances[0].keypoints.tolist() == [[10, 20], [30, 40]]
    assert xy.samples[0].instances[0].bbox == (1, 2, 3, 4)
    swapped = read_labels(tmp_path / "xy", skeleton=generic_skeleton(2))  # y-first reading of x-first data
    assert swapped.samples[0].instances[0].keypoints.tolist() == [[20, 10], [40, 30]]
    with pytest.raises(ValueError, match="order"):
        read_labels(tmp_path / "xy", order="yxz")


def test_reads_one_labels_file_and_groups_lines_by_name(tmp_path):
    person = tmp_path / "alice"
    person.mkdir()
    kp = np.array([[5.0, 6.0], [0.0, 0.0], [-1.0, 7.0]])  # (row, col) pairs in y-first order
    text = "\n".join([
        "# comment",
        _labels_line("f.jpg", [1, 2, 11, 12], kp),
        "",
        _labels_line("f.jpg", [3, 4, 13, 14], kp + 1),
    ])
    (person / "labels.txt").write_text(text)
    ds = read_labels(person / "labels.txt", skeleton=generic_skeleton(3), read_sizes=False)
    assert ds.root == tmp_path
    assert ds.num_images == 1 and ds.num_instances == 2
    a, b = ds.samples[0].instances
    assert a.keypoints[0].tolist() == [6.0, 5.0]
    assert a.visibility.tolist() == [2, 0, 0]  # 0 0 and negative are absent
    assert b.visibility.tolist() == [2, 2, 2]
    assert a.bbox == (2.0, 1.0, 10.0, 10.0)


@pytest.mark.parametrize("line, message", [
    ("f.jpg 1 2 3", "expected 11 fields"),
    ("f.jpg 1 2 3 4 5 6 7 8 9 10 11", "expected 11 fields"),
    ("f.jpg 1 2 3 4 a 6 7 8 9 10", "not a number"),
    ("f.jpg 1 2 3 4 nan 6 7 8 9 10", "NaN"),
])
def test_malformed_lines_are_reported_with_file_and_line(tmp_path, line, message):
    person = tmp_path / "p"
    person.mkdir()
    good = "g.jpg 1 2 3 4 5 6 7 8 9 10"
    (person / "labels.txt").write_text(f"{good}\n{line}\n{good}\n")
    ds = read_labels(tmp_path, skeleton=generic_skeleton(3))
    assert ds.num_instances == 2
    assert len(ds.issues) == 1
    issue = ds.issues[0]
    assert (issue.file, issue.line) == (str(person / "labels.txt"), 2)
    assert message in issue.message
    with pytest.raises(DatasetFormatError, match=r"labels.txt:2"):
        read_labels(tmp_path, skeleton=generic_skeleton(3), strict=True)


def test_missing_or_empty_folder_is_fatal(tmp_path):
    with pytest.raises(DatasetFormatError, match="no such"):
        read_labels(tmp_path / "nothing")
    with pytest.raises(DatasetFormatError, match="labels.txt"):
        read_labels(tmp_path)


def test_images_can_be_linked_and_names_are_made_safe_and_unique(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    (src / "a" / "my frame.jpg").write_bytes(b"A")
    (src / "b" / "my frame.jpg").write_bytes(b"B")
    inst = Instance(keypoints=[[1, 1]])
    ds = Dataset(skeleton=generic_skeleton(1), root=src, samples=[
        Sample("a/my frame.jpg", instances=[inst]), Sample("b/my frame.jpg", instances=[inst]),
        Sample("b/empty.jpg")])
    write_labels(ds, tmp_path / "out", images="link", person=lambda s: "p")
    imgs = tmp_path / "out" / "p" / "imgs"
    assert sorted(os.listdir(imgs)) == ["my_frame.jpg", "my_frame_1.jpg"]
    assert (imgs / "my_frame.jpg").is_symlink() and (imgs / "my_frame_1.jpg").read_bytes() == b"B"
    names = [line.split()[0] for line in (tmp_path / "out" / "p" / "labels.txt").read_text().splitlines()]
    assert names == ["my_frame.jpg", "my_frame_1.jpg"]


def test_default_person_folder():
    assert default_person(Sample("x.jpg", extras={"person": "bob smith"})) == "bob_smith"
    assert default_person(Sample("x.jpg", extras={"source": "gesrec/hands.mp4"})) == "gesrec_hands"
    assert default_person(Sample("frames/x.jpg")) == "frames"
    assert default_person(Sample("x.jpg")) == "images"
