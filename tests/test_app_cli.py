"""`cpm-studio` from the command line: the --screenshot path in-process and as a real program under Xvfb."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from app_support import VIDEO, tiny_estimator

from app.main import EXIT_MODEL, EXIT_SOURCE, main
from cpm_core.weights import save_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    est = tiny_estimator()
    return save_model(est.model, est.card, tmp_path_factory.mktemp("models") / "tiny")


def _assert_real_screenshot(path: Path, min_width: int = 800) -> None:
    img = cv2.imread(str(path))
    assert img is not None, f"{path} is not a readable PNG"
    assert img.shape[1] >= min_width
    assert img.std() > 20  # not blank
    assert len(np.unique(img.reshape(-1, 3)[::37], axis=0)) > 50  # a frame, heatmaps and widgets, not a fill


def _run(args, env=None, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "app.main", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_screenshot_offscreen(tmp_path, tiny_model_dir):
    out = tmp_path / "shot.png"
    r = _run(["--source", str(VIDEO), "--view", "joints", "--frames", "5", "--screenshot", str(out), "--quit",
              "--model", str(tiny_model_dir)], env={"QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stderr[-2000:]
    _assert_real_screenshot(out)


def test_cli_parse_rejects_bad_frames():
    with pytest.raises(SystemExit):
        main(["--frames", "0"])


def test_cli_unreadable_source_exits_nonzero_with_one_line(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    for source in (tmp_path / "missing.mp4", bad):
        r = _run(["--source", str(source), "--frames", "3", "--quit"])
        assert r.returncode == EXIT_SOURCE
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cpm-studio: ") and source.name in lines[0]


def test_cli_bad_model_exits_with_model_code(tmp_path):
    garbage = tmp_path / "w.pkl"
    garbage.write_bytes(b"\x80\x04 nope")
    r = _run(["--source", str(VIDEO), "--model", str(garbage), "--quit"], env={"QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == EXIT_MODEL
    assert "cannot load model" in r.stderr.strip().splitlines()[-1]


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run not installed (apt-get install xvfb)")
def test_real_window_under_xvfb(tmp_path, tiny_model_dir):
    out = tmp_path / "xvfb.png"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", QT_QPA_PLATFORM="xcb")
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, "-m", "app.main", "--source",
           str(VIDEO), "--view", "multi", "--frames", "5", "--screenshot", str(out), "--quit", "--model",
           str(tiny_model_dir)]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    _assert_real_screenshot(out)
