"""`cpm infer` end to end on real files: images, a folder with a corrupt file, a video, missing inputs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.weights import save_model
from training.cli import main


@pytest.fixture
def tiny_model_dir(tmp_path, tiny_spec):
    return save_model(build_cpm(tiny_spec), ModelCard.for_spec(tiny_spec, name="tiny-test"), tmp_path / "tiny")


@pytest.fixture
def media(tmp_path):
    rng = np.random.default_rng(1)
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))
    folder = tmp_path / "folder"
    folder.mkdir()
    cv2.imwrite(str(folder / "1.jpg"), rng.integers(0, 255, (50, 70, 3), dtype=np.uint8))
    (folder / "2.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    video = tmp_path / "clip.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for i in range(11):
        w.write(np.full((64, 96, 3), i * 20, np.uint8))
    w.release()
    return img, folder, video


def test_infer_writes_json_and_media(tmp_path, tiny_model_dir, media, capsys):
    img, folder, video = media
    out_json = tmp_path / "out.json"
    out_dir = tmp_path / "out"
    rc = main(["infer", str(img), str(folder), str(video), str(tmp_path / "missing.mp4"), "--model",
               str(tiny_model_dir), "--json", str(out_json), "--out-dir", str(out_dir), "--view", "multi"])
    err = capsys.readouterr().err
    assert rc == 2  # a missing and a corrupt input: reported, the rest processed
    assert "missing.mp4: no such file" in err and "2.jpg: not a readable image" in err
    doc = json.loads(out_json.read_text())
    assert doc["model"] == "tiny-test" and doc["joints"][0] == "wrist" and len(doc["joints"]) == 21
    assert doc["runtime"].split()[0] in ("tensorflow", "onnxruntime")  # a tiny model has no packed int8 graph
    by_source: dict[str, list] = {}
    for r in doc["results"]:
        by_source.setdefault(r["source"], []).append(r)
        assert len(r["keypoints"]) == 21 and all(len(k) == 3 for k in r["keypoints"])
    assert len(by_source[str(img)]) == 1
    assert len(by_source[str(folder / "1.jpg")]) == 1
    assert [r["frame"] for r in by_source[str(video)]] == list(range(11))
    # Coordinates are in the source's pixels: within the frame (the letterbox pads only outside it a bit).
    xs = [k[0] for r in by_source[str(img)] for k in r["keypoints"]]
    assert min(xs) >= -1 and max(xs) <= 121
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["1_multi.png", "1_pose.png", "a_multi.png", "a_pose.png", "clip_multi.mp4", "clip_pose.mp4"]
    cap = cv2.VideoCapture(str(out_dir / "clip_pose.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 11
    multi = cv2.imread(str(out_dir / "a_multi.png"))
    assert multi.shape[0] >= 256 and multi.std() > 1


def test_infer_joints_view_and_default_model(tmp_path, media, capsys):
    img, _, _ = media
    rc = main(["infer", str(img), "--out-dir", str(tmp_path / "o"), "--view", "joints"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "embedded default model" in err
    assert (tmp_path / "o" / "a_joints.png").exists()


def test_infer_bad_model_is_one_line_exit_2(tmp_path, media, capsys):
    img, _, _ = media
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x80garbage")
    assert main(["infer", str(img), "--model", str(bad), "--json", str(tmp_path / "j.json")]) == 2
    assert "bad.pkl" in capsys.readouterr().err
    assert not (tmp_path / "j.json").exists()
