"""The in-memory dataset model: defaults, validation, boxes, paths, splits and comparisons."""

from pathlib import Path

import numpy as np
import pytest

from cpm_core.dataset import Dataset, Instance, Sample, bbox_from_keypoints, dataset_differences
from cpm_core.skeleton import HAND_21, generic_skeleton


def _inst(n=3, **kw):
    return Instance(keypoints=np.arange(2 * n, dtype=float).reshape(n, 2) + 10, **kw)


def test_instance_defaults_are_visible_unpredicted_with_tight_box():
    inst = Instance(keypoints=[[10, 20], [30, 5], [15, 40]])
    assert inst.keypoints.dtype == np.float64 and inst.keypoints.shape == (3, 2)
    assert inst.visibility.dtype == np.int8 and inst.visibility.tolist() == [2, 2, 2]
    assert inst.predicted.dtype == bool and not inst.predicted.any()
    assert inst.bbox == (10.0, 5.0, 20.0, 35.0)
    assert inst.num_labelled == 3


def test_instance_box_ignores_absent_joints_and_flat_keypoints_are_reshaped():
    inst = Instance(keypoints=[0, 0, 10, 10, 20, 30], visibility=[0, 2, 1])
    assert inst.keypoints.shape == (3, 2)
    assert inst.bbox == (10.0, 10.0, 10.0, 20.0)
    assert inst.num_labelled == 2


@pytest.mark.parametrize("kw, match", [
    ({"visibility": [2, 2]}, "visibility must have 3"),
    ({"visibility": [2, 3, 0]}, "0, 1 or 2"),
    ({"predicted": [True]}, "predicted must have 3"),
    ({"bbox": (1, 2, 3)}, "bbox must be"),
])
def test_instance_rejects_inconsistent_fields(kw, match):
    with pytest.raises(ValueError, match=match):
        _inst(**kw)


def test_instance_rejects_bad_keypoint_shape():
    with pytest.raises(ValueError, match="shape"):
        Instance(keypoints=np.zeros((3, 3)))


def test_instance_copies_its_inputs():
    kp = np.zeros((2, 2))
    inst = Instance(keypoints=kp)
    kp[0, 0] = 99
    assert inst.keypoints[0, 0] == 0


def test_bbox_from_keypoints_margin_clip_and_empty():
    kp = np.array([[10.0, 10.0], [30.0, 20.0], [500.0, 500.0]])
    vis = np.array([2, 1, 0])
    assert bbox_from_keypoints(kp, vis) == (10.0, 10.0, 20.0, 10.0)
    # margin is a fraction of the longer side (20), on every side
    assert bbox_from_keypoints(kp, vis, margin=0.5) == (0.0, 0.0, 40.0, 30.0)
    assert bbox_from_keypoints(kp, vis, margin=1.0, image_size=(45, 100)) == (0.0, 0.0, 45.0, 40.0)
    assert bbox_from_keypoints(kp, [0, 0, 0]) == (0.0, 0.0, 0.0, 0.0)
    assert Dataset.bbox_from_keypoints(kp) == (10.0, 10.0, 490.0, 490.0)


def test_image_path_and_counts(tmp_path):
    ds = Dataset(skeleton=generic_skeleton(3), root=tmp_path, samples=[
        Sample("a/x.jpg", instances=[_inst(), _inst()]),
        Sample(str(tmp_path / "abs.png")),
    ])
    assert ds.image_path(ds.samples[0]) == tmp_path / "a" / "x.jpg"
    assert ds.image_path(ds.samples[1]) == tmp_path / "abs.png"
    assert (ds.num_images, ds.num_instances) == (2, 2)
    assert len(list(ds.instances())) == 2
    assert ds.validate() == []
    (tmp_path / "abs.png").write_bytes(b"file")
    assert ds.read_image_bytes(ds.samples[1]) == b"file"
    ds.samples[1].data = b"memory"
    assert ds.read_image_bytes(ds.samples[1]) == b"memory"


def test_validate_reports_joint_count_mismatch():
    ds = Dataset(skeleton=HAND_21, samples=[Sample("x.jpg", instances=[_inst(3)])])
    problems = ds.validate()
    assert len(problems) == 1 and "3 joints" in problems[0] and "21" in problems[0]


def test_split_keeps_groups_together_and_is_reproducible():
    samples = [Sample(f"{v}_{i}.jpg", extras={"source": f"video{v}"}) for v in range(10) for i in range(5)]
    ds = Dataset(skeleton=generic_skeleton(1), samples=samples)
    train, val = ds.split(0.2, seed=3, group=lambda s: s.extras["source"])
    assert train.num_images + val.num_images == 50
    assert val.num_images == 10  # two whole videos
    val_sources = {s.extras["source"] for s in val.samples}
    assert not val_sources & {s.extras["source"] for s in train.samples}
    again = ds.split(0.2, seed=3, group=lambda s: s.extras["source"])[1]
    assert [s.image for s in again.samples] == [s.image for s in val.samples]
    assert ds.split(0.0)[1].num_images == 0
    with pytest.raises(ValueError):
        ds.split(1.5)


def test_copy_is_deep_and_differences_name_what_changed():
    ds = Dataset(skeleton=generic_skeleton(3), root=Path("r"), samples=[
        Sample("x.jpg", 10, 20, instances=[_inst(extras={"score": 0.5})], extras={"frame": 3})])
    other = ds.copy()
    assert dataset_differences(ds, other) == []
    other.samples[0].instances[0].keypoints[1, 0] += 0.25
    other.samples[0].instances[0].visibility[2] = 1
    other.samples[0].instances[0].extras["score"] = 0.7
    other.samples[0].extras["frame"] = 4
    diffs = dataset_differences(ds, other)
    assert ds.samples[0].instances[0].keypoints[1, 0] == 12.0
    assert any("keypoints differ (max 0.25" in d for d in diffs)
    assert any("visibility" in d for d in diffs)
    assert any("extras {'score': 0.5}" in d for d in diffs)
    assert any("extras {'frame': 3}" in d for d in diffs)
    # occluded vs visible is ignorable, labelled vs absent is not
    assert dataset_differences(ds, other, atol=0.3, visibility=False, extras=False, sample_extras=False) == []
    other.samples[0].instances[0].visibility[2] = 0
    assert dataset_differences(ds, other, atol=0.3, visibility=False, extras=False, sample_extras=False) == [
        "sample 0 (x.jpg) instance 0: labelled joints differ"]


def test_differences_by_name_pairs_reordered_samples():
    a = Dataset(skeleton=generic_skeleton(3), samples=[Sample("p/a.jpg", instances=[_inst()]), Sample("p/b.jpg")])
    b = Dataset(skeleton=generic_skeleton(3), samples=[Sample("q/b.jpg"), Sample("q/a.jpg", instances=[_inst()])])
    assert dataset_differences(a, b, images=False)  # by position: instance counts differ
    assert dataset_differences(a, b, images=False, by_name=True) == []
