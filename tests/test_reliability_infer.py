"""`cpm infer` on awkward inputs and outputs (issue #22 items 8 and 10), end to end with a real tiny model on real
files: inputs that share a stem each get their own output, outputs that cannot be written are refused before any
work with one line and exit 2, and a truncated video is processed as far as it decodes and reported."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cpm_core.infer import plan_names
from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.sources import VideoReader
from cpm_core.weights import save_model
from training.cli import main


@pytest.fixture
def tiny_model_dir(tmp_path, tiny_spec):
    return save_model(build_cpm(tiny_spec), ModelCard.for_spec(tiny_spec, name="tiny-test"), tmp_path / "tiny")


def _image(path: Path, value: int) -> Path:
    """A distinct image per file (a flat colour plus noise), so each output can be traced to its input."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    img = np.clip(rng.normal(value, 3, (60, 80, 3)), 0, 255).astype(np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def truncated_video(path: Path, frames: int = 202) -> Path:
    """A real mp4 whose header lists `frames` frames but whose data past the first quarter is zeroed, as a copy
    cut off mid-transfer and padded: the decoder gives up after the first few dozen frames."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (160, 120))
    for i in range(frames):
        f = np.full((120, 160, 3), (i * 7) % 255, np.uint8)
        cv2.putText(f, str(i), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        w.write(f)
    w.release()
    data = bytearray(path.read_bytes())
    at = data.index(b"mdat") - 4
    size = int.from_bytes(data[at:at + 4], "big")
    cut = at + 8 + (size - 8) // 4
    data[cut:at + size] = bytes(at + size - cut)
    path.write_bytes(bytes(data))
    return path


def test_inputs_sharing_a_stem_get_distinct_documented_names(tmp_path, tiny_model_dir, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inputs = [_image(Path("a/x.jpg"), 40), _image(Path("b/x.jpg"), 120), _image(Path("b/x.png"), 200),
              _image(Path("c/y.jpg"), 90)]
    out = tmp_path / "out"
    rc = main(["infer", *map(str, inputs), "--model", str(tiny_model_dir), "--out-dir", str(out), "--json",
               str(tmp_path / "k.json")])
    assert rc == 0, capsys.readouterr().err
    # The rule in cpm_core/infer.py's docstring: a shared stem is named after the path relative to the common
    # folder with its extension; a unique stem keeps the plain name.
    assert sorted(p.name for p in out.iterdir()) == ["a_x_jpg_pose.png", "b_x_jpg_pose.png", "b_x_png_pose.png",
                                                    "y_pose.png"]
    for src, name in zip(inputs[:3], ["a_x_jpg_pose.png", "b_x_jpg_pose.png", "b_x_png_pose.png"]):
        drawn = cv2.imread(str(out / name)).astype(float)
        source = cv2.imread(str(src)).astype(float)
        assert np.median(np.abs(drawn - source)) < 8, f"{name} is not the output of {src}"
    doc = json.loads((tmp_path / "k.json").read_text())
    assert [r["source"] for r in doc["results"]] == [str(p) for p in inputs]


def test_name_plan_is_deterministic_and_never_reuses_a_name(tmp_path):
    files = [Path("a/x.jpg"), Path("b/X.jpg"), Path("a/x.jpg"), Path("z/solo.png"), Path("vid/x.mp4")]
    keys = plan_names(files)
    assert keys == plan_names(files)
    assert len({k.lower() for k in keys}) == len(keys)  # also distinct on case-insensitive file systems
    assert keys[3] == "solo" and keys[0] == "a_x_jpg" and keys[2] == "a_x_jpg-2" and keys[4] == "vid_x_mp4"


def test_a_second_run_says_it_replaces_the_first_runs_files(tmp_path, tiny_model_dir, capsys):
    img = _image(tmp_path / "x.jpg", 60)
    args = ["infer", str(img), "--model", str(tiny_model_dir), "--out-dir", str(tmp_path / "o")]
    assert main(args) == 0
    assert "replacing" not in capsys.readouterr().err
    assert main(args) == 0
    assert "replacing 1 existing file(s)" in capsys.readouterr().err


def test_unwritable_outputs_are_refused_before_any_work(tmp_path, tiny_model_dir, capsys):
    img = _image(tmp_path / "x.jpg", 60)
    folder = tmp_path / "results"
    folder.mkdir()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    cases = [(["--json", str(folder)], "is a folder"),
             (["--out-dir", str(a_file)], "is a file, not a folder"),
             (["--json", str(a_file / "k.json")], "is a file, not a folder"),
             (["--json", str(img)], "is one of the inputs")]
    for extra, message in cases:
        rc = main(["infer", str(img), "--model", str(tiny_model_dir), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2
        assert len(err) == 1 and err[0].startswith("cpm infer: ") and message in err[0], err
        assert "frame(s)" not in err[0]  # refused up front: nothing was processed
    assert a_file.read_text() == "mine" and list(folder.iterdir()) == [] and img.stat().st_size > 0


def test_truncated_video_is_reported_with_its_frame_counts(tmp_path, tiny_model_dir, capsys):
    video = truncated_video(tmp_path / "cut.mp4")
    with VideoReader(video) as v:
        decodable = sum(1 for _ in v)
    assert 0 < decodable < 150  # the fixture really is cut short (its header says 202)
    rc = main(["infer", str(video), "--model", str(tiny_model_dir), "--json", str(tmp_path / "k.json")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"only {decodable} of the 202 frames" in err and "cut.mp4" in err
    doc = json.loads((tmp_path / "k.json").read_text())
    assert [r["frame"] for r in doc["results"]] == list(range(decodable))


def test_a_complete_video_gives_no_truncation_warning(tmp_path, tiny_model_dir, capsys):
    video = tmp_path / "ok.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(12):
        w.write(np.full((48, 64, 3), i * 15, np.uint8))
    w.release()
    assert main(["infer", str(video), "--model", str(tiny_model_dir), "--json", str(tmp_path / "k.json")]) == 0
    assert "frames its header lists" not in capsys.readouterr().err
