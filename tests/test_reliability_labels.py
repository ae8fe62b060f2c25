"""Labels with NaN or infinite coordinates (issue #22, item 12) and conversions that meet a missing image
(item 13).

Python's json reads `NaN` and `Infinity`; such a COCO record used to be accepted, exported to labels.txt as `nan
inf` (which our own labels reader then refused) and to fail training much later ("lower the learning rate").
Every reader now refuses such a record when it reads it, naming the file and the record; `cpm train` says how many
records it dropped and why, and when nothing is left, which check removed what.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from run_configs import TINY_COCO, write_tiny_config

from cpm_core.dataset.coco import read_coco
from cpm_core.dataset.formats import read_dataset, write_dataset
from cpm_core.dataset.issues import DatasetFormatError
from cpm_core.dataset.model import Dataset, Instance, Sample
from cpm_core.dataset.port_labels import read_labels
from training.events import parse_line

ROOT = Path(__file__).resolve().parents[1]


def _tiny_copy(tmp_path: Path, poison: dict[int, tuple[int, str]]) -> Path:
    """The tiny COCO fixture copied (with its images), annotation index -> (keypoint value index, JSON literal)
    replaced by NaN / Infinity literals as Python's json writes them."""
    folder = tmp_path / "tiny_coco"
    shutil.copytree(TINY_COCO.parent, folder)
    doc = json.loads(TINY_COCO.read_text())
    marks = {}
    for ann, (index, literal) in poison.items():
        marker = f"__POISON_{ann}__"
        doc["annotations"][ann]["keypoints"][index] = marker
        marks[f'"{marker}"'] = literal
    text = json.dumps(doc)
    for marker, literal in marks.items():
        text = text.replace(marker, literal)
    (folder / "tiny.json").write_text(text)
    return folder / "tiny.json"


def test_coco_nan_and_infinity_are_refused_with_file_and_record(tmp_path):
    path = _tiny_copy(tmp_path, {1: (0, "NaN"), 2: (4, "-Infinity")})
    ds = read_coco(path)
    assert ds.num_instances == 2  # of 4
    messages = [str(i) for i in ds.issues]
    assert len(messages) == 2
    assert messages[0].startswith(f"{path} (annotation id 2): keypoints hold NaN or infinite values (joint 0 x = nan")
    assert "(annotation id 3)" in messages[1] and "joint 1 y = -inf" in messages[1]
    with pytest.raises(DatasetFormatError, match="annotation id 2"):
        read_coco(path, strict=True)


def test_coco_with_nan_converts_to_labels_our_reader_reads_back(tmp_path):
    path = _tiny_copy(tmp_path, {0: (3, "Infinity")})
    ds = read_dataset(path)
    write_dataset(ds, tmp_path / "labels", "labels")
    text = "".join(p.read_text() for p in (tmp_path / "labels").glob("*/labels.txt"))
    assert "nan" not in text.lower() and "inf" not in text.lower()
    back = read_labels(tmp_path / "labels")
    assert back.issues == [] and back.num_instances == ds.num_instances == 3


def test_labels_txt_nan_lines_are_refused_with_line_numbers(tmp_path):
    person = tmp_path / "ds" / "alice"
    (person / "imgs").mkdir(parents=True)
    good = "a.jpg 1 1 9 9 " + " ".join(["5 5"] * 21)
    bad = "b.jpg 1 1 9 9 nan 5 " + " ".join(["5 5"] * 20)
    worse = "c.jpg 1 1 9 inf " + " ".join(["5 5"] * 21)
    (person / "labels.txt").write_text("\n".join([good, bad, worse]) + "\n")
    ds = read_labels(tmp_path / "ds", read_sizes=False)
    assert ds.num_instances == 1
    assert [(i.line, "NaN" in i.message) for i in ds.issues] == [(2, True), (3, True)]
    assert all(i.file == str(person / "labels.txt") for i in ds.issues)


def test_tfrecord_nan_joints_are_refused_and_nan_is_never_written(tmp_path):
    import tensorflow as tf

    from cpm_core.dataset.tfrecord import read_tfrecord

    ds = read_dataset(TINY_COCO)
    good = tmp_path / "good.tfrecord"
    write_dataset(ds, good, "tfrecord")
    # The same file with the second example's exact joints set to NaN (both copies: float32 list and f64 bytes).
    bad = tmp_path / "bad.tfrecord"
    with tf.io.TFRecordWriter(str(bad)) as writer:
        for i, raw in enumerate(tf.data.TFRecordDataset(str(good))):
            ex = tf.train.Example.FromString(raw.numpy())
            if i == 1:
                feats = ex.features.feature
                joints = np.frombuffer(feats["joints/f64"].bytes_list.value[0], "<f8").copy()
                joints[4] = np.nan
                feats["joints/f64"].bytes_list.value[0] = joints.astype("<f8").tobytes()
                feats["joints"].float_list.value[4] = float("nan")
            writer.write(ex.SerializeToString())
    back = read_tfrecord(bad)
    assert back.num_instances == ds.num_instances - 1
    [issue] = back.issues
    assert issue.file == str(bad) and issue.record == "example 1" and "joint 2 x = nan" in issue.message

    # An in-memory dataset with a NaN joint is refused by every writer instead of writing `nan` into a file.
    poisoned = Dataset(samples=[Sample("x.png", 8, 8, [Instance(np.full((21, 2), np.nan))], data=b"\x89PNG")])
    for fmt, target in (("tfrecord", tmp_path / "n.tfrecord"), ("labels", tmp_path / "n_labels"),
                        ("coco", tmp_path / "n.json")):
        with pytest.raises(ValueError, match="NaN or infinite"):
            write_dataset(poisoned, target, fmt)
        assert not target.exists()


