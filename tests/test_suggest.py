"""`cpm suggest`: uncertainty components on real heatmap targets, the uncertain-and-varied selection, the real
embedded hand model end to end through the CLI, and streaming a long video within a small memory budget."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from app_support import FOLDER, VIDEO, tiny_estimator

from cpm_core.heatmaps import encode_heatmaps
from cpm_core.suggest import COMPONENTS, FrameScore, heatmap_uncertainty, score_sources, select_frames
from training.cli import main as cpm

J = 21


def _grid(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(6, 26, size=(J, 2))


def _stages(*grids: np.ndarray) -> np.ndarray:
    return np.stack([encode_heatmaps(g, np.ones(J, bool), 32, sigma=1.5) for g in grids])


def test_agreeing_confident_stages_are_certain():
    xy = _grid(np.random.default_rng(0))
    r = heatmap_uncertainty(_stages(xy, xy), J)
    assert r["stage_shift"] < 0.05 and r["stage_divergence"] < 0.01
    assert r["low_peak"] < 0.05 and r["multimodal"] < 0.05


def test_stage_disagreement_and_rival_modes_raise_their_components():
    rng = np.random.default_rng(1)
    xy = _grid(rng)
    moved = xy + rng.choice([-6.0, 6.0], size=xy.shape)
    moved = np.clip(moved, 1, 30)
    r = heatmap_uncertainty(_stages(moved, xy), J)
    assert r["stage_shift"] > 0.5 and r["stage_divergence"] > 0.5
    # last stage with a second blob of half the height far from each peak: rival ratio 0.5
    last = _stages(xy)[0]
    other = encode_heatmaps(np.clip(xy + 10, 0, 31) % 32, np.ones(J, bool), 32, sigma=1.5)
    last[..., :J] = np.maximum(last[..., :J], 0.5 * other[..., :J])
    r = heatmap_uncertainty(np.stack([last, last]), J)
    assert 0.4 < r["multimodal"] < 0.6
    # a flat, low map: low peaks
    r = heatmap_uncertainty(np.full((2, 32, 32, J + 1), 0.1, np.float32), J)
    assert r["low_peak"] > 0.85


def _fs(source: str, frame: int, score: float, look: int) -> FrameScore:
    rng = np.random.default_rng(look)
    return FrameScore(source, frame, score, {}, rng.integers(0, 255, 256).astype(np.uint8))


def test_selection_is_uncertain_and_varied():
    # one hard moment (frames 100..109 score highest, one look) and other frames with several looks
    scores = [_fs("a.mp4", 100 + k, 0.9 - 0.01 * k, look=1) for k in range(10)]
    scores += [_fs("a.mp4", 10 * k, 0.5 - 0.01 * k, look=2 + k % 5) for k in range(1, 9)]
    scores += [_fs("b.mp4", 100 + k, 0.4, look=7) for k in range(3)]
    picked = select_frames(scores, 4, min_gap=15)
    assert len(picked) == 4
    assert picked[0].frame == 100 and picked[0].source == "a.mp4"  # the most uncertain frame leads
    assert sum(100 <= p.frame < 110 and p.source == "a.mp4" for p in picked) == 1  # not its neighbours
    same = [p.frame for p in picked if p.source == "a.mp4"]
    assert all(abs(x - y) >= 15 for i, x in enumerate(same) for y in same[i + 1:])
    assert [p.score for p in picked] == sorted((p.score for p in picked), reverse=True)
    # more wanted than the time gap allows: the best suppressed frames fill up
    assert len(select_frames(scores[:10], 5, min_gap=15)) == 5
    assert len(select_frames(scores[:3], 10)) == 3
    with pytest.raises(ValueError, match="count"):
        select_frames(scores, 0)


def test_cli_with_the_embedded_hand_model(tmp_path, capsys):
    out = tmp_path / "suggest.json"
    assert cpm(["suggest", "hand", str(VIDEO), str(FOLDER), "--count", "3", "--every", "2", "--json", str(out)]) == 0
    err = capsys.readouterr().err
    assert "suggested" in err and "hand_clip.mp4" in err  # progress and summary on stderr
    doc = json.loads(out.read_text())
    assert doc["model"].startswith("hand default") and doc["scored_frames"] == 10 + 3
    frames = doc["frames"]
    assert len(frames) == 3
    assert [f["score"] for f in frames] == sorted((f["score"] for f in frames), reverse=True)
    for f in frames:
        assert set(COMPONENTS) | {"presence"} == set(f["reasons"])
        assert all(0.0 <= v <= 1.0 for v in f["reasons"].values()) and 0.0 <= f["score"] <= 1.0
        if f["source"].endswith("hand_clip.mp4"):
            assert f["frame"] % 2 == 0  # --every 2
        else:
            assert Path(f["source"]).parent == FOLDER
    assert len({(f["source"], f["frame"]) for f in frames}) == 3


@pytest.mark.parametrize("args,message", [
    (["hand", "/no/such/video.mp4"], "no such file"),
    (["hand", str(VIDEO), "--count", "0"], "--count"),
    (["/no/model", str(VIDEO)], "cannot load model"),
])
def test_cli_bad_input_is_one_clear_line(tmp_path, args, message, capsys):
    assert cpm(["suggest", *args, "--json", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o.json").exists()


def test_long_video_is_streamed(tmp_path):
    """240 frames of 640x480 (221 MB decoded) are scored holding a small fraction of that: one frame at a time."""
    path = tmp_path / "long.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    base = cv2.resize(cv2.imread(str(VIDEO.parent / "hand.jpg")), (640, 480))
    for k in range(240):
        writer.write(np.roll(base, 2 * k, axis=1))
    writer.release()
    est = tiny_estimator()
    seen = []
    tracemalloc.start()
    try:
        scores = score_sources(est, [path], every=1, progress=lambda s, d, t: seen.append(d))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(scores) == 240 and seen[-1] == 240
    decoded = 240 * 640 * 480 * 3
    assert peak < decoded / 10, f"peak {peak / 1e6:.1f} MB while the frames are {decoded / 1e6:.0f} MB"
    assert [s.frame for s in scores] == list(range(240))
