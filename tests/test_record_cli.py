"""`cpm-studio --record OUT.mp4 --frames N --quit`: a scripted recording through the same path as Ctrl+R keeps every
source frame (issue #21 item 9). The clip is synthetic: each frame carries its own index as a row of black and
white blocks, so the test reads back WHICH source frame every video frame of the recording is."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from app_support import tiny_estimator

from cpm_core.weights import save_model

ROOT = Path(__file__).resolve().parents[1]
FRAMES, SIDE, BITS, BLOCK = 150, 128, 8, 16


def _coded_frame(index: int) -> np.ndarray:
    """A grey frame whose bottom row of BITS blocks spells `index` in binary (white = 1)."""
    img = np.full((SIDE, SIDE, 3), 60, np.uint8)
    for b in range(BITS):
        value = 255 if (index >> b) & 1 else 0
        img[SIDE - BLOCK:, b * BLOCK:(b + 1) * BLOCK] = value
    return img


def _read_code(img: np.ndarray) -> int:
    row = img[SIDE - BLOCK + 4:SIDE - 4].astype(float).mean(axis=(0, 2))  # the blocks' centres, not their edges
    return sum(1 << b for b in range(BITS) if row[b * BLOCK + 4:(b + 1) * BLOCK - 4].mean() > 128)


@pytest.fixture(scope="module")
def coded_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("media") / "coded.mp4"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (SIDE, SIDE))
    for i in range(FRAMES):
        out.write(_coded_frame(i))
    out.release()
    cap = cv2.VideoCapture(str(path))
    codes = []
    while (got := cap.read())[0]:
        codes.append(_read_code(got[1]))
    assert codes == list(range(FRAMES))  # the code survives the encoder
    return path


def test_record_flag_writes_every_source_frame_to_mp4_json_and_csv(tmp_path, coded_video):
    est = tiny_estimator()
    model = save_model(est.model, est.card, tmp_path / "tiny")
    out = tmp_path / "rec" / "run.mp4"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run([sys.executable, "-m", "app.main", "--source", str(coded_video), "--model", str(model),
                        "--record", str(out), "--frames", str(FRAMES), "--quit", "--timeout", "300"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-2000:]
    cap = cv2.VideoCapture(str(out))
    codes = []
    while (got := cap.read())[0]:
        codes.append(_read_code(got[1]))
    assert codes == list(range(FRAMES))  # 150 frames, each source frame once, in order
    doc = json.loads(out.with_suffix(".json").read_text())
    assert [f["frame"] for f in doc["frames"]] == list(range(FRAMES))
    assert doc["frames"][30]["time"] == pytest.approx(1.0, abs=1e-3)
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert [int(row["frame"]) for row in rows] == list(range(FRAMES))
    assert not out.with_name("run.recording").exists()  # finished cleanly


def test_record_flag_needs_a_path_that_can_be_written(tmp_path):
    from app.main import parse_args

    args = parse_args(["--record", str(tmp_path / "x.mp4"), "--frames", "5", "--quit"])
    assert args.record == str(tmp_path / "x.mp4")
