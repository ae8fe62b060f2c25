"""Frame extraction: uniform and k-means picks, on videos whose header frame count may lie."""

import struct

import cv2
import numpy as np
import pytest

from cpm_core.dataset.frames import extract_frames, kmeans_indices, uniform_indices

COLOURS = [(40, 40, 200), (200, 40, 40), (40, 200, 40), (220, 220, 220)]


def write_video(path, fourcc="mp4v", n=40, scene_len=10):
    """`n` 64x48 frames in scenes of `scene_len` frames, each scene its own colour, a digit drawn on each."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (64, 48))
    assert w.isOpened()
    for i in range(n):
        f = np.zeros((48, 64, 3), np.uint8)
        f[:] = COLOURS[(i // scene_len) % len(COLOURS)]
        cv2.putText(f, str(i % 10), (5, 40), cv2.FONT_HERSHEY_SIMPLEX, 1, (0, 0, 0), 2)
        w.write(f)
    w.release()
    return path


def _lying_avi(path, n=40, claimed=80):
    """An MJPG AVI whose headers claim `claimed` frames while `n` decode (as with gesrec_hands.mp4)."""
    write_video(path, "MJPG", n)
    raw = bytearray(path.read_bytes())
    avih, strh = raw.find(b"avih"), raw.find(b"strh")
    struct.pack_into("<I", raw, avih + 8 + 16, claimed)  # dwTotalFrames
    struct.pack_into("<I", raw, strh + 8 + 32, claimed)  # dwLength
    path.write_bytes(bytes(raw))
    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == claimed
    cap.release()
    return path


def test_uniform_indices():
    assert uniform_indices(40, 4) == [5, 15, 25, 35]
    assert uniform_indices(3, 10) == [0, 1, 2]
    assert len(uniform_indices(973, 973)) == 973
    for n, k in [(10, 3), (7, 7), (1000, 17)]:
        idx = uniform_indices(n, k)
        assert len(idx) == k and len(set(idx)) == k and 0 <= min(idx) and max(idx) < n


def test_kmeans_picks_one_frame_per_scene():
    thumbs = np.repeat(np.arange(4)[:, None] * 60, 1024, axis=1).astype(np.uint8)
    thumbs = np.repeat(thumbs, 5, axis=0)  # 4 scenes x 5 identical frames
    picked = kmeans_indices(thumbs, 4)
    assert sorted(i // 5 for i in picked) == [0, 1, 2, 3]
    assert kmeans_indices(thumbs, 30) == list(range(20))
    many = kmeans_indices(thumbs, 6)  # more clusters than scenes: still distinct frames
    assert len(set(many)) == 6


def test_extract_uniform_writes_jpegs(tmp_path):
    video = write_video(tmp_path / "clip.mp4")
    saved = extract_frames(video, tmp_path / "out", 4)
    assert [i for i, _ in saved] == [5, 15, 25, 35]
    for i, p in saved:
        assert p == tmp_path / "out" / f"clip_{i:06d}.jpg"
        img = cv2.imread(str(p))
        assert img.shape == (48, 64, 3)
        assert np.abs(img[2, 60].astype(int) - COLOURS[i // 10]).max() < 40  # frame i, not another


def test_extract_kmeans_covers_every_scene(tmp_path):
    video = write_video(tmp_path / "clip.mp4")
    calls = []
    saved = extract_frames(video, tmp_path / "out", 4, method="kmeans", progress=lambda ph, n: calls.append(ph))
    assert sorted(i // 10 for i, _ in saved) == [0, 1, 2, 3]
    assert all(p.is_file() for _, p in saved)
    assert calls[0] == "scan" and "save" in calls


def test_header_frame_count_is_not_trusted(tmp_path):
    video = _lying_avi(tmp_path / "lying.avi")
    saved = extract_frames(video, tmp_path / "out", 4)
    assert [i for i, _ in saved] == [5, 15, 25, 35]  # spread over the 40 real frames, not the claimed 80
    everything = extract_frames(video, tmp_path / "all", 100)
    assert len(everything) == 40


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        extract_frames(tmp_path / "missing.mp4", tmp_path, 3)
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises((OSError, ValueError), match="junk.mp4"):
        extract_frames(tmp_path / "junk.mp4", tmp_path / "o", 3)
    with pytest.raises(ValueError, match="count"):
        extract_frames(tmp_path / "junk.mp4", tmp_path, 0)
    with pytest.raises(ValueError, match="method"):
        extract_frames(tmp_path / "junk.mp4", tmp_path, 2, method="random")