def _train(cfg: Path) -> tuple[int, list[dict], str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run([sys.executable, "-m", "training.cli", "train", str(cfg)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    return res.returncode, [parse_line(line) for line in res.stdout.splitlines()], res.stderr


def _config_on(tmp_path: Path, data: Path, steps: int) -> Path:
    cfg = write_tiny_config(tmp_path / "run.toml", steps, {"eval_every": 0, "checkpoint_every": steps})
    text = cfg.read_text().replace(str(TINY_COCO), str(data))
    cfg.write_text(text)
    return cfg


def test_cpm_train_says_how_many_records_it_dropped_and_why(tmp_path):
    data = _tiny_copy(tmp_path, {1: (0, "NaN")})
    code, events, stderr = _train(_config_on(tmp_path, data, 2))
    assert code == 0, stderr[-2000:]
    note = f"{data}: dropped 1 malformed record(s): 1 x keypoints hold NaN or infinite values (first: {data} " \
           "(annotation id 2)"
    assert note in stderr
    start = events[0]
    assert start["event"] == "start" and start["train_subjects"] == 3
    assert any(n.startswith(note) for n in start["data_notes"])
    assert events[-1]["event"] == "done"


def test_no_usable_subjects_says_which_check_removed_them(tmp_path):
    data = _tiny_copy(tmp_path, {i: (0, "NaN") for i in range(4)})
    code, events, stderr = _train(_config_on(tmp_path, data, 2))
    assert code == 1 and "Traceback" not in stderr
    message = events[-1]["message"]
    assert events[-1]["event"] == "error"
    assert message.startswith("no usable subjects in the dataset: the reader dropped 4 malformed record(s) "
                              f"(first: {data} (annotation id 1): keypoints hold NaN")
    assert "3 image(s) have no instance" in message


def test_no_usable_subjects_names_the_min_joints_check_and_unreadable_images(tmp_path):
    from training.data import NoSubjectsError, build_cache

    kp = np.tile(np.array([[10.0, 10.0]]), (21, 1)) + np.arange(21)[:, None]
    sparse = Instance(kp, np.r_[np.full(2, 2), np.zeros(19)].astype(np.int8))
    full = Instance(kp)
    ds = Dataset(samples=[Sample("a.jpg", 64, 64, [sparse]), Sample("missing.jpg", 64, 64, [full])],
                 root=tmp_path)
    with pytest.raises(NoSubjectsError) as err:
        build_cache(ds, 32, 1.5, 1.2, min_joints=3)
    message = str(err.value)
    assert "1 instance(s) have fewer than 3 labelled joints (data.min_joints)" in message
    assert "1 instance(s) are on 1 image(s) that could not be read (first: missing.jpg" in message


# ---------------------------------------------------------------------------- missing images in convert (item 13)

def _tiny_without(tmp_path: Path, image: str) -> Path:
    folder = tmp_path / "tiny_coco"
    shutil.copytree(TINY_COCO.parent, folder)
    (folder / "images" / image).unlink()
    return folder / "tiny.json"


@pytest.mark.parametrize("fmt", ["labels", "cmu-hand", "tfrecord", "port-tfrecord"])
def test_convert_with_a_missing_image_names_it_and_writes_nothing(tmp_path, fmt):
    data = _tiny_without(tmp_path, "hand_00080.jpg")
    out = tmp_path / f"out_{fmt}"
    res = subprocess.run([sys.executable, "-m", "training.cli", "dataset", "convert", str(data), str(out), "--to", fmt],
                         cwd=ROOT, capture_output=True, text=True, timeout=180,
                         env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == [f"cpm dataset convert: error: {data.parent / 'images' / 'hand_00080.jpg'}: image not found "
                     "(named 'images/hand_00080.jpg' in the dataset); nothing was written"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_coco"]  # no folder, file or temporary left


def test_a_failure_midway_leaves_no_half_written_folder(tmp_path, monkeypatch):
    """An image that vanishes or cannot be read while the export runs: the new folder is not left half
    written, and an existing folder the export was adding to keeps exactly what it had."""
    from cpm_core.dataset import port_labels

    ds = read_dataset(TINY_COCO)
    calls = []
    real_copy = port_labels.copy_image_file

    def failing_copy(src, target):
        calls.append(src)
        if len(calls) == 2:
            raise PermissionError(13, "Permission denied", str(src))
        real_copy(src, target)

    monkeypatch.setattr(port_labels, "copy_image_file", failing_copy)
    with pytest.raises(PermissionError):
        write_dataset(ds, tmp_path / "new", "labels")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    existing = tmp_path / "existing"
    (existing / "mine").mkdir(parents=True)
    (existing / "mine" / "notes.txt").write_text("keep me")
    calls.clear()
    with pytest.raises(PermissionError):
        write_dataset(ds, existing, "labels")
    assert sorted(str(p.relative_to(existing)) for p in existing.rglob("*")) == ["mine", "mine/notes.txt"]
    assert (existing / "mine" / "notes.txt").read_text() == "keep me"
