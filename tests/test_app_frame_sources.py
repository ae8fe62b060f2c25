"""The app's file sources (`app.frame_sources.open_source`) over `cpm_core.sources`: what the capture thread sees
of a video, an image and a folder with a corrupt image, on real files. No Qt is needed (the module has none)."""

import cv2
import numpy as np
import pytest

from app.frame_sources import FOLDER_FPS, FrameError, open_source
from cpm_core.sources import SourceError


def _frame(i: int) -> np.ndarray:
    return np.full((48, 64, 3), 10 + 20 * i, np.uint8)


def _video(path, n: int = 6):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (64, 48))
    for i in range(n):
        w.write(_frame(i))
    w.release()
    return path


def _drain(source) -> list[int]:
    out = []
    while (got := source.read()) is not None:
        out.append(got[0])
    return out


def test_video_source_plays_from_its_validated_first_frame_and_seeks_back(tmp_path):
    source = open_source(_video(tmp_path / "clip.mp4"))
    try:
        info = source.info
        assert (info.kind, info.fps, info.frame_count, info.seekable) == ("video", pytest.approx(15.0), 6, True)
        assert _drain(source) == list(range(6)) and source.end_note() is None
        source.seek(0)
        index, image = source.read()
        assert index == 0 and image.shape == (48, 64, 3)
    finally:
        source.close()


def test_folder_source_raises_a_frame_error_for_its_corrupt_image_and_goes_on(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), _frame(0))
    (tmp_path / "b.png").write_bytes(b"broken")
    cv2.imwrite(str(tmp_path / "c.png"), _frame(2))
    source = open_source(tmp_path)
    assert (source.info.kind, source.info.fps, source.info.frame_count) == ("folder", FOLDER_FPS, 3)
    assert source.read()[0] == 0
    with pytest.raises(FrameError, match=r"b\.png: not a readable image"):
        source.read()
    index, image = source.read()
    assert index == 2 and np.array_equal(image, _frame(2))
    assert source.read() is None
    source.seek(99)  # clipped to the last image
    assert source.read()[0] == 2


def test_a_folder_none_of_whose_images_reads_fails_at_open(tmp_path):
    (tmp_path / "a.png").write_bytes(b"broken")
    (tmp_path / "b.jpg").write_bytes(b"broken too")
    with pytest.raises(SourceError, match="none of its 2 images can be read"):
        open_source(tmp_path)


def test_image_source_gives_its_one_frame_again_after_a_seek(tmp_path):
    cv2.imwrite(str(tmp_path / "one.png"), _frame(3))
    source = open_source(tmp_path / "one.png")
    assert (source.info.kind, source.info.fps, source.info.frame_count) == ("image", 1.0, 1)
    assert _drain(source) == [0]
    source.seek(5)
    assert _drain(source) == [0]


def test_missing_and_corrupt_files_fail_at_open(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(tmp_path / "missing.mp4")
    (tmp_path / "bad.png").write_bytes(b"broken")
    with pytest.raises(SourceError, match=r"bad\.png: not a readable image"):
        open_source(tmp_path / "bad.png")
