"""COCO keypoints JSON: reading the shared data and the fixture, exact round trips, malformed input."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from cpm_core.dataset import Dataset, DatasetFormatError, Instance, Sample, dataset_differences
from cpm_core.dataset.coco import read_coco, write_coco
from cpm_core.skeleton import COCO_17, HAND_21, Skeleton

FIXTURE = Path(__file__).parent / "fixtures" / "dataset" / "tiny_coco" / "tiny.json"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data beside the clone
needs_shared = pytest.mark.skipif(not (SHARED / "hand_pseudo" / "val.json").is_file(),
                                  reason="shared data not available")


def _fixture_doc():
    return json.loads(FIXTURE.read_text())


def _write_doc(tmp_path, doc, name="d.json"):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def test_reads_fixture_with_visibility_predicted_and_extras():
    ds = read_coco(FIXTURE)
    assert ds.skeleton is HAND_21
    assert ds.root == FIXTURE.parent
    assert (ds.num_images, ds.num_instances, ds.issues) == (3, 4, [])
    s = ds.samples[1]
    assert (s.image, s.width, s.height) == ("images/hand_00080.jpg", 320, 180)
    assert s.extras == {"source": "mediapipe_samples/hand_landmarker_test_video.mp4", "frame": 80}
    assert ds.image_path(s).is_file()
    inst = s.instances[0]
    assert inst.visibility[[4, 8]].tolist() == [1, 1] and inst.visibility[[16, 20]].tolist() == [0, 0]
    assert np.flatnonzero(inst.predicted).tolist() == [4, 8]
    # area is kept only where it is not simply w * h; iscrowd only where it is not 0
    assert inst.extras == {"area": 5516.97, "handedness": "Left", "score": 0.973}
    raw = _fixture_doc()["annotations"][1]
    assert inst.keypoints[0].tolist() == raw["keypoints"][0:2]
    assert inst.bbox == tuple(raw["bbox"])
    assert [len(x.instances) for x in ds.samples] == [1, 1, 2]
    assert ds.extras["coco"]["info"]["version"] == "1"


@needs_shared
@pytest.mark.parametrize("rel, skeleton, images, instances", [
    ("hand_pseudo/val.json", HAND_21, 102, 102),
    ("hand_pseudo/train.json", HAND_21, 1136, 1235),
    ("body_pseudo/train.json", COCO_17, 290, 290),
    ("body_pseudo/val.json", COCO_17, 85, 85),
])
def test_reads_shared_pseudo_labels(rel, skeleton, images, instances):
    ds = read_coco(SHARED / rel)
    assert ds.skeleton is skeleton
    assert (ds.num_images, ds.num_instances, ds.issues) == (images, instances, [])
    s, inst = next(ds.instances())
    assert ds.image_path(s).is_file()
    assert "score" in inst.extras
    if skeleton is HAND_21:
        assert inst.extras["handedness"] in ("Left", "Right")


def test_round_trip_is_exact_and_file_names_follow_the_json(tmp_path):
    ds = read_coco(FIXTURE)
    out = tmp_path / "elsewhere" / "copy.json"
    write_coco(ds, out)
    back = read_coco(out)
    assert dataset_differences(ds, back, images=False) == []
    assert back.extras == ds.extras
    for a, b in zip(ds.samples, back.samples, strict=True):
        assert os.path.samefile(ds.image_path(a), back.image_path(b))
        assert not Path(b.image).is_absolute()
    # written in place, names are unchanged
    shutil.copytree(FIXTURE.parent, tmp_path / "copy")
    here = read_coco(tmp_path / "copy" / FIXTURE.name)
    write_coco(here, tmp_path / "copy" / "again.json")
    assert [s.image for s in read_coco(tmp_path / "copy" / "again.json").samples] == [s.image for s in ds.samples]


def test_written_json_follows_coco_conventions(tmp_path):
    ds = Dataset(skeleton=HAND_21, root=tmp_path, samples=[Sample("a.jpg", 100, 50, instances=[
        Instance(keypoints=np.full((21, 2), 7.0), visibility=[2] * 20 + [0], bbox=(1, 2, 3.5, 4))])])
    write_coco(ds, tmp_path / "o.json")
    doc = json.loads((tmp_path / "o.json").read_text())
    ann = doc["annotations"][0]
    assert ann["keypoints"][:3] == [7, 7, 2] and isinstance(ann["keypoints"][0], int)
    assert ann["keypoints"][-3:] == [7, 7, 0]
    assert ann["num_keypoints"] == 20
    assert ann["bbox"] == [1, 2, 3.5, 4] and ann["area"] == 14
    assert "cpm_predicted" not in ann
    cat = doc["categories"][0]
    assert cat["name"] == "hand" and cat["skeleton"][0] == [1, 2] and len(cat["keypoints"]) == 21
    assert doc["images"][0] == {"id": 1, "file_name": "a.jpg", "width": 100, "height": 50}


def test_custom_skeleton_round_trips_with_flip_pairs(tmp_path):
    skel = Skeleton("paw", ("a", "b", "c"), limbs=((0, 1), (1, 2)), flip_pairs=((0, 2),))
    ds = Dataset(skeleton=skel, root=tmp_path, samples=[Sample("p.jpg", instances=[
        Instance(keypoints=[[1.5, 2], [3, 4], [5, 6]], visibility=[2, 1, 0], predicted=[0, 1, 0],
                 extras={"score": np.float32(0.5)})])])
    write_coco(ds, tmp_path / "p.json")
    back = read_coco(tmp_path / "p.json")
    assert back.skeleton == skel
    assert dataset_differences(ds, back) == []
    # without our extra field the category still gives names and limbs
    doc = json.loads((tmp_path / "p.json").read_text())
    del doc["categories"][0]["cpm_skeleton"]
    plain = read_coco(_write_doc(tmp_path, doc))
    assert plain.skeleton.joints == ("a", "b", "c") and plain.skeleton.limbs == ((0, 1), (1, 2))
    assert plain.skeleton.name == "paw"


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "o.json"
    target.write_text("old")
    ds = Dataset(skeleton=HAND_21, samples=[Sample("a.jpg", instances=[
        Instance(keypoints=np.zeros((21, 2)), extras={"bad": object()})])])
    with pytest.raises(TypeError):
        write_coco(ds, target)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["o.json"]


def test_in_memory_images_are_written_beside_the_json(tmp_path):
    ds = Dataset(skeleton=HAND_21, root=tmp_path / "nowhere", samples=[Sample("img/a.png", data=b"\x89PNGfake")])
    write_coco(ds, tmp_path / "out" / "o.json")
    assert (tmp_path / "out" / "img" / "a.png").read_bytes() == b"\x89PNGfake"
    assert read_coco(tmp_path / "out" / "o.json").samples[0].image == "img/a.png"


@pytest.mark.parametrize("text, line", [("{\n  \"images\": [,]\n}", 2), ("", 1), ("[1, 2]", None), ("{}", None)])
def test_unreadable_files_raise_with_file_and_line(tmp_path, text, line):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(DatasetFormatError) as err:
        read_coco(p)
    assert err.value.issue.file == str(p)
    assert err.value.issue.line == line
    assert str(p) in str(err.value)


def test_missing_file_raises_format_error(tmp_path):
    with pytest.raises(DatasetFormatError, match="cannot read"):
        read_coco(tmp_path / "none.json")


@pytest.mark.parametrize("field, value, message", [
    ("keypoints", [1, 2, 2] * 20, "63 numbers"),
    ("keypoints", ["x"] * 63, "not a number"),
    ("keypoints", [1, 2, 3] * 21, "0, 1 or 2"),
    ("bbox", [1, 2], "bbox"),
    ("image_id", 999, "names no image"),
    ("cpm_predicted", [2] * 21, "cpm_predicted"),
])
def test_bad_annotation_is_skipped_and_reported_by_id(tmp_path, field, value, message):
    doc = _fixture_doc()
    doc["annotations"][1][field] = value
    p = _write_doc(tmp_path, doc)
    ds = read_coco(p)
    assert ds.num_instances == 3
    assert len(ds.issues) == 1
    issue = ds.issues[0]
    assert issue.record == "annotation id 2" and issue.file == str(p) and message in issue.message
    with pytest.raises(DatasetFormatError, match="annotation id 2"):
        read_coco(p, strict=True)


def test_bad_images_and_other_categories_are_reported(tmp_path):
    doc = _fixture_doc()
    doc["images"][0]["width"] = "wide"
    doc["images"].append(dict(doc["images"][1]))  # duplicate id
    doc["categories"].append({"id": 2, "name": "face", "keypoints": ["nose"], "skeleton": []})
    doc["annotations"].append({"id": 50, "image_id": 2, "category_id": 2, "keypoints": [1, 1, 2]})
    ds = read_coco(_write_doc(tmp_path, doc))
    assert ds.num_images == 2 and ds.num_instances == 3
    messages = [str(i) for i in ds.issues]
    assert any("width 'wide'" in m for m in messages)
    assert any("duplicate image id" in m for m in messages)
    assert any("names no image" in m for m in messages)  # the annotation of the skipped image
    assert any("skipped 1 annotation(s) of other categories" in m for m in messages)
    face = read_coco(_write_doc(tmp_path, doc), category="face")
    assert face.skeleton.joints == ("nose",) and face.num_instances == 1


def test_missing_bbox_is_computed_from_labelled_joints(tmp_path):
    doc = _fixture_doc()
    del doc["annotations"][1]["bbox"]
    ds = read_coco(_write_doc(tmp_path, doc))
    inst = ds.samples[1].instances[0]
    lab = inst.keypoints[inst.visibility > 0]
    assert inst.bbox[:2] == tuple(lab.min(axis=0))
    assert np.allclose(np.array(inst.bbox[:2]) + inst.bbox[2:], lab.max(axis=0))


def test_ids_other_than_1_2_3_are_kept(tmp_path):
    doc = _fixture_doc()
    for img in doc["images"]:
        img["id"] += 100
    for ann in doc["annotations"]:
        ann["image_id"] += 100
        ann["id"] *= 7
    ds = read_coco(_write_doc(tmp_path, doc))
    assert [s.extras["id"] for s in ds.samples] == [101, 102, 103]
    assert [i.extras["id"] for _, i in ds.instances()] == [7, 14, 21, 28]
    write_coco(ds, tmp_path / "o.json")
    out = json.loads((tmp_path / "o.json").read_text())
    assert [a["id"] for a in out["annotations"]] == [7, 14, 21, 28]
    assert [a["image_id"] for a in out["annotations"]] == [101, 102, 103, 103]
    assert "id" not in read_coco(FIXTURE).samples[0].extras  # plain 1, 2, 3 are not recorded
    # clashing kept ids fall back to free numbers
    ds.samples[1].extras["id"] = 101
    ds.samples[2].extras["id"] = "x"
    write_coco(ds, tmp_path / "o2.json")
    assert [i["id"] for i in json.loads((tmp_path / "o2.json").read_text())["images"]] == [1, 2, "x"]
