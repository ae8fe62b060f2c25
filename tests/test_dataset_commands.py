"""`cpm dataset ...` handlers, driven in-process through argparse as the `cpm` entry point will."""

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cpm_core.dataset import dataset_differences, read_dataset
from cpm_core.dataset.commands import register

FIXTURE = Path(__file__).parent / "fixtures" / "dataset" / "tiny_coco" / "tiny.json"


def run(argv):
    parser = argparse.ArgumentParser(prog="cpm")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_convert_coco_to_tfrecord_and_back(tmp_path, capsys):
    assert run(["dataset", "convert", str(FIXTURE), str(tmp_path / "t.tfrecord"), "--to", "tfrecord"]) == 0
    assert "wrote 3 images, 4 instances" in capsys.readouterr().out
    assert run(["dataset", "convert", str(tmp_path / "t.tfrecord"), str(tmp_path / "c" / "c.json"),
                "--to", "coco"]) == 0
    assert dataset_differences(read_dataset(FIXTURE), read_dataset(tmp_path / "c" / "c.json")) == []


def test_convert_to_labels_xy_and_port_tfrecord(tmp_path):
    assert run(["dataset", "convert", str(FIXTURE), str(tmp_path / "lab"), "--to", "labels", "--xy"]) == 0
    labels = next((tmp_path / "lab").glob("*/labels.txt"))
    first = labels.read_text().split()
    inst = read_dataset(FIXTURE).samples[0].instances[0]
    assert first[1:3] == [f"{inst.bbox[0]:.2f}", f"{inst.bbox[1]:.2f}"]  # x first
    assert run(["dataset", "convert", str(tmp_path / "lab"), str(tmp_path / "p.tfrecord"), "--to",
                "port-tfrecord", "--xy", "--size", "32"]) == 0
    port = read_dataset(tmp_path / "p.tfrecord")
    assert port.num_images == 4 and port.samples[0].width == 32


def test_stats_table_and_json(capsys):
    assert run(["dataset", "stats", str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert "images: 3  instances: 4" in out and "thumb4" in out
    assert run(["dataset", "stats", str(FIXTURE), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["visibility"]["occluded"] == 2


def test_errors_are_one_line_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    for argv in (["dataset", "stats", str(bad)],
                 ["dataset", "convert", str(bad), str(tmp_path / "o.json"), "--to", "coco"],
                 ["dataset", "stats", str(tmp_path / "missing.json")],
                 ["dataset", "extract-frames", str(tmp_path / "missing.mp4"), str(tmp_path / "f")]):
        assert run(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert Path(argv[2]).name in err and "error" in err


def test_malformed_records_warn_unless_strict(tmp_path, capsys):
    doc = json.loads(FIXTURE.read_text())
    doc["annotations"][0]["keypoints"] = [1, 2]
    (tmp_path / "images").symlink_to(FIXTURE.parent / "images")
    (tmp_path / "d.json").write_text(json.dumps(doc))
    assert run(["dataset", "convert", str(tmp_path / "d.json"), str(tmp_path / "o.tfrecord"), "--to",
                "tfrecord"]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 malformed record" in err and "annotation id 1" in err
    assert run(["dataset", "convert", str(tmp_path / "d.json"), str(tmp_path / "o2.tfrecord"), "--to",
                "tfrecord", "--strict"]) == 2
    assert "annotation id 1" in capsys.readouterr().err
    assert not (tmp_path / "o2.tfrecord").exists()


def test_extract_frames_command(tmp_path, capsys):
    writer = cv2.VideoWriter(str(tmp_path / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 32))
    for i in range(12):
        writer.write(np.full((32, 32, 3), 20 * i, np.uint8))
    writer.release()
    assert run(["dataset", "extract-frames", str(tmp_path / "v.mp4"), str(tmp_path / "f"), "--count", "3",
                "--method", "kmeans"]) == 0
    assert "saved 3 frames" in capsys.readouterr().out
    assert len(list((tmp_path / "f").glob("v_*.jpg"))) == 3


def test_subcommand_is_required():
    with pytest.raises(SystemExit) as exc:
        run(["dataset"])
    assert exc.value.code == 2
