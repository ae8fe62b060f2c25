"""CMU Panoptic hand JSONs: one file per image, v=1 labelled, malformed files reported by name."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cpm_core.dataset import Dataset, DatasetFormatError, dataset_differences
from cpm_core.dataset.cmu_hand import read_cmu_hand, write_cmu_hand
from cpm_core.dataset.coco import read_coco
from cpm_core.skeleton import HAND_21, generic_skeleton

FIXTURE = Path(__file__).parent / "fixtures" / "dataset" / "tiny_coco" / "tiny.json"
IMAGE = FIXTURE.parent / "images" / "hand_00080.jpg"


def _pts(n=21, v=1):
    return [[10.0 + i, 20.0 + 2 * i, v] for i in range(n)]


def _put(folder, stem, doc, image=True, suffix=".jpg"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    if image:
        shutil.copy(IMAGE, folder / f"{stem}{suffix}")


def test_reads_points_visibility_extras_and_sizes(tmp_path):
    pts = _pts()
    pts[3][2] = 0
    _put(tmp_path / "manual_train", "a_l", {"hand_pts": pts, "is_left": 1, "head_size": 42.5})
    _put(tmp_path / "manual_train", "b_r", {"hand_pts_crop": _pts(), "is_left": 0}, suffix=".png")
    ds = read_cmu_hand(tmp_path)
    assert ds.skeleton is HAND_21 and ds.issues == []
    assert [s.image for s in ds.samples] == ["manual_train/a_l.jpg", "manual_train/b_r.png"]
    a = ds.samples[0]
    assert (a.width, a.height) == (320, 180)
    inst = a.instances[0]
    assert inst.keypoints[5].tolist() == [15.0, 30.0]
    assert inst.visibility.tolist() == [2, 2, 2, 0] + [2] * 17
    assert inst.extras == {"is_left": 1, "head_size": 42.5}
    assert inst.bbox == (10.0, 20.0, 20.0, 40.0)
    assert ds.samples[1].instances[0].extras == {"is_left": 0, "cmu_points_key": "hand_pts_crop"}
    one = read_cmu_hand(tmp_path / "manual_train" / "a_l.json")
    assert one.num_images == 1 and one.samples[0].image == "a_l.jpg"


@pytest.mark.parametrize("doc, message", [
    ("{not json", "not valid JSON"),
    ([1, 2], "not a JSON object"),
    ({"other": 1}, "no 'hand_pts'"),
    ({"hand_pts": _pts(20)}, "21 points, got 20"),
    ({"hand_pts": [[1, 2]] * 21}, "is not [x, y, v]"),
    ({"hand_pts": _pts(v=2)}, "must be 0 or 1"),
    ({"hand_pts": [[1, "a", 1]] * 21}, "is not [x, y, v]"),
])
def test_bad_files_are_skipped_and_named(tmp_path, doc, message):
    _put(tmp_path, "good", {"hand_pts": _pts()})
    _put(tmp_path, "bad", doc)
    ds = read_cmu_hand(tmp_path)
    assert [s.image for s in ds.samples] == ["good.jpg"]
    assert len(ds.issues) == 1
    assert ds.issues[0].file == str(tmp_path / "bad.json") and message in ds.issues[0].message
    with pytest.raises(DatasetFormatError, match="bad.json"):
        read_cmu_hand(tmp_path, strict=True)


def test_json_without_image_is_reported(tmp_path):
    _put(tmp_path, "lonely", {"hand_pts": _pts()}, image=False)
    ds = read_cmu_hand(tmp_path)
    assert ds.num_images == 0 and "no image" in ds.issues[0].message
    with pytest.raises(DatasetFormatError, match="no such"):
        read_cmu_hand(tmp_path / "missing")


def test_write_read_round_trip(tmp_path):
    ds = read_coco(FIXTURE)
    write_cmu_hand(ds, tmp_path / "cmu")
    names = sorted(p.name for p in (tmp_path / "cmu").iterdir())
    assert names == ["hand_00000.jpg", "hand_00000.json", "hand_00080.jpg", "hand_00080.json",
                     "hand_00160_0.jpg", "hand_00160_0.json", "hand_00160_1.jpg", "hand_00160_1.json"]
    doc = json.loads((tmp_path / "cmu" / "hand_00080.json").read_text())
    assert doc["hand_pts"][4][2] == 1 and doc["hand_pts"][16] == [0.0, 0.0, 0]  # occluded -> 1, absent -> 0
    assert doc["handedness"] == "Left"
    back = read_cmu_hand(tmp_path / "cmu")
    assert back.num_images == 4  # the two-hand image became two files
    first_two = back.with_samples(back.samples[:2])
    src_two = ds.with_samples(ds.samples[:2])
    # positions, labelled joints, tight boxes and extras survive; occluded and predicted do not
    assert dataset_differences(src_two, first_two, images=False, sample_extras=False, visibility=False,
                               predicted=False) == []
    assert np.array_equal(back.samples[1].instances[0].visibility > 0, ds.samples[1].instances[0].visibility > 0)
    with pytest.raises(ValueError, match="21-joint"):
        write_cmu_hand(Dataset(skeleton=generic_skeleton(3)), tmp_path / "x")
