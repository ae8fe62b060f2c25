"""Dataset statistics: counts, per-joint visibility, box sizes, and the text table."""

from pathlib import Path

import numpy as np

from cpm_core.dataset import Dataset, Instance, Sample
from cpm_core.dataset.coco import read_coco
from cpm_core.dataset.stats import dataset_stats, format_stats
from cpm_core.skeleton import generic_skeleton

FIXTURE = Path(__file__).parent / "fixtures" / "dataset" / "tiny_coco" / "tiny.json"


def test_fixture_stats():
    st = dataset_stats(read_coco(FIXTURE))
    assert (st["images"], st["instances"], st["images_without_instances"], st["max_instances_per_image"]) == \
        (3, 4, 0, 2)
    assert st["skeleton"] == "hand21" and st["num_joints"] == 21
    thumb_tip = st["joints"][4]
    assert thumb_tip == {"name": "thumb4", "visible": 3, "occluded": 1, "absent": 0, "predicted": 1}
    assert st["joints"][20] == {"name": "little4", "visible": 3, "occluded": 0, "absent": 1, "predicted": 0}
    assert st["visibility"] == {"visible": 80, "occluded": 2, "absent": 2}
    assert st["bbox"]["count"] == 4 and st["bbox"]["empty"] == 0
    assert st["bbox"]["width"]["min"] == 24.75 and st["bbox"]["width"]["max"] == 66.49
    assert st["bbox"]["height"]["median"] == (96.84 + 112.21) / 2


def test_empty_boxes_and_empty_dataset():
    ds = Dataset(skeleton=generic_skeleton(2), samples=[
        Sample("a.jpg", instances=[Instance(keypoints=np.zeros((2, 2)), visibility=[0, 0])]), Sample("b.jpg")])
    st = dataset_stats(ds)
    assert st["bbox"] == {"count": 0, "empty": 1, "width": {"min": 0.0, "median": 0.0, "mean": 0.0, "max": 0.0},
                          "height": {"min": 0.0, "median": 0.0, "mean": 0.0, "max": 0.0},
                          "area": {"min": 0.0, "median": 0.0, "mean": 0.0, "max": 0.0}}
    assert st["images_without_instances"] == 1
    assert dataset_stats(Dataset(skeleton=generic_skeleton(1)))["instances"] == 0
    assert "images: 0" in format_stats(dataset_stats(Dataset(skeleton=generic_skeleton(1))))


def test_table_lists_every_joint_and_the_box_summary():
    text = format_stats(dataset_stats(read_coco(FIXTURE)))
    lines = text.splitlines()
    assert lines[0] == "skeleton: hand21 (21 joints)"
    assert "images: 3  instances: 4" in lines[1]
    row = next(line for line in lines if line.startswith("thumb4 "))
    assert row.split() == ["thumb4", "3", "1", "0", "1"]
    assert next(line for line in lines if line.startswith("total")).split() == ["total", "80", "2", "2"]
    assert next(line for line in lines if line.startswith("width")).split()[1:] == \
        ["24.8", f"{np.median([24.75, 50.94, 66.49, 66.49]):.1f}", f"{np.mean([24.75, 50.94, 66.49, 66.49]):.1f}",
         "66.5"]
