"""Format guessing and the read_dataset / write_dataset dispatch."""

import json
import shutil
from pathlib import Path

import pytest

from cpm_core.dataset import DatasetFormatError, dataset_differences, guess_format, read_dataset, write_dataset
from cpm_core.dataset.coco import read_coco

FIXTURE = Path(__file__).parent / "fixtures" / "dataset" / "tiny_coco" / "tiny.json"


def test_guess_and_read_every_written_format(tmp_path):
    ds = read_coco(FIXTURE)
    write_dataset(ds, tmp_path / "c.json", "coco")
    write_dataset(ds, tmp_path / "labels", "labels")
    write_dataset(ds, tmp_path / "t.tfrecord", "tfrecord")
    write_dataset(ds, tmp_path / "p.tfrecords", "port-tfrecord", size=32)
    write_dataset(ds, tmp_path / "cmu", "cmu-hand")
    expected = {"c.json": "coco", "labels": "labels", "labels/mediapipe_samples_hand_landmarker_test_video/labels.txt":
                "labels", "t.tfrecord": "tfrecord", "p.tfrecords": "port-tfrecord", "cmu": "cmu-hand",
                "cmu/hand_00000.json": "cmu-hand"}
    for rel, fmt in expected.items():
        assert guess_format(tmp_path / rel) == fmt, rel
        got = read_dataset(tmp_path / rel)
        assert got.num_instances >= 1 and got.issues == []
    assert dataset_differences(ds, read_dataset(tmp_path / "t.tfrecord")) == []
    assert read_dataset(tmp_path / "p.tfrecords").samples[0].width == 32


def test_unclear_paths_raise_format_errors(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DatasetFormatError, match="x.txt"):
        guess_format(tmp_path / "x.txt")
    with pytest.raises(DatasetFormatError, match="no such"):
        read_dataset(tmp_path / "missing.json")
    shutil.copy(FIXTURE, tmp_path / "a.json")
    with pytest.raises(DatasetFormatError, match="name the file"):
        read_dataset(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFormatError, match="labels.txt"):
        read_dataset(tmp_path / "empty")


def test_explicit_format_and_options(tmp_path):
    ds = read_coco(FIXTURE)
    write_dataset(ds, tmp_path / "lab", "labels", order="xy", images="none")
    xy = read_dataset(tmp_path / "lab", order="xy")
    assert dataset_differences(ds, xy, images=False, sample_extras=False, visibility=False, extras=False,
                               predicted=False, sizes=False) == []
    (tmp_path / "data.dat").write_text(json.dumps(json.loads(FIXTURE.read_text())))
    assert read_dataset(tmp_path / "data.dat", fmt="coco").num_instances == 4
    with pytest.raises(ValueError, match="unknown dataset format"):
        read_dataset(FIXTURE, fmt="yaml")
    with pytest.raises(ValueError, match="unknown dataset format"):
        write_dataset(ds, tmp_path / "x", "yaml")
